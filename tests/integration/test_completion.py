"""Completing a task: the files a form may take, the instance lock its first read takes and
what a change committed while it waits does, and the engine's ``can_*`` questions."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text

from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.certificates.models import Certificate
from engine.completion import service as completion
from engine.demo import samples
from engine.errors import Conflict, Forbidden, Invalid
from engine.files import service as files
from engine.files.models import StoredFile
from engine.runtime import instances as runtime_instances
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import READY, ProcessInstance, Task
from tests.support.sql import statements

KEY = "credenciamento-rnds"


def _ready(db, instance_id: int, element: str) -> str:
    with db.read() as s:
        return s.scalar(
            select(Task.id).where(
                Task.instance_id == instance_id, Task.element_id == element, Task.state == READY
            )
        )


def _start(db, admin, org, est) -> int:
    with db.write() as s:
        return runtime_instances.start_instance(
            s, admin.actor, org_id=org, process_key=KEY, establishment_cnes=est.cnes,
            portfolio_code="RIRA",
        ).id  # fmt: skip


def _complete(db, settings, actor, task_id, data):
    with db.write() as s:
        return completion.complete(s, actor, task_id, data, settings=settings)


def _upload(db, user, org, content: bytes, name: str) -> str:
    with db.write() as s:
        return files.store(s, user.actor, org, name, content, limit=10 << 20).id


@pytest.fixture
def two(make, db, settings):
    """Two establishments of one organization, each with its instance at the certificate
    step, and each with its own gestor and integrador."""
    org = make.org()
    admin = make.user("sesa-pr", "admin")
    sides = []
    for _ in range(2):
        est = make.establishment(org)
        side = SimpleNamespace(
            est=est,
            gestor=make.user("sesa-pr", "gestor", est.cnes),
            integrador=make.user("sesa-pr", "integrador", est.cnes),
            instance=_start(db, admin, org, est),
        )
        task = _ready(db, side.instance, "ambientar_servicos")
        _complete(db, settings, side.integrador.actor, task,
                  samples.answer("ambientar_servicos", {}))  # fmt: skip
        side.certificate_task = _ready(db, side.instance, "obter_certificado_digital")
        sides.append(side)
    return SimpleNamespace(org=org, admin=admin, a=sides[0], b=sides[1])


def _file(db, file_id: str) -> tuple:
    with db.read() as s:
        row = s.get(StoredFile, file_id)
        return row.instance_id, row.establishment_id


def _denials(db) -> list[AuditEvent]:
    with db.read() as s:
        return list(
            s.scalars(select(AuditEvent).where(AuditEvent.action == "denied.task.complete"))
        )


def _certificates(db, est_id: int) -> int:
    with db.read() as s:
        return s.scalar(
            select(func.count()).select_from(Certificate).where(
                Certificate.establishment_id == est_id
            )
        )  # fmt: skip


def _refused(db, settings, side, file_id: str) -> Invalid:
    with pytest.raises(Invalid) as info:
        _complete(db, settings, side.gestor.actor, side.certificate_task, {"certificado": file_id})
    return info.value


def test_another_establishments_attached_file_is_refused_at_the_field(db, settings, two):
    b_file = _upload(db, two.b.gestor, two.org, samples.demo_certificate(two.b.est.cnpj), "b.cer")
    _complete(db, settings, two.b.gestor.actor, two.b.certificate_task, {"certificado": b_file})
    assert _file(db, b_file) == (two.b.instance, two.b.est.id)
    assert _certificates(db, two.b.est.id) == 1

    refused = _refused(db, settings, two.a, b_file)

    assert set(refused.errors) == {"certificado"}
    assert _file(db, b_file) == (two.b.instance, two.b.est.id)  # still B's
    assert _certificates(db, two.a.est.id) == 0
    with db.read() as s:
        assert s.get(Task, two.a.certificate_task).state == READY
    [denial] = _denials(db)
    assert denial.actor == two.a.gestor.email
    assert denial.entity_id == two.a.certificate_task
    assert denial.data["files"] == [b_file]
    with db.read() as s:
        assert audit.verify(s)[1] is None


def test_a_file_someone_else_uploaded_is_refused_even_before_it_is_attached(db, settings, two):
    b_file = _upload(db, two.b.gestor, two.org, samples.demo_certificate(two.a.est.cnpj), "x.cer")

    refused = _refused(db, settings, two.a, b_file)

    assert set(refused.errors) == {"certificado"}
    assert _file(db, b_file) == (None, None)
    assert _certificates(db, two.a.est.id) == 0
    assert [d.data["files"] for d in _denials(db)] == [[b_file]]


def test_the_same_refusal_over_the_api(db, client, two):
    # A certificate of A's own CNPJ, but uploaded by B's gestor: not A's gestor's to use.
    b_file = _upload(db, two.b.gestor, two.org, samples.demo_certificate(two.a.est.cnpj), "x.cer")
    res = client.post(
        f"/api/v1/tasks/{two.a.certificate_task}/complete",
        json={"data": {"certificado": b_file}},
        headers=two.a.gestor.headers,
    )
    assert res.status_code == 422, res.json
    assert "certificado" in res.json["errors"]
    assert _file(db, b_file) == (None, None)
    assert len(_denials(db)) == 1


def test_own_uploads_and_the_instances_own_files_are_taken(db, settings, two):
    own = _upload(db, two.a.gestor, two.org, samples.demo_certificate(two.a.est.cnpj), "a.cer")
    _complete(db, settings, two.a.gestor.actor, two.a.certificate_task, {"certificado": own})
    assert _file(db, own) == (two.a.instance, two.a.est.id)
    assert _certificates(db, two.a.est.id) == 1
    assert _denials(db) == []


def _file_reads(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("SELECT") and " FROM stored_file " in f"{s} "]


def test_the_file_a_form_names_is_read_with_its_task_content_and_all(db, settings, two):
    """The certificate the form names comes with the completion's first read, its content
    with it: no statement of its own reads a stored file, one UPDATE attaches it, and the
    certificate registered is that very file (not a copy)."""
    own = _upload(db, two.a.gestor, two.org, samples.demo_certificate(two.a.est.cnpj), "a.cer")

    with statements(db) as seen:
        _complete(db, settings, two.a.gestor.actor, two.a.certificate_task, {"certificado": own})

    assert _file_reads(seen) == []
    assert "stored_file" in seen[0]  # (the task's read)
    assert sum(s.startswith("UPDATE stored_file ") for s in seen) == 1
    assert _file(db, own) == (two.a.instance, two.a.est.id)
    with db.read() as s:
        [cert] = s.scalars(select(Certificate).where(Certificate.establishment_id == two.a.est.id))
        assert cert.file_id == own
        assert s.scalar(select(func.count()).select_from(StoredFile)) == 1


def test_a_file_of_another_organization_named_in_a_form_is_an_unknown_file(db, settings, two, make):
    """The first read looks for what the form names in the instance's organization only: a
    file of another one is refused as a file that does not exist, and stays as it was."""
    other_org = make.org("sesa-sp", "Secretaria da Saúde de São Paulo")
    stranger = make.user("sesa-sp", "admin")
    foreign = _upload(db, stranger, other_org, samples.demo_certificate(two.a.est.cnpj), "f.cer")
    missing = "0b6d2f5e-3c1a-4e8b-9f00-1234567890ab"

    as_foreign = _refused(db, settings, two.a, foreign)
    as_missing = _refused(db, settings, two.a, missing)

    assert as_foreign.errors == as_missing.errors
    assert set(as_foreign.errors) == {"certificado"}
    assert _file(db, foreign) == (None, None)
    assert _certificates(db, two.a.est.id) == 0
    assert _denials(db) == []  # (nothing of this organization was used)


# ------------------------------------------------------------------ the lock and what changes under it


def _waiting_for_a_lock(db) -> bool:
    with db.read() as s:
        return bool(
            s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            )
        )


@contextmanager
def _held(db, change):
    """``change`` done in a transaction that stays open, holding its locks, for the length of
    the block, and commits when the block ends."""
    changed, commit = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write() as s:
            change(s)
            changed.set()
            commit.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert changed.wait(30)
        yield
    finally:
        commit.set()
        holder.join(30)


def _commit_while_a_completion_waits(db, change, complete):
    """Run ``change`` in a transaction, start ``complete`` while that transaction holds the
    instance, commit the change once the completion waits for the lock: what ``complete``
    returned or raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(complete())
        except Exception as exc:  # asserted by the caller
            outcome.append(exc)

    completer = threading.Thread(target=run)
    try:
        with _held(db, change):
            completer.start()
            for _ in range(300):
                if _waiting_for_a_lock(db):
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("the completion never waited for the instance's lock")
    finally:
        completer.join(30)
    return outcome[0]


