"""Fault run: backup and restore round trip, as docs/operations.md says.

    .venv/bin/python bench/faults/backup_restore.py [--establishments 2000] [--instances 600]

A fresh database is seeded (instances at every stage, certificates, evidence files, secrets,
audit chain). Then:

1. ``pg_dump -Fc`` of it (timed, size);
2. ``createdb`` + ``pg_restore --no-owner -d`` into a fresh database (timed);
3. ``credencia audit verify`` on the copy — same number of events as the original — and
   the row count of every table compared;
4. gunicorn started on the copy; instances continue there: tasks completed through the API
   with the original tokens; the consistency checks (bench/faults/consistency.py) and
   ``credencia audit verify`` pass again;
5. the in-place restore of the documentation (``pg_restore --clean --if-exists -d``) over
   the copy brings it back to the dump, and verifies.

Prints PASS/FAIL with the figures; both databases are dropped at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.faults.clients import Completer, Record  # noqa: E402
from bench.faults.consistency import check  # noqa: E402
from bench.load import harness  # noqa: E402


def _verify(url: str) -> tuple[int, str]:
    done = subprocess.run(
        [harness.PYTHON, "-m", "web.cli", "audit", "verify"],
        cwd=ROOT, env=harness.app_env(url), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    return done.returncode, (done.stdout + done.stderr).strip()


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, connect_timeout=10) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        return {
            t: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
            ).fetchone()[0]
            for t in tables
        }


def run(*, establishments: int = 2000, instances: int = 600, log: Any = print) -> bool:
    from bench.load.seed import seed

    pg_dump, pg_restore = harness.pg_tool("pg_dump"), harness.pg_tool("pg_restore")
    if not pg_dump or not pg_restore:
        log("FAIL: pg_dump / pg_restore not found")
        return False
    info = harness.machine()
    log(f"machine: {harness.describe(info)}")
    work = Path(tempfile.mkdtemp(prefix="credencia-backup-"))
    original = harness.create_database("credencia_fault_backup")
    copy = None
    web = None
    stop = threading.Event()
    try:
        seeded = seed(original, establishments=establishments, instances=instances, log=log)
        accounts = [a.__dict__ for a in seeded.accounts]
        code, before = _verify(original)
        log(f"original: {before}")
        counts = _counts(original)

        dump = work / "credencia.dump"
        clock = time.perf_counter()
        subprocess.run([pg_dump, "-Fc", "-d", original, "-f", str(dump)], check=True, timeout=600)
        dump_s = time.perf_counter() - clock
        copy = harness.create_database("credencia_fault_restored")
        clock = time.perf_counter()
        restore = subprocess.run(
            [pg_restore, "--no-owner", "-d", copy, str(dump)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        restore_s = time.perf_counter() - clock
        log(f"pg_dump -Fc: {dump_s:.1f} s, {dump.stat().st_size / 1e6:.1f} MB; "
            f"pg_restore into a fresh database: {restore_s:.1f} s (exit {restore.returncode})")  # fmt: skip
        copy_code, after = _verify(copy)
        log(f"restored copy: {after}")
        copied = _counts(copy)
        differ = {t: (counts.get(t), copied.get(t)) for t in counts if counts[t] != copied.get(t)}
        log(f"tables: {len(counts)}, rows: {sum(counts.values())}; differing: {differ or 'none'}")

        web = harness.WebServer(copy, work, workers=2, threads=2).start()
        record = Record()
        clients = [Completer(web.base, accounts, record, stop, seed=i) for i in range(3)]
        for c in clients:
            c.start()
        time.sleep(8)
        stop.set()
        for c in clients:
            c.join(40)
        web.stop()
        statuses = harness.count_statuses(web.access_log)
        from engine.db import Database

        db = Database(copy)
        try:
            report = check(db, record.acked)
        finally:
            db.dispose()
        cont_code, continued = _verify(copy)
        log(f"on the copy: {len(record.acked)} tasks completed through the API with the original "
            f"tokens; status codes {dict(sorted(statuses.items()))}")  # fmt: skip
        for line in report.lines():
            log("  " + line)
        log(f"  credencia audit verify on the copy after it: {continued}")

        clock = time.perf_counter()
        again = subprocess.run(
            [pg_restore, "--clean", "--if-exists", "--no-owner", "-d", copy, str(dump)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        inplace_s = time.perf_counter() - clock
        back_code, back = _verify(copy)
        log(f"in-place restore (--clean --if-exists) over the copy: {inplace_s:.1f} s "
            f"(exit {again.returncode}); {back}; rows as the dump: {_counts(copy) == counts}")  # fmt: skip
        ok = (
            code == 0
            and restore.returncode == 0
            and copy_code == 0
            and after == before
            and not differ
            and len(record.acked) > 0
            and report.ok
            and cont_code == 0
            and not [c for c in statuses if c >= 500]
            and again.returncode == 0
            and back_code == 0
            and back == before
        )
        log(f"{'PASS' if ok else 'FAIL'}: backup and restore round trip")
        return ok
    finally:
        stop.set()
        if web is not None:
            web.stop()
        harness.drop_database(original)
        if copy:
            harness.drop_database(copy)


def main() -> int:
    parser = argparse.ArgumentParser(description="pg_dump / pg_restore round trip")
    parser.add_argument("--establishments", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=600)
    args = parser.parse_args()
    return 0 if run(establishments=args.establishments, instances=args.instances) else 1


if __name__ == "__main__":
    sys.exit(main())
