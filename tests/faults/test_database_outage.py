"""PostgreSQL going away under the app: every request gets a 503 with a clear message and
Retry-After (never a 500, never a hang), nothing is half-done, and the same app works again as
soon as the database is back (each connection is checked as it leaves the pool:
``engine/db.py``), without a restart.

The outage is a TCP proxy in front of PostgreSQL that the test cuts (tests/support/proxy.py):
open connections are reset and new ones refused, as when the server restarts. A connection
lost in the middle of a completion is made with ``pg_terminate_backend``."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.db import Database
from engine.establishments.service import get_portfolio
from engine.runtime import sync as runtime_sync
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import READY, ProcessInstance, Task
from tests.support.builders import LANE_ROLES, Flow, cast
from tests.support.pages import Pages
from tests.support.proxy import TcpProxy
from web.ui.errors import DB_UNAVAILABLE_MESSAGE, RETRY_AFTER_SECONDS

QUICK = 5.0  # seconds: an answer during an outage must come at least this fast


@pytest.fixture
def world(make, db, client):
    people = cast(make, roles=LANE_ROLES)
    est, users = people.est, people.lanes
    res = client.post(
        "/api/v1/instances",
        json={"process": "credenciamento-rnds", "establishment": est.cnes, "portfolio": "RIRA"},
        headers=users["admin"].headers,
    )
    assert res.status_code == 201, res.json
    with db.read() as s:
        portfolio = get_portfolio(s, "RIRA").as_data()
    return Flow(client, users, res.json["id"], est, portfolio)


@pytest.fixture
def outage(app, db_url):
    """The app's database reached through a proxy the test can cut: ``outage.stop()``,
    ``outage.start()``."""
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = Database(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    proxied.on_denied = audit.record_denial
    original = app.extensions["credencia.db"]
    app.extensions["credencia.db"] = proxied
    try:
        yield proxy
    finally:
        app.extensions["credencia.db"] = original
        proxy.stop()
        proxied.dispose()


def _ready(db: Database, instance_id: int) -> list[str]:
    with db.read() as s:
        return sorted(
            s.scalars(
                select(Task.element_id).where(Task.instance_id == instance_id, Task.state == READY)
            )
        )


def _completed_events(db: Database) -> int:
    with db.read() as s:
        return s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "task.completed")
        )


def _timed(call):
    start = time.monotonic()
    res = call()
    return res, time.monotonic() - start


def test_api_answers_503_during_an_outage_and_works_again_after_it(
    world, outage, db, client
) -> None:
    flow = world
    assert flow.ready_elements() == {"obter_certificado_digital", "ambientar_servicos"}
    before = _completed_events(db)

    outage.stop()
    token = flow.users["Integrador"].headers
    task = next(iter(_ready_rows(db, flow.instance_id, "ambientar_servicos")))
    for method, path, body in (
        ("get", "/api/v1/tasks?state=ready", None),
        ("get", f"/api/v1/instances/{flow.instance_id}", None),
        ("post", f"/api/v1/tasks/{task}/complete", {"data": {"observacoes": "ok"}}),
        ("post", f"/api/v1/tasks/{task}/claim", None),
    ):
        res, seconds = _timed(lambda m=method, p=path, b=body: getattr(client, m)(p, json=b, headers=token))  # fmt: skip
        assert res.status_code == 503, (path, res.status_code, res.get_data(as_text=True)[:300])
        assert res.mimetype == "application/problem+json" and res.json["status"] == 503
        assert res.json["message"] == res.json["detail"] == DB_UNAVAILABLE_MESSAGE
        assert res.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert seconds < QUICK, (path, seconds)
    # Nothing was done meanwhile.
    assert _ready(db, flow.instance_id) == ["ambientar_servicos", "obter_certificado_digital"]
    assert _completed_events(db) == before

    outage.start()  # the database is back; the app was not restarted
    assert client.get("/api/v1/tasks?state=ready", headers=token).status_code == 200
    flow.complete("ambientar_servicos")
    assert _completed_events(db) == before + 1
    with db.read() as s:
        assert audit.verify(s)[1] is None


def _ready_rows(db: Database, instance_id: int, element: str) -> list[str]:
    with db.read() as s:
        return list(
            s.scalars(
                select(Task.id).where(
                    Task.instance_id == instance_id, Task.state == READY, Task.element_id == element
                )
            )
        )


def test_pages_show_the_503_page_during_an_outage_and_work_after_it(world, outage, app) -> None:
    pages = Pages(app).login(world.users["DATASUS"])
    assert pages.get("/").status_code == 200
    outage.stop()
    for path in ("/", "/painel", f"/instancias/{world.instance_id}", "/entrar"):
        res, seconds = _timed(lambda p=path: pages.get(p))
        assert res.status_code == 503, (path, res.status_code)
        page = res.get_data(as_text=True)
        assert DB_UNAVAILABLE_MESSAGE in page and "<html" in page.lower()
        assert res.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert seconds < QUICK
    outage.start()
    assert pages.get("/").status_code == 200


def test_an_outage_in_the_middle_of_a_page_renders_the_503_page_without_the_menu(
    world, outage, app, monkeypatch
) -> None:
    # The user was loaded (so the menu would count tasks from the database), then the
    # database goes away: the error page must not need it.
    from engine.runtime import inbox

    pages = Pages(app).login(world.users["DATASUS"])
    original = inbox.inbox

    def inbox_then_outage(*args, **kwargs):
        outage.stop()
        return original(*args, **kwargs)

    monkeypatch.setattr(inbox, "inbox", inbox_then_outage)
    res = pages.get("/")
    assert res.status_code == 503
    assert DB_UNAVAILABLE_MESSAGE in res.get_data(as_text=True)
    outage.start()
    monkeypatch.setattr(inbox, "inbox", original)
    assert pages.get("/").status_code == 200


def _terminate(session) -> None:
    """Cut this session's own PostgreSQL connection from the outside (pg_terminate_backend)."""
    pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
    url = session.get_bind().engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(False), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("when", ["after the workflow ran", "at commit"])