@pytest.mark.postgres_only
def test_a_completion_reads_its_rows_under_the_instance_lock(db, settings, two):
    """The completion's first statement waits for the instance's lock: a transaction holding
    it makes the completion time out before any check of the form."""

    def hold_lock(s) -> None:
        s.execute(select(ProcessInstance.id).where(ProcessInstance.id == two.a.instance)
                  .with_for_update())  # fmt: skip

    with _held(db, hold_lock), pytest.raises(Exception, match="lock timeout"), db.write() as s:
        s.execute(text("SET LOCAL lock_timeout = '1s'"))
        # An empty form: Invalid, had it been checked before the lock.
        completion.complete(s, two.a.gestor.actor, two.a.certificate_task, {}, settings=settings)


@pytest.mark.postgres_only
def test_a_claim_committed_while_the_completion_waits_is_seen(db, settings, two, make):
    other = make.user("sesa-pr", "gestor", two.a.est.cnes)
    own = _upload(db, two.a.gestor, two.org, samples.demo_certificate(two.a.est.cnpj), "a.cer")
    result = _commit_while_a_completion_waits(
        db,
        lambda s: runtime_tasks.claim(s, other.actor, two.a.certificate_task),
        lambda: _complete(
            db, settings, two.a.gestor.actor, two.a.certificate_task, {"certificado": own}
        ),
    )
    assert isinstance(result, Conflict) and "atribuída a outra pessoa" in str(result), result
    with db.read() as s:
        task = s.get(Task, two.a.certificate_task)
        assert (task.state, task.assignee_id) == (READY, other.actor.user_id)
    assert _certificates(db, two.a.est.id) == 0


