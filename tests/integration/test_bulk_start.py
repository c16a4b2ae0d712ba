"""Bulk start (engine/runtime/bulk.py): the national fast path gives what start_instance gives.

On PostgreSQL ``start_all`` writes instances, tasks and audit events with COPY; on SQLite it
calls ``start_instance`` per establishment. Both must leave the same rows, a verifiable audit
chain, workflows that continue, and exactly one latest instance per establishment, process
and portfolio (the dashboard's row).
"""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import func, select

from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.completion import service as completion
from engine.credentialing import vocabulary
from engine.dashboard import counts
from engine.dashboard import queries as dashboard
from engine.demo import samples
from engine.runtime import bulk
from engine.runtime import instances as runtime_instances
from engine.runtime import state as runtime_state
from engine.runtime.models import CANCELLED, READY, RUNNING, ProcessInstance, Task
from engine.workflow import spiff

KEY = "credenciamento-rnds"


def _world(make, n: int = 7):
    org = make.org()
    ests = [make.establishment(org, uf=("PR", "SP", "BA")[i % 3]) for i in range(n)]
    admin = make.user("sesa-pr", "admin")
    return org, ests, admin


def _tasks(db, instance_id: int) -> list[tuple]:
    with db.read() as s:
        return sorted(
            s.execute(
                select(
                    Task.element_id,
                    Task.name,
                    Task.lane,
                    Task.role,
                    Task.state,
                    Task.stage,
                    Task.form,
                    Task.due_at,
                    Task.establishment_id,
                ).where(Task.instance_id == instance_id)
            ).all()  # fmt: skip
        )


def test_start_all_equals_one_by_one_and_skips_running(make, db):
    org, ests, admin = _world(make)
    with db.write() as s:
        reference = runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                           establishment_cnes=ests[0].cnes, portfolio_code="REL")  # fmt: skip
        reference_id = reference.id

    counts = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL", batch=3)

    assert (counts.started, counts.skipped) == (len(ests) - 1, 1)
    assert counts.batches == 3  # 7 establishments, 3 per batch
    with db.read() as s:
        instances = s.scalars(
            select(ProcessInstance)
            .where(ProcessInstance.org_id == org)
            .order_by(ProcessInstance.id)
        ).all()
        assert [i.establishment_id for i in instances] == [e.id for e in ests]
        assert {(i.status, i.stage, i.portfolio_code, i.is_latest) for i in instances} == {
            (RUNNING, reference.stage, "REL", True)
        }
        bulk_ids = [i.id for i in instances if i.id != reference_id]
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "instance.started")
            .order_by(AuditEvent.seq)
        ).all()  # fmt: skip
        assert [e.entity_id for e in events] == [str(i.id) for i in instances]
        by_est = {e.id: e.cnes for e in ests}
        for event, inst in zip(events, instances, strict=True):
            assert event.data == {"process": KEY, "version": 1, "portfolio": "REL",
                                  "establishment": by_est[inst.establishment_id]}  # fmt: skip
        checked, broken = audit.verify(s)
        assert broken is None and checked >= len(events)
        # Each workflow is its own: no task id is shared between instances.
        assert s.scalar(select(func.count(func.distinct(Task.id)))) == s.scalar(
            select(func.count()).select_from(Task)
        )

    shape = [(row[0], row[2], row[3], row[4], row[5], row[6]) for row in _tasks(db, reference_id)]
    for iid in bulk_ids:
        assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in _tasks(db, iid)] == shape

    # A bulk-started workflow continues like any other.
    est = ests[1]
    integrador = make.user("sesa-pr", "integrador", est.cnes)
    with db.write() as s:
        task = s.scalar(select(Task).where(Task.establishment_id == est.id, Task.state == READY,
                                           Task.element_id == "ambientar_servicos"))  # fmt: skip
        completion.complete(s, integrador.actor, task.id, samples.answer("ambientar_servicos", {}))
    with db.read() as s:
        done = s.get(Task, task.id)
        assert done.state == "completed"

    # Run again: everything is running already, nothing starts.
    again = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL")
    assert (again.started, again.skipped) == (0, len(ests))


