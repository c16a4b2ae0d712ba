"""A completion answers with what comes next: the instance's new stage and status and its
ready tasks the caller may see, so a client needs no third request per task."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.demo import samples
from engine.runtime.models import Task
from tests.support.flows import flow


def test_the_answer_carries_the_next_ready_tasks_and_the_stage(client, world):
    f = flow(client, world)
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    f.complete("ambientar_servicos")
    done = f.complete("solicitar_acesso_homologacao").json
    assert done["state"] == "completed" and done["element"] == "solicitar_acesso_homologacao"
    assert done["instance_stage"] == "Solicitação em análise"
    assert done["instance_status"] == "running"
    # Exactly the instance's ready tasks, as the list of ready tasks gives them.
    ready = {t["id"]: t for t in f.ready()}
    assert {t["id"] for t in done["next"]} == set(ready)
    assert {t["element"] for t in done["next"]} == {
        "desenvolver_conector",
        "avaliar_solicitacao_acesso",
    }
    assert all(t["state"] == "ready" and t["instance"] == f.instance_id for t in done["next"])


def test_the_last_completion_has_nothing_next(client, world):
    f = flow(client, world)
    for element in samples.PRODUCTION_PATH[:-1]:
        f.complete(element)
    done = f.complete("colocar_em_producao").json
    assert done["next"] == [] and done["instance_status"] == "completed"
    assert done["instance_stage"] == "Produção"


def test_a_scoped_caller_gets_the_tasks_of_every_lane_it_may_see(client, world):
    """The gestor (scoped to the establishment) sees its next task and the integrador's one
    still open, as the task list shows them to it."""
    f = flow(client, world)
    done = f.complete("obter_certificado_digital").json
    assert {t["element"]: t["lane"] for t in done["next"]} == {
        "criar_conta_govbr": "Gestor",
        "ambientar_servicos": "Integrador",
    }
    listed = client.get(
        f"/api/v1/tasks?instance={f.instance_id}&state=ready",
        headers=world["users"]["Gestor"].headers,
    ).json["items"]
    assert {t["id"] for t in done["next"]} == {t["id"] for t in listed}


def test_a_completion_is_one_transaction_token_check_included(client, world, db):
    """The complete route checks the token inside the transaction it completes in: one
    connection, one transaction, one commit per request (two before)."""
    from sqlalchemy import event

    f = flow(client, world)
    f.complete("obter_certificado_digital")
    task = f.task("criar_conta_govbr")
    payload = samples.answer("criar_conta_govbr", f.ctx)
    begins: list[object] = []
    commits: list[object] = []

    def began(conn) -> None:
        begins.append(conn)

    def committed(conn) -> None:
        commits.append(conn)

    event.listen(db.engine, "begin", began)
    event.listen(db.engine, "commit", committed)
    try:
        done = client.post(
            f"/api/v1/tasks/{task['id']}/complete",
            json={"data": payload},
            headers=world["users"]["Gestor"].headers,
        )
    finally:
        event.remove(db.engine, "begin", began)
        event.remove(db.engine, "commit", committed)
    assert done.status_code == 200
    assert (len(begins), len(commits)) == (1, 1)


def test_a_completions_answer_is_made_after_its_commit(client, world, db, monkeypatch):
    """The answer is built once the completion is committed: another connection already
    sees the task completed (on SQLite the write lock is free while the answer is made)."""
    from web.api import views

    f = flow(client, world)
    task = f.task("obter_certificado_digital")
    seen: list[str | None] = []
    build = views._tasks

    def answering(session, rows):
        if rows and rows[0].id == task["id"] and rows[0].state == "completed":  # its answer
            with db.engine.connect() as other:  # a connection of its own
                seen.append(other.scalar(select(Task.state).where(Task.id == task["id"])))
        return build(session, rows)

    monkeypatch.setattr(views, "_tasks", answering)
    done = f.complete("obter_certificado_digital")
    assert done.status_code == 200, done.json
    assert seen == ["completed"]
    assert done.json["state"] == "completed" and done.json["next"]


def test_a_refused_completion_commits_nothing(client, world, db):
    """An error inside the completion still rolls the whole request back (the commit at the
    block's end is never reached)."""
    f = flow(client, world)
    task = f.task("obter_certificado_digital")
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {}},
        headers=world["users"]["Gestor"].headers,
    )
    assert res.status_code == 422
    with db.read() as s:
        assert s.scalar(select(Task.state).where(Task.id == task["id"])) == "ready"


def test_a_bad_token_on_the_complete_route_is_still_a_401_and_counted(client, world, db):
    f = flow(client, world)
    task = next(t for t in f.ready() if t["element"] == "obter_certificado_digital")
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {}},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert res.status_code == 401
    assert 'error="invalid_token"' in res.headers["WWW-Authenticate"]
    with db.read() as s:
        state = s.scalar(select(Task.state).where(Task.id == task["id"]))
    assert state == "ready"


def test_a_task_read_checks_its_token_in_the_session_it_reads_in(client, world, db, make):
    """GET /tasks/{id}: the token and the task are read in one transaction; the access log's
    insert is the request's only other one on SQLite (three before), and goes in the read's
    own transaction, committed, on PostgreSQL. A denial in it is audited once."""
    from sqlalchemy import event

    from engine.audit.models import AuditEvent

    f = flow(client, world)
    task = f.task("obter_certificado_digital")
    headers = world["users"]["Gestor"].headers
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=headers).status_code == 200
    begins: list[object] = []
    commits: list[object] = []
    began, committed = begins.append, commits.append
    event.listen(db.engine, "begin", began)
    event.listen(db.engine, "commit", committed)
    try:
        res = client.get(f"/api/v1/tasks/{task['id']}", headers=headers)
    finally:
        event.remove(db.engine, "begin", began)
        event.remove(db.engine, "commit", committed)
    assert res.status_code == 200, res.json
    assert res.json["id"] == task["id"] and res.json["form"]["schema"]["properties"]
    one = db.dialect == "postgresql"
    assert (len(begins), len(commits)) == ((1, 1) if one else (2, 1))

    elsewhere = make.establishment(world["org"])
    outsider = make.user("sesa-pr", "gestor", elsewhere.cnes).headers
    denied = select(func.count()).where(AuditEvent.action == "denied.task.read")
    with db.read() as s:
        before = s.scalar(denied)
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=outsider).status_code == 403
    with db.read() as s:
        assert s.scalar(denied) == before + 1
