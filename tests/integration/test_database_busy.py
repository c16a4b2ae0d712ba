"""A write that waits its whole time for another one is given up with a 503 and Retry-After,
never a 500, and nothing of it is written; once the other write ends, the same request works.

On SQLite the other write is another process holding the writers' turn (engine/db.py's
``WriterQueue``, whose wait is bounded like SQLite's busy timeout); on PostgreSQL another
connection holding the instance's row lock, with a ``lock_timeout`` on the app's connections.
A web request's statement that runs past its limit (PostgreSQL's ``statement_timeout``) is
answered the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.db import Database, queue_for
from engine.establishments.service import get_portfolio
from engine.runtime.models import READY, Task
from tests.support.builders import LANE_ROLES, Flow, cast
from tests.support.pages import Pages
from tests.support.workers import TurnHolder
from web.errors import DB_BUSY_MESSAGE, DB_SLOW_MESSAGE, RETRY_AFTER_SECONDS


@pytest.fixture
def world(make, db, client) -> Flow:
    people = cast(make, roles=LANE_ROLES)
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "credenciamento-rnds",
            "establishment": people.est.cnes,
            "portfolio": "RIRA",
        },
        headers=people.lanes["admin"].headers,
    )
    assert res.status_code == 201, res.json
    with db.read() as s:
        portfolio = get_portfolio(s, "RIRA").as_data()
    return Flow(client, people.lanes, res.json["id"], people.est, portfolio)


@contextmanager
def _sqlite_turn_held(db: Database) -> Iterator[None]:
    """Another process holds the writers' turn; this process gives up after 0.3 s."""
    path = db.engine.url.database
    queue = queue_for(path, timeout=30)
    holder = TurnHolder(path)
    saved, queue.timeout = queue.timeout, 0.3
    try:
        yield
    finally:
        queue.timeout = saved
        holder.stop()


@contextmanager
def _postgres_row_held(db: Database, instance_id: int) -> Iterator[None]:
    """Another connection holds the instance's row; the app's waits end after 0.3 s."""

    def short_lock_wait(dbapi_conn, _record, _proxy) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET lock_timeout = '300ms'")

    other = Database(db.engine.url.render_as_string(False))
    event.listen(db.engine, "checkout", short_lock_wait)
    try:
        with other.engine.connect() as conn, conn.begin():
            conn.execute(
                text("SELECT id FROM process_instance WHERE id = :id FOR UPDATE"),
                {"id": instance_id},
            )
            yield
    finally:
        event.remove(db.engine, "checkout", short_lock_wait)
        db.engine.dispose()  # no pooled connection keeps the short wait
        other.dispose()


def _held(db: Database, instance_id: int):
    if db.dialect == "sqlite":
        return _sqlite_turn_held(db)
    return _postgres_row_held(db, instance_id)


def _task(db: Database, instance_id: int, element: str) -> str:
    with db.read() as s:
        return s.scalar(
            select(Task.id).where(
                Task.instance_id == instance_id, Task.state == READY, Task.element_id == element
            )
        )


def _completions(db: Database) -> int:
    with db.read() as s:
        return s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "task.completed")
        )


def _assert_given_up(res, message: str) -> None:
    """The API's answer to a request the database gave up: 503, the reason, Retry-After."""
    assert res.status_code == 503, res.get_data(as_text=True)[:500]
    assert res.mimetype == "application/problem+json"
    assert res.json["detail"] == message
    assert res.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_a_completion_that_waits_too_long_answers_503_and_writes_nothing(world, db, client):
    flow = world
    task = _task(db, flow.instance_id, "ambientar_servicos")
    before = _completions(db)
    token = flow.users["Integrador"].headers
    with _held(db, flow.instance_id):
        res = client.post(
            f"/api/v1/tasks/{task}/complete", json={"data": {"observacoes": "ok"}}, headers=token
        )
        _assert_given_up(res, DB_BUSY_MESSAGE)
    assert _task(db, flow.instance_id, "ambientar_servicos") == task  # still ready
    assert _completions(db) == before
    # The other write is over: the same request works.
    res = client.post(
        f"/api/v1/tasks/{task}/complete", json={"data": {"observacoes": "ok"}}, headers=token
    )
    assert res.status_code == 200, res.json
    assert _completions(db) == before + 1
    with db.read() as s:
        assert audit.verify(s)[1] is None


def test_a_task_form_sent_while_the_database_is_busy_comes_back_with_what_was_typed(world, db, app):
    flow = world
    task = _task(db, flow.instance_id, "ambientar_servicos")
    pages = Pages(app).login(flow.users["Integrador"])
    assert pages.get(f"/tarefas/{task}").status_code == 200
    typed = "Serviços <b>ambientados</b> em homologação"
    with _held(db, flow.instance_id):
        res = pages.post(f"/tarefas/{task}", {"observacoes": typed})
        assert res.status_code == 503
        assert res.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    page = res.get_data(as_text=True)
    # The task's form again, the text as typed (escaped), and the reason at the top.
    assert "Os dados preenchidos foram mantidos" in page and 'class="br-message warning"' in page
    assert "Serviços &lt;b&gt;ambientados&lt;/b&gt; em homologação</textarea>" in page
    assert "<h1" in page and "Ambientar com serviços" in page.split("<h1", 1)[1].split("</h1>")[0]
    assert _task(db, flow.instance_id, "ambientar_servicos") == task
    assert _completions(db) == 0
    # Sent again once the other write is over, it completes.
    res = pages.post(f"/tarefas/{task}", {"observacoes": typed})
    assert res.status_code == 302, res.status_code
    assert _task(db, flow.instance_id, "ambientar_servicos") is None
    assert _completions(db) == 1


