"""BPMN timers: found through the indexed next_timer_due_at, fired once in a locked
transaction, audited — and no workflow is deserialized when nothing is due."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select, update

from engine.access.actor import SYSTEM
from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.runtime import instances as runtime_instances
from engine.runtime import timers
from engine.runtime.models import ProcessInstance, Task
from engine.workflow import spiff
from tests.support.scheduler import deploy_fixture

START = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
DEADLINE = START + timedelta(hours=2)  # the boundary timer, "PT2H"
CHASE = datetime(2027, 3, 2, 12, 0, tzinfo=UTC)  # "2027-03-02T09:00:00-03:00"


@pytest.fixture
def started(make, db):
    """``start(n)`` starts n instances of the fixture process at START, one per establishment."""
    deploy_fixture(db)
    org = make.org()

    def start(n: int = 1) -> list[int]:
        ids = []
        for _ in range(n):
            est = make.establishment(org)
            with time_machine.travel(START, tick=False), db.write() as s:
                ids.append(
                    runtime_instances.start_instance(
                        s,
                        SYSTEM,
                        org_id=org,
                        process_key="prazo-teste",
                        establishment_cnes=est.cnes,
                    ).id
                )
        return ids

    return start


def _tasks(db, instance_id: int) -> dict[str, str]:
    with db.read() as s:
        return {t.element_id: t.state for t in runtime_instances.instance_tasks(s, instance_id)}


def _fired(db, instance_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "timer.fired")
    if instance_id is not None:
        stmt = stmt.where(AuditEvent.entity_id == str(instance_id))
    with db.read() as s:
        return s.scalar(stmt)


def _instance(db, instance_id: int) -> ProcessInstance:
    with db.read() as s:
        return s.get(ProcessInstance, instance_id)


def test_boundary_duration_timer_fires_once_cancels_the_task_and_is_audited(db, started) -> None:
    (iid,) = started(1)
    assert _instance(db, iid).next_timer_due_at == DEADLINE
    assert _tasks(db, iid) == {"analisar": "ready"}

    with time_machine.travel(DEADLINE - timedelta(minutes=1), tick=False):
        early = timers.fire_due_timers(db)
    assert (early.fired, early.loaded) == (0, 0)

    with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=False):
        sweep = timers.fire_due_timers(db)
        again = timers.fire_due_timers(db)
    assert (sweep.fired, sweep.loaded, sweep.failed) == (1, 1, 0)
    assert (again.fired, again.loaded) == (0, 0)
    assert _tasks(db, iid) == {"analisar": "cancelled"}
    assert _fired(db, iid) == 1
    with db.read() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "timer.fired"))
        assert event.actor == "system" and event.data["timers"] == ["Prazo da análise"]
        assert event.data["cancelled"] == ["Analisar solicitação"]
        assert audit.verify(s)[1] is None
        assert _instance(db, iid).version == 2


def test_time_date_with_explicit_offset_is_indexed_and_fires_at_that_instant(db, started) -> None:
    (iid,) = started(1)
    with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=False):
        timers.fire_due_timers(db)
    assert _instance(db, iid).next_timer_due_at == CHASE  # 09:00 in São Paulo is 12:00 UTC
    with time_machine.travel(CHASE - timedelta(seconds=5), tick=False):
        assert timers.fire_due_timers(db).loaded == 0
    with time_machine.travel(CHASE + timedelta(seconds=1), tick=False):
        assert timers.fire_due_timers(db).fired == 1
    assert _tasks(db, iid) == {"analisar": "cancelled", "cobrar": "ready"}
    inst = _instance(db, iid)
    assert inst.next_timer_due_at is None and inst.stage == "Cobrança"
    with db.read() as s:
        due = s.scalar(
            select(Task.due_at).where(Task.instance_id == iid, Task.element_id == "cobrar")
        )
    assert due == datetime(2027, 3, 3, 23, 59, 59, tzinfo=UTC) - timedelta(
        hours=-3
    )  # end of Wed 3, local


def test_the_sweep_deserializes_only_instances_with_something_due(db, started, monkeypatch) -> None:
    ids = started(6)
    loads: list[int] = []
    real_load = spiff.load_state
    monkeypatch.setattr(
        spiff, "load_state", lambda loaded, state: loads.append(1) or real_load(loaded, state)
    )
    # Only the first two are due (as if started earlier); the others wait another hour.
    with db.write() as s:
        s.execute(
            update(ProcessInstance)
            .where(ProcessInstance.id.in_(ids[2:]))
            .values(next_timer_due_at=DEADLINE + timedelta(hours=1))
        )
    with time_machine.travel(DEADLINE - timedelta(seconds=30), tick=False):
        sweep = timers.fire_due_timers(db)
    assert (sweep.loaded, len(loads)) == (0, 0)
    total_before = timers.workflows_loaded()
    with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=False):
        sweep = timers.fire_due_timers(db)
    assert (sweep.fired, sweep.loaded, len(loads)) == (2, 2, 2)
    assert sorted(sweep.fired_ids) == sorted(ids[:2])
    assert timers.workflows_loaded() - total_before == 2
    with time_machine.travel(DEADLINE + timedelta(minutes=5), tick=False):
        assert timers.fire_due_timers(db).loaded == 0
    assert len(loads) == 2


def test_two_sweeps_racing_fire_each_timer_exactly_once(db, started) -> None:
    ids = started(12)
    barrier = threading.Barrier(2)
    results: list[timers.TimerSweep | BaseException] = [None, None]

    def sweep(i: int) -> None:
        barrier.wait()
        try:
            results[i] = timers.fire_due_timers(db)
        except BaseException as exc:  # asserted below
            results[i] = exc

    with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=True):
        threads = [threading.Thread(target=sweep, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert all(isinstance(r, timers.TimerSweep) for r in results), results
    assert sum(r.fired for r in results) == 12
    assert sorted(results[0].fired_ids + results[1].fired_ids) == sorted(ids)
    assert sum(r.failed for r in results) == 0
    for iid in ids:
        assert _fired(db, iid) == 1
        assert _tasks(db, iid) == {"analisar": "cancelled"}
        assert _instance(db, iid).version == 2


def test_a_failing_instance_is_reported_and_does_not_stop_the_sweep(db, started) -> None:
    ids = started(3)
    with db.write() as s:
        s.execute(
            update(ProcessInstance).where(ProcessInstance.id == ids[1]).values(state="{broken")
        )
    with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=False):
        sweep = timers.fire_due_timers(db)
    assert (sweep.fired, sweep.failed, sweep.failed_ids) == (2, 1, [ids[1]])
    assert _instance(db, ids[1]).next_timer_due_at == DEADLINE  # still due: retried next sweep


def test_a_sweep_meeting_an_instance_another_sweep_is_firing_skips_it(
    db, started, monkeypatch
) -> None:
    """Interleaved on purpose: sweep A stops inside its transaction on the first instance while
    sweep B runs. On PostgreSQL B skips the locked row (SKIP LOCKED); on SQLite B waits for
    A's write lock and then finds the timer no longer due. Either way: fired once each."""
    ids = started(2)
    b_started = threading.Event()
    real_fire = timers.fire_instance
    a_thread: list[threading.Thread] = []

    def paused_fire(session, instance_id, now, sweep=None):
        if threading.current_thread() is a_thread[0] and instance_id == ids[0]:
            assert b_started.wait(10)
            time.sleep(0.3)  # B meets instance 1 while A holds it
        return real_fire(session, instance_id, now, sweep)

    monkeypatch.setattr(timers, "fire_instance", paused_fire)
    results: dict[str, timers.TimerSweep] = {}

    def run(name: str) -> None:
        if name == "b":
            b_started.set()
        results[name] = timers.fire_due_timers(db)

    with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=True):
        a_thread.append(threading.Thread(target=run, args=("a",)))
        a_thread[0].start()
        time.sleep(0.1)
        b = threading.Thread(target=run, args=("b",))
        b.start()
        for t in (a_thread[0], b):
            t.join(60)
    a, b_ = results["a"], results["b"]
    assert ids[0] in a.fired_ids and ids[0] not in b_.fired_ids
    assert a.fired + b_.fired == 2 and b_.skipped >= 1
    assert [_fired(db, iid) for iid in ids] == [1, 1]