def test_a_new_start_becomes_the_latest_and_the_dashboard_shows_only_it(make, db):
    org, ests, admin = _world(make, 4)
    with db.write() as s:
        first = runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                       establishment_cnes=ests[0].cnes, portfolio_code="REL")  # fmt: skip
        other_portfolio = runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                                 establishment_cnes=ests[0].cnes,
                                                 portfolio_code="RIA")  # fmt: skip
        first_id, other_id = first.id, other_portfolio.id
    with db.write() as s:
        runtime_instances.cancel(s, admin.actor, first_id, "Aberto por engano.")
    with db.write() as s:
        second_id = runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                           establishment_cnes=ests[0].cnes,
                                           portfolio_code="REL").id  # fmt: skip
    with db.write() as s:
        runtime_instances.cancel(s, admin.actor, second_id, "De novo por engano.")
    # The bulk pass starts a third REL instance for ests[0] and the first for the others.
    bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL")

    with db.read() as s:
        rows = s.execute(
            select(ProcessInstance.id, ProcessInstance.establishment_id,
                   ProcessInstance.portfolio_code, ProcessInstance.status,
                   ProcessInstance.is_latest).order_by(ProcessInstance.id)
        ).all()  # fmt: skip
        # Latest = the newest of each (establishment, process, portfolio), computed by hand.
        newest: dict[tuple, int] = {}
        for iid, est_id, code, _status, _latest in rows:
            newest[(est_id, code)] = max(iid, newest.get((est_id, code), 0))
        assert {r[0] for r in rows if r[4]} == set(newest.values())
        assert {r[0]: r[3] for r in rows}[first_id] == CANCELLED
        assert other_id in newest.values()

        page, total = dashboard.page(s, admin.actor, org)
        shown = sorted(r.instance.id for r in page if r.instance is not None)
        assert shown == sorted(newest.values())
        assert total == len(newest)
        summary = dashboard.summary(s, admin.actor, org)
        assert summary.total == len(newest)
        assert summary.counts.get((dashboard.NOT_STARTED, "PR"), 0) == 0


# ------------------------------------------------------------------ workflows built in a pool


def _postgres_only(db) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the worker pool builds for the COPY path, which is PostgreSQL's")


def _workflow_shape(loaded: spiff.LoadedSpec, state: str) -> tuple:
    workflow = spiff.load_state(loaded, state)
    data = {k: v for k, v in workflow.task_tree.data.items() if k != "portfolio"}
    tasks = sorted((t.task_spec.name, t.state) for t in workflow.get_tasks())
    ready = sorted(str(t.id) for t in spiff.ready_human_tasks(workflow))
    return data, tasks, ready


