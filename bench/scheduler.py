"""One timer sweep over many open instances of which a few have a timer due.

Run ``.venv/bin/python bench/scheduler.py`` (part of ``make bench``). For each database
(SQLite in a temporary file; PostgreSQL in a fresh database when reachable) it:

1. deploys ``tests/scheduler/fixtures/prazo-teste.bpmn`` (a DATASUS task with an interrupting
   "PT2H" boundary timer) and inserts ``--instances`` running instances with their task rows;
   ``--due-percent`` of them are real workflows started two hours before the sweep (their
   timer is due), the rest share one saved state whose ``next_timer_due_at`` lies in the future;
2. times ``engine.runtime.timers.fire_due_timers`` with nothing due (clock before every
   deadline), then with the due ones due, counting the workflows deserialized
   (``spiff.load_state`` calls) and checking that exactly the due instances fired.

Set-up is not timed. The goal (issue 5): under one second for 20,000 instances with 1% due,
loading only the due ones. Nothing here asserts timings.

Options: ``--instances N`` (default 20000), ``--due-percent P`` (default 1), ``--no-postgres``,
``--json PATH``. PostgreSQL is taken from CREDENCIA_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder heads sys.path and ``bench/engine.py`` would shadow the
# ``engine`` package: put the repository root there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import time_machine  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

import engine.models  # noqa: E402, F401
from engine.access.actor import SYSTEM  # noqa: E402
from engine.accounts import service as accounts  # noqa: E402
from engine.audit.models import AuditEvent  # noqa: E402
from engine.db import Base, Database  # noqa: E402
from engine.definitions import service as definitions  # noqa: E402
from engine.runtime import timers  # noqa: E402
from engine.runtime.models import READY, RUNNING, ProcessInstance, Task  # noqa: E402
from engine.workflow import spiff  # noqa: E402

FIXTURE = ROOT / "tests" / "scheduler" / "fixtures" / "prazo-teste.bpmn"
START = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
DEADLINE = START + timedelta(hours=2)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _populate(db: Database, instances: int, due: int) -> list[int]:
    """Insert the instances; returns the ids of the due ones."""
    with db.write() as s:
        org = accounts.create_org(s, SYSTEM, "bench", "Bench")
        definition, _ = definitions.deploy_bundle(s, definitions.read_bundle(FIXTURE))
        org_id, definition_id = org.id, definition.id
    loaded = spiff.cached_spec(definition)
    with time_machine.travel(START, tick=False):
        idle_state = spiff.dump_state(spiff.new_workflow(loaded, {}))
    later = DEADLINE + timedelta(days=30)
    rows: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    due_marks: list[bool] = []
    step = max(instances // max(due, 1), 1)
    for i in range(instances):
        is_due = due > 0 and i % step == 0 and sum(due_marks) < due
        due_marks.append(is_due)
        task_id = str(uuid.uuid4())
        state = idle_state
        if is_due:  # a workflow of its own, so its task ids are its own
            with time_machine.travel(START, tick=False):
                workflow = spiff.new_workflow(loaded, {})
            state = spiff.dump_state(workflow)
            task_id = str(spiff.ready_human_tasks(workflow)[0].id)
        rows.append(
            {
                "org_id": org_id,
                "definition_id": definition_id,
                "process_key": "prazo-teste",
                "establishment_id": None,
                "portfolio_code": "",
                "status": RUNNING,
                "stage": "Em análise",
                "stage_since": START,
                "state": state,
                "version": 1,
                "started_at": START,
                "next_timer_due_at": DEADLINE if is_due else later + timedelta(minutes=i),
            }
        )
        tasks.append(
            {
                "id": task_id,
                "org_id": org_id,
                "element_id": "analisar",
                "name": "Analisar solicitação",
                "lane": "DATASUS",
                "role": "datasus",
                "state": READY,
                "stage": "Em análise",
                "created_at": START,
                "due_at": START + timedelta(days=3),
            }
        )
    with db.write() as s:
        ids = list(
            s.scalars(
                insert(ProcessInstance).returning(ProcessInstance.id, sort_by_parameter_order=True),
                rows,
            )
        )
        for task, instance_id in zip(tasks, ids, strict=True):
            task["instance_id"] = instance_id
        s.execute(insert(Task), tasks)
    return [iid for iid, is_due in zip(ids, due_marks, strict=True) if is_due]


def _sweep(db: Database, when: datetime) -> tuple[float, timers.TimerSweep, int]:
    loads = [0]
    real = spiff.load_state

    def counting(loaded: Any, state: str) -> Any:
        loads[0] += 1
        return real(loaded, state)

    spiff.load_state = counting
    try:
        with time_machine.travel(when, tick=True):
            clock = time.perf_counter()
            result = timers.fire_due_timers(db, batch=100_000)
            elapsed = time.perf_counter() - clock
    finally:
        spiff.load_state = real
    return elapsed, result, loads[0]


def run_backend(name: str, url: str, instances: int, due: int) -> dict[str, Any]:
    db = Database(url)
    Base.metadata.create_all(db.engine)
    spiff.clear_cache()
    clock = time.perf_counter()
    due_ids = _populate(db, instances, due)
    setup = time.perf_counter() - clock
    idle_s, idle, idle_loads = _sweep(db, DEADLINE - timedelta(minutes=1))
    busy_s, busy, busy_loads = _sweep(db, DEADLINE + timedelta(minutes=1))
    again_s, again, again_loads = _sweep(db, DEADLINE + timedelta(minutes=2))
    with db.read() as s:
        audited = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "timer.fired")
        )
        cancelled = s.scalar(
            select(func.count()).select_from(Task).where(Task.state == "cancelled")
        )
    db.dispose()
    ok = sorted(busy.fired_ids) == sorted(due_ids) and audited == len(due_ids) == cancelled
    return {
        "backend": name,
        "instances": instances,
        "due": len(due_ids),
        "setup_s": round(setup, 2),
        "idle_sweep_ms": round(idle_s * 1000, 1),
        "idle_loaded": idle_loads,
        "sweep_ms": round(busy_s * 1000, 1),
        "sweep_loaded": busy_loads,
        "fired": busy.fired,
        "ms_per_fired": round(busy_s * 1000 / max(busy.fired, 1), 2),
        "second_sweep_ms": round(again_s * 1000, 1),
        "second_sweep_loaded": again_loads,
        "fired_exactly_the_due": ok and again.fired == 0 and idle.fired == 0,
    }


def _postgres(base_url: str) -> tuple[str, str] | None:
    import psycopg

    try:
        conn = psycopg.connect(base_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL unreachable at {base_url}: {exc}; skipped", file=sys.stderr)
        return None
    name = f"credencia_bench_sched_{uuid.uuid4().hex[:8]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}", name


def _drop(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    due = round(args.instances * args.due_percent / 100)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run_backend("sqlite", f"sqlite:///{tmp}/bench.db", args.instances, due))
    if not args.no_postgres:
        base = os.environ.get("CREDENCIA_BENCH_POSTGRES_URL", DEFAULT_PG)
        created = _postgres(base)
        if created:
            try:
                results.append(run_backend("postgresql", created[0], args.instances, due))
            finally:
                _drop(base, created[1])
    print(f"Timer sweep: {args.instances} open instances, {due} with a timer due")
    print(
        f"{'backend':<11} {'idle sweep':>11} {'loaded':>7} {'due sweep':>10} {'loaded':>7} {'fired':>6} "
        f"{'ms/fired':>9} {'2nd sweep':>10} {'loaded':>7}  exactly the due"
    )
    for r in results:
        print(
            f"{r['backend']:<11} {r['idle_sweep_ms']:>8.1f} ms {r['idle_loaded']:>7} {r['sweep_ms']:>7.1f} ms "
            f"{r['sweep_loaded']:>7} {r['fired']:>6} {r['ms_per_fired']:>9.2f} {r['second_sweep_ms']:>7.1f} ms "
            f"{r['second_sweep_loaded']:>7}  {'yes' if r['fired_exactly_the_due'] else 'NO'}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