def test_a_stale_next_timer_due_at_is_corrected_instead_of_reloaded_every_sweep(
    db, started
) -> None:
    (iid,) = started(1)
    with db.write() as s:  # the column says due, the saved state says two hours later
        s.execute(
            update(ProcessInstance).where(ProcessInstance.id == iid).values(next_timer_due_at=START)
        )
    with time_machine.travel(START + timedelta(minutes=1), tick=False):
        first = timers.fire_due_timers(db)
        second = timers.fire_due_timers(db)
    assert (first.loaded, first.not_yet, first.fired) == (1, 1, 0)
    assert second.loaded == 0
    assert _instance(db, iid).next_timer_due_at == DEADLINE and _fired(db, iid) == 0


def _sweep_listening(db, name: str, listener) -> timers.TimerSweep:
    """A sweep just after the deadline, with ``listener`` on the engine's ``name`` event."""
    from sqlalchemy import event

    event.listen(db.engine, name, listener)
    try:
        with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=False):
            return timers.fire_due_timers(db)
    finally:
        event.remove(db.engine, name, listener)


def test_due_instances_are_fired_in_batches_one_commit_each(db, started, monkeypatch) -> None:
    """Seven due instances with batches of three: three transactions (3 + 3 + 1), each timer
    fired and audited once, in one intact chain."""
    monkeypatch.setattr(timers, "PER_TRANSACTION", 3)
    ids = started(7)
    commits: list[int] = []
    sweep = _sweep_listening(db, "commit", lambda conn: commits.append(1))
    assert sweep.fired == 7 and sorted(sweep.fired_ids) == sorted(ids) and sweep.loaded == 7
    # Three write transactions; the read of the candidates writes nothing (on PostgreSQL it
    # ends with a COMMIT of nothing, which keeps the connection's prepared statements).
    assert len(commits) == (4 if db.dialect == "postgresql" else 3)
    assert [_fired(db, iid) for iid in ids] == [1] * 7
    assert all(_tasks(db, iid) == {"analisar": "cancelled"} for iid in ids)
    with db.read() as s:
        assert audit.verify(s)[1] is None


