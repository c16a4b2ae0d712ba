"""Races made deterministic: many transactions released at one barrier against one task."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from engine.completion import service as completion
from engine.demo import samples
from engine.errors import Conflict
from engine.runtime import instances as runtime_instances
from engine.runtime import state as runtime_state
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import ProcessInstance, Task
from engine.runtime.tasks import Completed


def _race(db, fn, n: int) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            with db.write() as session:
                results[i] = fn(session)
        except Exception as exc:  # collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture
def instance(make, db):
    org = make.org()
    est = make.establishment(org)
    admin = make.user("sesa-pr", "admin")
    integrador = make.user("sesa-pr", "integrador", est.cnes)
    with db.write() as s:
        inst = runtime_instances.start_instance(
            s,
            admin.actor,
            org_id=org,
            process_key="credenciamento-rnds",
            establishment_cnes=est.cnes,
            portfolio_code="RIRA",
        )
        task = s.scalar(
            select(Task).where(Task.instance_id == inst.id, Task.element_id == "ambientar_servicos")
        )
    return {
        "instance": inst.id,
        "task": task.id,
        "integrador": integrador,
        "admin": admin,
        "org": org,
        "est": est,
    }


def test_twenty_concurrent_completions_one_wins(db, instance):
    data = samples.answer("ambientar_servicos", {})
    results = _race(
        db,
        lambda s: completion.complete(s, instance["integrador"].actor, instance["task"], data),
        20,
    )
    wins = [r for r in results if isinstance(r, Completed)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(wins) == 1, results
    assert len(conflicts) == 19, [r for r in results if not isinstance(r, Conflict | Completed)]
    with db.read() as s:
        inst = s.get(ProcessInstance, instance["instance"])
        completed = s.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.element_id == "ambientar_servicos", Task.state == "completed")
        )
        assert completed == 1
        ready = s.scalars(
            select(Task.element_id).where(Task.instance_id == inst.id, Task.state == "ready")
        ).all()
        assert sorted(ready) == ["desenvolver_conector", "obter_certificado_digital"]
        workflow, _ = runtime_state.load_workflow(s, inst)
        done = [
            t
            for t in workflow.get_tasks()
            if t.task_spec.name == "ambientar_servicos" and t.state == 64
        ]
        assert len(done) == 1  # the workflow state agrees with the read model


def test_concurrent_starts_for_one_establishment_start_one(db, instance, make):
    results = _race(
        db,
        lambda s: (
            runtime_instances.start_instance(
                s,
                instance["admin"].actor,
                org_id=instance["org"],
                process_key="credenciamento-rnds",
                establishment_cnes=instance["est"].cnes,
                portfolio_code="REL",
            ).id
        ),
        8,
    )
    assert len([r for r in results if isinstance(r, int)]) == 1, results
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, int))


def test_claims_race_one_assignee(db, instance, make):
    others = [make.user("sesa-pr", "integrador", instance["est"].cnes) for _ in range(5)]
    actors = [u.actor for u in others]
    results = _race(
        db, lambda s: runtime_tasks.claim(s, actors.pop(), instance["task"]).assignee_id, 5
    )
    assert len([r for r in results if isinstance(r, int)]) == 1, results
    assert len([r for r in results if isinstance(r, Conflict)]) == 4


@pytest.mark.postgres_only
def test_audit_head_and_a_counter_taken_in_opposite_orders_do_not_deadlock(db, make):
    """A completion whose effects audit (the chain's head locked) before its rows are synced,
    against one that moves a dashboard counter before it audits: both orders meet here at a
    barrier. The counters are written at commit, after every other lock, so both commit (the
    counters used to be locked where they changed: PostgreSQL then killed one as a
    deadlock)."""
    from collections import Counter

    from engine.access.actor import SYSTEM
    from engine.audit import service as audit
    from engine.dashboard import counts

    org = make.org()
    key = counts.key("PR", "Homologação", "RIRA", "running")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def audit_first() -> None:
        try:
            with db.write() as s:
                audit.record(s, SYSTEM, "test.first", org_id=org)
                barrier.wait(10)
                counts.apply(s, org, Counter({key: 1}))
        except BaseException as exc:  # asserted below
            errors.append(exc)

    def counter_first() -> None:
        try:
            with db.write() as s:
                counts.apply(s, org, Counter({key: 1}))
                s.execute(select(1))  # the counter is not locked by now
                barrier.wait(10)
                audit.record(s, SYSTEM, "test.second", org_id=org)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=audit_first), threading.Thread(target=counter_first)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with db.read() as s:
        assert counts.stored(s, org)[key] == 2
        assert audit.verify(s)[1] is None