def test_workers_build_what_the_main_process_builds(make, db, monkeypatch):
    _postgres_only(db)
    org, ests, admin = _world(make, 25)
    inline = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL", batch=5,
                            workers=0)  # fmt: skip
    # With workers, nothing is built in this process (a spawned worker has its own _build).
    monkeypatch.setattr(bulk, "_build", lambda *a: pytest.fail("built in the main process"))
    pooled = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="RIA", batch=5,
                            workers=2)  # fmt: skip
    monkeypatch.undo()

    assert (inline.started, inline.skipped, inline.batches) == (25, 0, 5)
    assert (pooled.started, pooled.skipped, pooled.batches) == (25, 0, 5)
    assert multiprocessing.active_children() == []
    with db.read() as s:
        instances = s.scalars(select(ProcessInstance).order_by(ProcessInstance.id)).all()
        rel = [i for i in instances if i.portfolio_code == "REL"]
        ria = [i for i in instances if i.portfolio_code == "RIA"]
        for run in (rel, ria):
            assert [i.establishment_id for i in run] == [e.id for e in ests]
            assert {(i.status, i.is_latest, i.version) for i in run} == {(RUNNING, True, 1)}
        assert [i.stage for i in ria] == [i.stage for i in rel]
        assert [(i.next_timer_due_at is None) for i in ria] == [
            (i.next_timer_due_at is None) for i in rel
        ]
        # One event per instance, chained in instance order, REL's run then RIA's.
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "instance.started")
            .order_by(AuditEvent.seq)
        ).all()  # fmt: skip
        assert [e.entity_id for e in events] == [str(i.id) for i in rel + ria]
        checked, broken = audit.verify(s)
        assert broken is None and checked >= len(events)
        assert counts.differences(s, org) == {}  # the dashboard's counters
        # The saved states restore to the same workflow; the task rows are its ready tasks.
        loaded = runtime_state.loaded_spec(s, rel[0])
        for a, b in zip(rel, ria, strict=True):
            data_a, tasks_a, ready_a = _workflow_shape(loaded, a.state)
            data_b, tasks_b, ready_b = _workflow_shape(loaded, b.state)
            assert (data_b, tasks_b) == (data_a, tasks_a)
            rows_b = s.scalars(select(Task.id).where(Task.instance_id == b.id)).all()
            assert sorted(rows_b) == ready_b and not set(ready_a) & set(ready_b)
    for a, b in zip(rel, ria, strict=True):
        assert [r[:7] + r[8:] for r in _tasks(db, b.id)] == [
            r[:7] + r[8:] for r in _tasks(db, a.id)
        ]

    # A workflow built by a worker continues like any other.
    integrador = make.user("sesa-pr", "integrador", ests[3].cnes)
    with db.write() as s:
        task = s.scalar(select(Task).where(Task.instance_id == ria[3].id, Task.state == READY,
                                           Task.element_id == "ambientar_servicos"))  # fmt: skip
        completion.complete(s, integrador.actor, task.id, samples.answer("ambientar_servicos", {}))
    with db.read() as s:
        assert s.get(Task, task.id).state == "completed"
        assert s.get(ProcessInstance, ria[3].id).version == 2

    again = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="RIA", workers=2)
    assert (again.started, again.skipped) == (0, len(ests))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_workflow_that_fails_to_build_rolls_its_batch_back(make, db, monkeypatch, workers):
    _postgres_only(db)
    org, ests, admin = _world(make, 6)
    bad = ests[1]
    # Bytes in the start data: the workflow runs, then its state does not serialize.
    establishment_data = vocabulary.PROVIDERS["establishment"]

    def with_bytes(session, ests, portfolio, given, now):
        data = establishment_data(session, ests, portfolio, given, now)
        return [
            {**d, "anexo": b"\x00"} if e.id == bad.id else d
            for e, d in zip(ests, data, strict=True)
        ]

    monkeypatch.setitem(vocabulary.PROVIDERS, "establishment", with_bytes)

    with pytest.raises(bulk.BuildFailed, match=f"CNES {bad.cnes}: TypeError"):
        bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL", batch=3,
                       workers=workers)  # fmt: skip

    assert multiprocessing.active_children() == []
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ProcessInstance)) == 0
        assert s.scalar(select(func.count()).select_from(Task)) == 0
        assert s.scalar(select(func.count()).where(AuditEvent.action == "instance.started")) == 0
        assert audit.verify(s)[1] is None
        assert counts.differences(s, org) == {}
    # Nothing is left half-done: without the bad data the same call starts everything.
    monkeypatch.setitem(vocabulary.PROVIDERS, "establishment", establishment_data)
    retry = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL", batch=3,
                           workers=0)  # fmt: skip
    assert (retry.started, retry.skipped) == (len(ests), 0)


# ------------------------------------------------------------------ stamped workflows


def test_stamped_workflows_are_what_a_real_build_gives(make, db, settings):
    """By default the COPY path stamps each new workflow from a template (engine/workflow/
    stamp.py). Every instance's saved state is the one a real build from its own start data
    gives (ids and times aside), its task rows name the state's own ready tasks, ids are
    never shared, and a stamped instance goes on like any other."""
    from engine.workflow import stamp

    _postgres_only(db)
    org, ests, admin = _world(make, 30)
    made = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL", batch=7)
    # The first start is the template, the second a real build checking it: 28 stamped.
    assert (made.started, made.stamped) == (30, 28)
    with db.read() as s:
        rows = s.scalars(select(ProcessInstance).order_by(ProcessInstance.id)).all()
        loaded = runtime_state.loaded_spec(s, rows[0])
        seen: set[str] = set()
        for inst in rows:
            workflow = spiff.load_state(loaded, inst.state)
            real = spiff.new_workflow(loaded, dict(workflow.task_tree.data))
            assert stamp.canonical(inst.state) == stamp.canonical(spiff.dump_state(real))
            ready = {str(t.id) for t in spiff.ready_human_tasks(workflow)}
            listed = set(s.scalars(select(Task.id).where(Task.instance_id == inst.id)))
            assert listed == ready and not (ready & seen)
            seen |= ready
    task = _ready(db, rows[-1].id, "obter_certificado_digital")
    gestor = make.user("sesa-pr", "gestor", ests[-1].cnes)
    cert = samples.demo_certificate(ests[-1].cnpj)
    with db.write() as s:
        from engine.files import service as files

        file_id = files.store(s, gestor.actor, org, "c.cer", cert, limit=10**7).id
    with db.write() as s:
        completion.complete(s, gestor.actor, task, {"certificado": file_id}, settings=settings)
    assert _ready(db, rows[-1].id, "criar_conta_govbr")


def _ready(db, instance_id: int, element: str) -> str:
    with db.read() as s:
        return s.scalar(
            select(Task.id).where(
                Task.instance_id == instance_id, Task.element_id == element, Task.state == READY
            )
        )
