"""Booting gunicorn workers (``gunicorn 'web:create_app()'``, docs/operations.md): each
worker deploys the processes when it boots, so a worker that cannot do it makes gunicorn's
master stop the whole server ("Worker failed to boot"). Two ways that happened, found by the
fault runs and fixed (web/__init__.py imports every model and tolerates an unreachable
database at start-up); these tests keep them fixed:

- a fresh worker process has imported only ``web``: the first deploy that inserts a
  definition cannot resolve a foreign key (a database built by ``credencia db upgrade`` alone,
  or a new BPMN version left to "the app also deploys at start-up");
- a worker replaced while PostgreSQL is down (after a crash, a timeout kill, max_requests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench.load import harness
from tests.support.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_schema():
    """A database with the tables and nothing deployed."""
    import engine.models  # noqa: F401
    from engine.db import Base, Database

    url = harness.create_database("credencia_test_boot")
    db = Database(url)
    Base.metadata.create_all(db.engine)
    db.dispose()
    yield url
    harness.drop_database(url)


def test_a_fresh_worker_process_deploys_the_processes_on_an_empty_database(
    postgres_url, empty_schema
) -> None:
    boot = subprocess.run(
        [sys.executable, "-c", "from web import create_app; create_app()"],
        cwd=ROOT,
        env=harness.app_env(empty_schema),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert boot.returncode == 0, boot.stderr[-1500:]


def test_a_worker_replaced_while_the_database_is_down_does_not_stop_the_server(
    app, db_url, tmp_path
) -> None:
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    web = harness.WebServer(proxied, tmp_path, workers=2, threads=1).start()
    try:
        proxy.stop()  # PostgreSQL unreachable
        before = set(web.worker_pids())
        os.kill(min(before), signal.SIGKILL)  # a worker dies meanwhile
        # gunicorn boots a replacement, which cannot reach the database: wait until the master
        # gave up, or the replacement has stayed up for 15 s (booted, however slow the machine).
        deadline, up_since = time.monotonic() + 60, None
        while time.monotonic() < deadline and web.proc.alive():
            new = set(web.worker_pids()) - before
            up_since = (up_since or time.monotonic()) if new else None
            if up_since and time.monotonic() - up_since > 15:
                break
            time.sleep(0.2)
        proxy.start()
        deadline = time.monotonic() + 10
        status = 0
        while time.monotonic() < deadline and status != 200 and web.proc.alive():
            status, _ = harness.http_json("GET", web.base + "/healthz", timeout=3)
            time.sleep(0.3)
        assert web.proc.alive(), "gunicorn's master exited"
        assert status == 200
    finally:
        web.stop()
        proxy.stop()
