"""Booting gunicorn workers (``gunicorn 'web:create_app()'``, docs/operations.md): each
worker deploys the processes when it boots, so a worker that cannot do it makes gunicorn's
master stop the whole server ("Worker failed to boot"). Two ways that happens, found by the
fault runs and pinned here as strict xfails (each turns into a failure once fixed, to drop
the marker):

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
from tests.faults.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_schema():  # type: ignore[no-untyped-def]
    """A database with the tables and nothing deployed."""
    import engine.models  # noqa: F401
    from engine.db import Base, Database

    url = harness.create_database("credencia_test_boot")
    db = Database(url)
    Base.metadata.create_all(db.engine)
    db.dispose()
    yield url
    harness.drop_database(url)


@pytest.mark.xfail(
    strict=True,
    reason="web/__init__.py never imports engine.models: the deploy's flush cannot resolve "
    "process_definition.deployed_by_id -> user_account (NoReferencedTableError); fix: "
    "`import engine.models` in web/__init__.py",
)
def test_a_fresh_worker_process_deploys_the_processes_on_an_empty_database(
    postgres_url, empty_schema
) -> None:  # type: ignore[no-untyped-def]
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


@pytest.mark.xfail(
    strict=True,
    reason="web/__init__.py create_app() deploys the processes at every worker boot: a worker "
    "replaced while PostgreSQL is down fails to boot and gunicorn's master shuts down "
    "(HaltServer 'Worker failed to boot'); the site stays down after PostgreSQL is back",
)
def test_a_worker_replaced_while_the_database_is_down_does_not_stop_the_server(
    app, db_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    web = harness.WebServer(proxied, tmp_path, workers=2, threads=1).start()
    try:
        proxy.stop()  # PostgreSQL unreachable
        os.kill(web.worker_pids()[0], signal.SIGKILL)  # a worker dies meanwhile
        time.sleep(4)  # gunicorn boots a replacement, which cannot reach the database
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
