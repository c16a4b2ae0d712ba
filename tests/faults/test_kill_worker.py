"""kill -9 of gunicorn workers in the middle of completions (a short version of
bench/faults/kill_worker.py): no acknowledged completion lost, none applied twice, every
instance's workflow agrees with its task rows, the audit chain verifies, gunicorn replaces
the workers and the completions go on."""

from __future__ import annotations

import os
import signal
import threading
import time

from bench.faults.clients import Completer, Record
from bench.faults.consistency import check
from bench.faults.kill_worker import workers_in_transaction
from bench.load import harness
from engine.access.actor import SYSTEM
from engine.runtime import instances as runtime_instances

WORKERS = 2
KILLS = 2


def _acked_since(record: Record, when: float) -> list:
    with record.lock:
        return [
            o for o in record.outcomes if o.kind == "complete" and o.status == 200 and o.at > when
        ]


def test_kill_9_of_workers_during_completions_loses_nothing_and_applies_nothing_twice(
    make, db, db_url, tmp_path
) -> None:
    org = make.org()
    ests = [make.establishment(org) for _ in range(12)]
    accounts = []
    for role in ("gestor", "integrador"):
        for half in (ests[:6], ests[6:]):
            user = make.user("sesa-pr", role, *[e.cnes for e in half])
            accounts.append({"role": role, "token": user.token})
    accounts.append({"role": "datasus", "token": make.user("sesa-pr", "datasus").token})
    with db.write() as s:
        for est in ests:
            runtime_instances.start_instance(
                s, SYSTEM, org_id=org, process_key="credenciamento-rnds",
                establishment_cnes=est.cnes, portfolio_code="RIRA",
            )  # fmt: skip

    web = harness.WebServer(db_url, tmp_path, workers=WORKERS, threads=2).start()
    stop = threading.Event()
    record = Record()
    clients = [Completer(web.base, accounts, record, stop, seed=i, timeout=20) for i in range(4)]
    killed = []
    try:
        for c in clients:
            c.start()
        for _ in range(KILLS):
            time.sleep(2.0)
            deadline, victim = time.monotonic() + 2.0, None
            while victim is None and time.monotonic() < deadline:
                busy = workers_in_transaction(db_url, web.worker_pids())
                victim = min(busy) if busy else None
                time.sleep(0 if busy else 0.01)
            victim = victim or web.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        last_kill = time.monotonic()
        deadline = last_kill + 30  # the completions go on (a slow machine gets more time)
        while time.monotonic() < deadline and not _acked_since(record, last_kill):
            time.sleep(0.5)
        stop.set()
        for c in clients:
            c.join(30)
        workers_after = web.worker_pids()
    finally:
        stop.set()
        web.stop()
    statuses = harness.count_statuses(web.access_log)
    after_last_kill = _acked_since(record, last_kill)
    assert len(killed) == KILLS and not set(killed) & set(workers_after)
    assert len(workers_after) == WORKERS  # gunicorn replaced them
    assert not [code for code in statuses if code >= 500], statuses
    assert record.acked and after_last_kill, (len(record.acked), len(after_last_kill))
    report = check(db, record.acked)
    assert report.ok, report.lines()
