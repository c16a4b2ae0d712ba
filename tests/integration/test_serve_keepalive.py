"""``credencia serve``'s worker (``web.worker.LingeringThreadWorker``) through a real server: a
client sending request after request on one kept-alive connection is answered every time, and
it cannot keep the worker's only thread from another client meanwhile.

One worker with one thread (``--threads 1``), so that the second client has no other thread to
be served by; the server is stopped by its pid, and its processes checked gone."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load.harness import children, free_port
from web.cli import upgrade_database

ROOT = Path(__file__).resolve().parents[2]
BURST = 400  # the first client's requests, back to back


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("keepalive")
    url = f"sqlite:///{tmp / 'credencia.db'}"
    upgrade_database(url)
    port = free_port()
    env = {
        **os.environ,
        "CREDENCIA_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        "GUNICORN_CMD_ARGS": "--threads 1",
    }
    with (tmp / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--workers", "1"],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pids = [proc.pid]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            time.sleep(0.3)
        else:
            pytest.fail("serve not ready in 90 s:\n" + (tmp / "serve.log").read_text())
        pids += children(proc.pid)
        yield port
    finally:
        pids += children(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)], "processes of the server survived"


def _get(conn: http.client.HTTPConnection, path: str = "/healthz") -> int:
    conn.request("GET", path)
    res = conn.getresponse()
    res.read()
    return res.status


def test_every_request_of_a_kept_alive_connection_is_answered_on_it(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        statuses = [_get(conn) for _ in range(200)]
        first_socket = conn.sock
        statuses.append(_get(conn, "/nao-existe"))
        assert conn.sock is first_socket  # one connection throughout: kept alive
    finally:
        conn.close()
    assert statuses == [200] * 200 + [404]


def test_a_client_sending_request_after_request_does_not_keep_the_thread_from_another(
    port: int,
) -> None:
    done = 0
    started = threading.Event()
    failures: list[BaseException] = []

    def burst() -> None:
        nonlocal done
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(BURST):
                assert _get(conn) == 200
                done += 1
                started.set()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
            started.set()
        finally:
            conn.close()

    hammer = threading.Thread(target=burst)
    hammer.start()
    try:
        assert started.wait(30)
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            answers = [_get(other) for _ in range(5)]
        finally:
            other.close()
        served_meanwhile = done
    finally:
        hammer.join(60)
    assert not failures
    assert answers == [200] * 5
    # The other client was answered while the first was still sending its requests, not
    # after it: the only thread went back and forth between the two connections.
    assert served_meanwhile < BURST
    assert done == BURST
