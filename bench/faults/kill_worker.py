"""Fault run: kill -9 gunicorn workers in the middle of task completions.

    .venv/bin/python bench/faults/kill_worker.py [--kills 5] [--duration 45] [--clients 8]

A fresh database is seeded (bench/load/seed.py); gunicorn serves it with 4 workers x 2
threads; client threads complete tasks through the API without pause. Every few seconds one
worker (never the master) is killed with SIGKILL — preferably one whose database connection
is inside a transaction at that moment (found through pg_stat_activity's client port and the
worker's sockets), i.e. in the middle of a completion. Afterwards:

- every completion answered 200 is a completed task row; none was answered 200 twice;
- every completed task has exactly one ``task.completed`` audit event;
- every instance's saved workflow agrees with its task rows (``load_workflow``);
- ``credencia audit verify`` passes; gunicorn replaced every killed worker; no 5xx.

Requests that were in flight on a killed worker get no answer (connection reset): the
client asks again once — 409 "já foi concluída" means the first attempt had committed, 200
that it had not. Prints PASS/FAIL with the figures. Everything on 127.0.0.1; the database is
dropped and the processes killed at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402

from bench.faults.clients import Completer, Record  # noqa: E402
from bench.faults.consistency import check  # noqa: E402
from bench.load import harness  # noqa: E402


def _socket_inodes(pid: int) -> set[int]:
    found = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    except OSError:
        pass
    return found


def _local_port_inodes() -> dict[int, int]:
    """Local TCP port -> socket inode, for the connections to port 5432."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if remote.rsplit(":", 1)[1] == "1538":  # 5432
                out[int(local.rsplit(":", 1)[1], 16)] = inode
    return out


# Backends inside a change: they hold the instance row lock (SELECT … FOR UPDATE takes a
# RowShareLock on the table) until their transaction commits or rolls back.
IN_A_CHANGE = """
SELECT a.client_port, a.query FROM pg_stat_activity a
JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'relation'
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND l.relation = 'process_instance'::regclass AND l.mode = 'RowShareLock' AND l.granted
"""
IN_A_TRANSACTION = """
SELECT client_port, query FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
"""


def workers_in_transaction(url: str, pids: list[int], *, changes: bool = True) -> dict[int, str]:
    """Workers whose database connection is inside a change (``changes``: holding an instance
    row lock, i.e. completing a task) or any transaction now -> its current statement."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(IN_A_CHANGE if changes else IN_A_TRANSACTION).fetchall()
    ports = _local_port_inodes()
    inode_to_pid = {i: pid for pid in pids for i in _socket_inodes(pid)}
    busy = {}
    for port, query in rows:
        pid = inode_to_pid.get(ports.get(port, -1))
        if pid:
            busy[pid] = " ".join((query or "").split())[:80]
    return busy


def run(
    *,
    kills: int = 5,
    duration: float = 45.0,
    clients: int = 8,
    establishments: int = 800,
    instances: int = 400,
    log: Any = print,
) -> bool:
    info = harness.machine()
    log(f"machine: {harness.describe(info)}")
    work = Path(tempfile.mkdtemp(prefix="credencia-kill-"))
    url = harness.create_database("credencia_fault_kill")
    web = None
    stop = threading.Event()
    threads: list[Completer] = []
    try:
        from bench.load.seed import seed

        seeded = seed(url, establishments=establishments, instances=instances, log=log)
        accounts = [a.__dict__ for a in seeded.accounts]
        web = harness.WebServer(url, work, workers=4, threads=2).start()
        record = Record()
        threads = [
            Completer(web.base, accounts, record, stop, seed=i, timeout=30) for i in range(clients)
        ]
        for t in threads:
            t.start()
        started = time.monotonic()
        rng = random.Random(11)  # noqa: S311
        killed: list[tuple[int, str]] = []
        interval = duration / (kills + 1)
        last_kill = started
        for number in range(1, kills + 1):
            time.sleep(max(0.0, started + interval * number - time.monotonic()))
            # Wait (a little) for a worker that is inside a transaction, and kill that one.
            victim, query = None, ""
            deadline = time.monotonic() + min(2.0, interval * 0.5)
            while time.monotonic() < deadline and victim is None:
                busy = workers_in_transaction(url, web.worker_pids())
                if busy:
                    victim, query = rng.choice(sorted(busy.items()))
                    query = "in a completion (instance row locked): " + query
            if victim is None:
                busy = workers_in_transaction(url, web.worker_pids(), changes=False)
                if busy:
                    victim, query = rng.choice(sorted(busy.items()))
                    query = "in a read transaction: " + query
            if victim is None:
                victim, query = rng.choice(web.worker_pids()), "(no open transaction found)"
            os.kill(victim, signal.SIGKILL)
            last_kill = time.monotonic()
            killed.append((victim, query))
            log(f"  t={time.monotonic() - started:5.1f}s kill -9 worker {victim}: {query}")
        time.sleep(max(0.0, duration - (time.monotonic() - started)))
        stop.set()
        for t in threads:
            t.join(40)
        workers_after = web.worker_pids()
        acked_after_last_kill = sum(
            1 for o in record.outcomes if o.kind == "complete" and o.status == 200 and o.at > last_kill
        )  # fmt: skip
        web.stop()
        statuses = harness.count_statuses(web.access_log)

        from engine.db import Database

        db = Database(url)
        try:
            report = check(db, record.acked)
        finally:
            db.dispose()
        verify = subprocess.run(
            [harness.PYTHON, "-m", "web.cli", "audit", "verify"],
            cwd=ROOT, env=harness.app_env(url), capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        client = record.statuses()
        five = sum(n for code, n in statuses.items() if code >= 500)
        in_change = sum(1 for _, q in killed if q.startswith("in a completion"))
        log("")
        log(
            f"kill -9: {len(killed)} workers killed, {in_change} of them in the middle of a completion"
        )
        log(f"workers after the run: {len(workers_after)} (gunicorn replaced the killed ones)")
        log(f"client outcomes by status: {dict(sorted(client.items()))}")
        log(
            f"completions: {len(record.acked)} acknowledged in {duration:.0f} s "
            f"({len(record.acked) / duration:.1f}/s), {acked_after_last_kill} after the last kill; "
            f"{len(record.ambiguous)} without an answer (in flight on a killed worker), their "
            f"retries answered {dict(record.resolved_by_retry)}"
        )
        log(f"server status codes (access log): {dict(sorted(statuses.items()))}")
        odd = [o for o in record.outcomes if o.status not in (0, 200, 201, 409)]
        for o in odd[:5]:
            log(f"  unexpected answer: {o.kind} {o.status}: {o.message[:300]}")
        for line in report.lines():
            log("  " + line)
        log(f"  credencia audit verify: exit {verify.returncode}: {(verify.stdout + verify.stderr).strip()}")  # fmt: skip
        ok = (
            report.ok
            and verify.returncode == 0
            and five == 0
            and len(workers_after) == 4
            and len(killed) == kills
            and acked_after_last_kill > 0
        )
        log(f"{'PASS' if ok else 'FAIL'}: kill -9 of gunicorn workers during completions")
        return ok
    finally:
        stop.set()
        if web is not None:
            web.stop()
        harness.drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description="kill -9 gunicorn workers during completions")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--establishments", type=int, default=800)
    parser.add_argument("--instances", type=int, default=400)
    args = parser.parse_args()
    ok = run(
        kills=args.kills,
        duration=args.duration,
        clients=args.clients,
        establishments=args.establishments,
        instances=args.instances,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