def test_a_page_that_cannot_read_its_form_under_a_busy_database_still_answers_503(
    world, db, app, monkeypatch
):
    """Busy before the submission is read (here: the task's own read): the error page."""
    from sqlalchemy.exc import OperationalError

    from web.errors import DB_BUSY_MESSAGE
    from web.ui import tasks as task_pages

    flow = world
    task = _task(db, flow.instance_id, "ambientar_servicos")
    pages = Pages(app).login(flow.users["Integrador"])

    def busy(*_args, **_kwargs):
        raise OperationalError("SELECT", None, Exception("database is locked"))

    monkeypatch.setattr(task_pages.taskform, "task_form", busy)
    res = pages.post(f"/tarefas/{task}", {"observacoes": "ok"})
    assert res.status_code == 503 and DB_BUSY_MESSAGE in res.get_data(as_text=True)


@pytest.mark.postgres_only
def test_postgresql_waits_for_a_lock_as_long_as_a_sqlite_writer_unless_configured(db):
    from engine.db import LOCK_WAIT_S

    with db.read() as s:
        assert s.execute(text("SHOW lock_timeout")).scalar() == f"{LOCK_WAIT_S}s"
    # A lock_timeout given to the server (here in the URL's options) is kept.
    url = db.engine.url.update_query_dict({"options": "-c lock_timeout=7s"})
    own = Database(url.render_as_string(False))
    try:
        with own.read() as s:
            assert s.execute(text("SHOW lock_timeout")).scalar() == "7s"
    finally:
        own.dispose()


# ------------------------------------------------------------------ a statement that runs too long


@contextmanager
def _slow_app(settings, db: Database, instance_id: int) -> Iterator[Any]:
    """The web app on a database whose statements run at most 0.3 s (its lock waits 30 s),
    while another connection holds the instance's row: a completion's statement that waits
    for it runs past the limit and PostgreSQL cancels it (57014)."""
    from web import create_app

    own = Database(db.engine.url.render_as_string(False), statement_timeout_s=0.3)
    app = create_app(settings, own)
    app.config["TESTING"] = True
    other = Database(db.engine.url.render_as_string(False))
    try:
        with other.engine.connect() as conn, conn.begin():
            conn.execute(
                text("SELECT id FROM process_instance WHERE id = :id FOR UPDATE"),
                {"id": instance_id},
            )
            yield app
    finally:
        own.dispose()
        other.dispose()


@pytest.mark.postgres_only
def test_a_completion_whose_statement_runs_too_long_answers_503_and_writes_nothing(
    world, db, settings
):
    flow = world
    task = _task(db, flow.instance_id, "ambientar_servicos")
    token = flow.users["Integrador"].headers
    with _slow_app(settings, db, flow.instance_id) as app:
        client = app.test_client()
        res = client.post(
            f"/api/v1/tasks/{task}/complete", json={"data": {"observacoes": "ok"}}, headers=token
        )
        _assert_given_up(res, DB_SLOW_MESSAGE)
        assert _task(db, flow.instance_id, "ambientar_servicos") == task
        assert _completions(db) == 0
    # Nothing holds the row any more: the same request completes within the limit.
    with _slow_app(settings, db, 0) as app:
        res = app.test_client().post(
            f"/api/v1/tasks/{task}/complete", json={"data": {"observacoes": "ok"}}, headers=token
        )
        assert res.status_code == 200, res.json
    assert _completions(db) == 1
    with db.read() as s:
        assert audit.verify(s)[1] is None


@pytest.mark.postgres_only
def test_a_task_form_whose_statement_runs_too_long_comes_back_with_what_was_typed(
    world, db, settings
):
    flow = world
    task = _task(db, flow.instance_id, "ambientar_servicos")
    typed = "Serviços <b>ambientados</b> em homologação"
    with _slow_app(settings, db, flow.instance_id) as app:
        pages = Pages(app).login(flow.users["Integrador"])
        res = pages.post(f"/tarefas/{task}", {"observacoes": typed})
        assert res.status_code == 503
        assert res.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    page = res.get_data(as_text=True)
    assert "O banco de dados demorou demais para responder e nada foi alterado" in page
    assert "Os dados preenchidos foram mantidos" in page
    assert "Serviços &lt;b&gt;ambientados&lt;/b&gt; em homologação</textarea>" in page
    assert _task(db, flow.instance_id, "ambientar_servicos") == task
    assert _completions(db) == 0


@pytest.mark.postgres_only
def test_the_web_apps_statements_have_a_time_limit_unless_configured(db, settings):
    from web import create_app

    url = db.engine.url
    # A command's database (and the tests'): no limit.
    with db.read() as s:
        assert s.execute(text("SHOW statement_timeout")).scalar() == "0"
    # The web app's own database: the setting's limit (60 s by default).
    app = create_app(settings)
    own = app.extensions["credencia.db"]
    try:
        assert settings.db_statement_timeout_seconds == 60
        with own.read() as s:
            assert s.execute(text("SHOW statement_timeout")).scalar() == "1min"
    finally:
        own.dispose()
    # A limit given to the server (here in the URL's options) is kept; 0 sets none.
    configured = url.update_query_dict({"options": "-c statement_timeout=7s"})
    for given, limit, shown in ((configured, 45, "7s"), (url, 0, "0")):
        other = Database(given.render_as_string(False), statement_timeout_s=limit)
        try:
            with other.read() as s:
                assert s.execute(text("SHOW statement_timeout")).scalar() == shown
        finally:
            other.dispose()