@pytest.mark.postgres_only
def test_a_cancel_committed_while_the_completion_waits_is_seen(db, settings, two):
    own = _upload(db, two.a.gestor, two.org, samples.demo_certificate(two.a.est.cnpj), "a.cer")
    result = _commit_while_a_completion_waits(
        db,
        lambda s: runtime_instances.cancel(s, two.admin.actor, two.a.instance, "desistência"),
        lambda: _complete(
            db, settings, two.a.gestor.actor, two.a.certificate_task, {"certificado": own}
        ),
    )
    assert isinstance(result, Conflict) and "cancelada" in str(result), result
    assert _certificates(db, two.a.est.id) == 0
    assert _file(db, own) == (None, None)


def test_a_claim_changes_no_value_of_the_instance(db, settings, two, make):
    """The claim's lock (an UPDATE that sets nothing new, on PostgreSQL) leaves the instance's
    values and its version, the key of its live workflow, as they were."""
    other = make.user("sesa-pr", "gestor", two.a.est.cnes)
    columns = [c for c in ProcessInstance.__table__.c]
    with db.read() as s:
        before = s.execute(select(*columns).where(ProcessInstance.id == two.a.instance)).one()
    with db.write() as s:
        runtime_tasks.claim(s, other.actor, two.a.certificate_task)
    with db.read() as s:
        after = s.execute(select(*columns).where(ProcessInstance.id == two.a.instance)).one()
        assert s.get(Task, two.a.certificate_task).assignee_id == other.actor.user_id
    assert after == before


# ------------------------------------------------------------------ the engine's questions


def _allowed(db, action, *args) -> bool:
    """Whether the action's checks let the actor through (rolled back either way): a field
    error means they did."""
    session = db.session_factory()
    try:
        action(session, *args)
        return True
    except Invalid:
        return True
    except (Forbidden, Conflict):
        return False
    finally:
        session.rollback()
        session.close()