def test_a_batch_writes_its_instances_rows_in_a_few_statements(db, started, monkeypatch):
    """Firing a batch writes the rows of all its instances together: as many statements for
    six instances as for two (one per kind of write), each row as firing it alone gives."""
    monkeypatch.setattr(timers, "PER_TRANSACTION", 6)
    small, large = started(2), started(6)

    def sweep_counting(ids: list[int]) -> int:
        seen: list[str] = []

        def statement(conn, cursor, sql, *args) -> None:
            if sql.lstrip().startswith(
                ("UPDATE task", "UPDATE process_instance", "INSERT INTO task")
            ):
                seen.append(sql)

        monkeypatch.setattr(timers, "_due_ids", lambda session, now, batch: ids)
        sweep = _sweep_listening(db, "before_cursor_execute", statement)
        assert sweep.fired == len(ids)
        return len(seen)

    assert sweep_counting(small) == sweep_counting(large) <= 3
    assert all(_tasks(db, iid) == {"analisar": "cancelled"} for iid in small + large)
    assert [_fired(db, iid) for iid in small + large] == [1] * 8


def test_a_failing_instance_in_a_batch_leaves_the_others_fired(db, started, monkeypatch) -> None:
    """The batch with the broken instance rolls back whole and is redone one by one: the
    others of that batch fire, the broken one stays due."""
    monkeypatch.setattr(timers, "PER_TRANSACTION", 4)
    ids = started(4)
    with db.write() as s:
        s.execute(
            update(ProcessInstance).where(ProcessInstance.id == ids[2]).values(state="{broken")
        )
    with time_machine.travel(DEADLINE + timedelta(seconds=1), tick=False):
        sweep = timers.fire_due_timers(db)
    assert (sweep.fired, sweep.failed, sweep.failed_ids) == (3, 1, [ids[2]])
    assert [_fired(db, iid) for iid in ids] == [1, 1, 0, 1]
    assert _instance(db, ids[2]).next_timer_due_at == DEADLINE
