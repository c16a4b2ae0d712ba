"""``credencia serve`` builds the app in gunicorn's master, then forks the workers: a database
connection the master opened (deploying the processes at start-up) must not be inherited by
the workers, or two workers talk over one PostgreSQL socket at once — each can read the
other's results ("can't change 'autocommit' now", a string where a datetime was expected,
"server closed the connection unexpectedly" in the load run; see docs/RELIABILITY.md).

Detected without load: after start-up, no socket to PostgreSQL may be open in more than one
process of the server."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.load import harness
from engine.db import Database
from web.cli import alembic_config


def _sockets(pid: int) -> set[int]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _postgres_sockets() -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].rsplit(":", 1)[1] == "1538":  # remote port 5432
                inodes.add(int(fields[9]))
    return inodes


@pytest.fixture
def stamped(db: Database, db_url: str) -> Iterator[str]:
    """The run's database (built from the models) marked as migrated to head, which
    `credencia serve` requires; unmarked again afterwards for the other tests."""
    from alembic import command

    command.stamp(alembic_config(db_url), "head")
    try:
        yield db_url
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))


def test_credencia_serve_workers_do_not_share_the_masters_database_connection(
    app, stamped, tmp_path
) -> None:
    web = harness.WebServer(stamped, tmp_path, workers=2, mode="serve").start()
    try:
        pids = [web.proc.pid, *web.worker_pids()]
        # `python -m web.cli serve` is the master itself (gunicorn runs in that process).
        postgres = _postgres_sockets()
        holders = Counter(i for pid in pids for i in _sockets(pid) & postgres)
        shared = [inode for inode, n in holders.items() if n > 1]
    finally:
        web.stop()
    assert shared == [], f"{len(shared)} PostgreSQL socket(s) shared by several processes"


def test_credencia_serve_gives_its_statements_the_web_apps_time_limit(
    app, db: Database, stamped, tmp_path
) -> None:
    """The served app's connections carry ``CREDENCIA_DB_STATEMENT_TIMEOUT_SECONDS`` (the
    command's own database has no limit): a page whose statement waits on a table another
    transaction holds is cancelled at the limit and answers 503 with the reason — not after
    the 30 s lock wait, with the busy one."""
    from web.errors import DB_SLOW_MESSAGE

    env = {"CREDENCIA_DB_STATEMENT_TIMEOUT_SECONDS": "1", "CREDENCIA_READY_SCHEDULER_MINUTES": "0"}
    web = harness.WebServer(stamped, tmp_path, workers=1, mode="serve", extra_env=env).start()
    try:
        status, body = harness.http_json("GET", web.base + "/readyz", timeout=20)
        assert status == 200, body
        with db.engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE process_definition IN ACCESS EXCLUSIVE MODE"))
            status, body = harness.http_json("GET", web.base + "/readyz", timeout=20)
        assert status == 503, body
        assert DB_SLOW_MESSAGE in str(body)
        status, body = harness.http_json("GET", web.base + "/readyz", timeout=20)
        assert status == 200, body
    finally:
        web.stop()
    log = web.proc.log_path.read_text(errors="replace")
    assert "database slow on GET /readyz: canceling statement due to statement timeout" in log