def test_a_connection_lost_in_the_middle_of_a_completion_changes_nothing(
    world, db, client, monkeypatch, when
) -> None:
    flow = world
    task_id = _ready_rows(db, flow.instance_id, "ambientar_servicos")[0]
    with db.read() as s:
        version = s.get(ProcessInstance, flow.instance_id).version
    before = _completed_events(db)
    original_sync, original_record = runtime_sync.sync, runtime_tasks.audit.record

    if when == "after the workflow ran":

        def cut(session, *args, **kwargs):
            change = original_sync(session, *args, **kwargs)
            _terminate(session)
            return change

        monkeypatch.setattr(runtime_tasks, "sync", cut)
    else:

        def cut(session, *args, **kwargs):
            event = original_record(session, *args, **kwargs)
            if args and args[1] == "task.completed":
                session.flush()  # everything is sent; only COMMIT remains
                _terminate(session)
            return event

        monkeypatch.setattr(runtime_tasks.audit, "record", cut)

    headers = flow.users["Integrador"].headers
    path = f"/api/v1/tasks/{task_id}/complete"
    res = client.post(path, json={"data": {"observacoes": "ok"}}, headers=headers)
    assert res.status_code == 503, res.get_data(as_text=True)[:500]
    assert res.json["message"] == DB_UNAVAILABLE_MESSAGE
    with db.read() as s:
        assert s.get(Task, task_id).state == READY
        assert s.get(ProcessInstance, flow.instance_id).version == version
    assert _completed_events(db) == before

    monkeypatch.undo()  # the client tries again: done once
    res = client.post(path, json={"data": {"observacoes": "ok"}}, headers=headers)
    assert res.status_code == 200, res.json
    assert client.post(path, json={"data": {}}, headers=headers).status_code == 409
    assert _completed_events(db) == before + 1
    with db.read() as s:
        assert audit.verify(s)[1] is None


def test_idle_pooled_connections_cut_by_the_server_are_replaced_without_an_error(
    world, db, app, client
) -> None:
    headers = world.users["admin"].headers
    assert client.get("/api/v1/tasks", headers=headers).status_code == 200
    app_db = app.extensions["credencia.db"]
    name = app_db.engine.url.database
    with psycopg.connect(
        app_db.engine.url.set(drivername="postgresql").render_as_string(False), autocommit=True
    ) as admin:
        cut = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND state = 'idle'",
            (name,),
        ).fetchone()[0]
    assert cut >= 1
    for _ in range(3):
        assert client.get("/api/v1/tasks", headers=headers).status_code == 200


def test_a_failing_statement_is_still_a_500_not_an_outage(world, app, monkeypatch) -> None:
    from engine.runtime import inbox

    def broken(session, *args, **kwargs):
        session.execute(text("SELECT no_such_column FROM task"))

    pages = Pages(app).login(world.users["DATASUS"])
    monkeypatch.setattr(inbox, "inbox", broken)
    res = pages.get("/")
    assert res.status_code == 500
    assert DB_UNAVAILABLE_MESSAGE not in res.get_data(as_text=True)