def _complete_empty(session, actor, task_id, settings):
    return completion.complete(session, actor, task_id, {}, settings=settings)


def test_the_questions_answer_what_the_actions_allow(db, settings, two, make):
    other = make.user("sesa-pr", "gestor", two.a.est.cnes)
    with db.write() as s:
        runtime_tasks.claim(s, other.actor, two.a.certificate_task)
    people = [two.admin, two.a.gestor, two.a.integrador, two.b.gestor, other]
    for side in (two.a, two.b):
        task_id = side.certificate_task
        for person in people:
            actor = person.actor
            with db.read() as s:
                task = s.get(Task, task_id)
            asked = {
                "claim": runtime_tasks.can_claim(actor, task),
                "complete": runtime_tasks.can_complete(actor, task),
                "release": runtime_tasks.can_release(actor, task),
                "assign": runtime_tasks.can_assign(actor, task),
            }
            done = {
                # Claiming a task one holds, or releasing a free one, changes nothing.
                "claim": _allowed(db, runtime_tasks.claim, actor, task_id)
                and task.assignee_id is None,
                "complete": _allowed(db, _complete_empty, actor, task_id, settings),
                "release": _allowed(db, runtime_tasks.release, actor, task_id)
                and task.assignee_id is not None,
                "assign": _allowed(db, runtime_tasks.assign, actor, task_id, other.email),
            }
            assert asked == done, (side.est.cnes, person.email)
    with db.read() as s:
        task = s.get(Task, two.a.certificate_task)
    assert runtime_tasks.can_complete(other.actor, task)
    assert not runtime_tasks.can_complete(two.a.gestor.actor, task)
    assert runtime_tasks.can_release(two.admin.actor, task)


def _task_row(db, task_id: str) -> dict:
    with db.read() as s:
        row = s.get(Task, task_id)
        return {c.name: getattr(row, c.name) for c in Task.__table__.c}


@pytest.mark.parametrize("case", ["a new task whose id is taken", "a closed task closed again"])
def test_sqlites_one_statement_for_a_syncs_task_rows_adds_or_closes_nothing_else(db, two, case):
    """SQLite writes a completion's task rows, the closed and the new, in one upsert
    (engine/runtime/sync.py): a row adds a new ready task or closes a ready one, never
    overwrites another. A row that would is refused, and its statement writes nothing."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL writes them as an UPDATE and an INSERT in one statement")
    from engine.runtime import sync

    ready = _task_row(db, two.a.certificate_task)
    closed = _task_row(db, _closed_task(db, two.a.instance))
    other = _task_row(db, two.b.certificate_task)
    if case == "a new task whose id is taken":
        rows = [{**other, "state": "completed"}, {**ready, "name": "Outra"}]
    else:
        rows = [{**other, "state": "completed"}, {**closed, "state": "cancelled"}]
    with pytest.raises(RuntimeError, match="neither added nor closed"), db.write() as s:
        sync._send_task_rows(s, rows)
    assert _task_row(db, two.b.certificate_task) == other  # rolled back with the rest
    assert _task_row(db, two.a.certificate_task) == ready
    assert _task_row(db, closed["id"]) == closed


def _closed_task(db, instance_id: int) -> str:
    with db.read() as s:
        return s.scalar(
            select(Task.id).where(Task.instance_id == instance_id, Task.state == "completed")
        )


def test_sqlites_task_rows_beyond_one_statements_share_go_in_several(db, two):
    """A sync that opens very many tasks at once (a wide multi-instance) stays within SQLite's
    parameter limit: its rows go in chunks, and every one is written."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL writes them in one data-modifying WITH statement")
    import uuid

    from engine.runtime import sync

    ready = _task_row(db, two.a.certificate_task)
    new = [{**ready, "id": str(uuid.uuid4())} for _ in range(450)]
    with statements(db) as seen, db.write() as s:
        sync._send_task_rows(s, new)
    assert len([sql for sql in seen if sql.startswith("INSERT INTO task")]) == 3
    with db.read() as s:
        added = s.scalar(select(func.count()).where(Task.id.in_([r["id"] for r in new])))
    assert added == 450
