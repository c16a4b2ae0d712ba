"""``web.worker.LingeringThreadWorker``: a kept-alive connection's next request is served in the
thread that answered the previous one while its client goes straight on; an idle connection,
one answered without keep-alive, a stopping worker, or another connection waiting for a thread
sends it back to gunicorn's main thread as ``gthread`` does.

gunicorn's own request handling is replaced by a stand-in that answers what the socket holds
(one request per line); the sockets are real."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from gunicorn.workers.gthread import ThreadWorker

from web import worker as worker_mod
from web.worker import LingeringThreadWorker


class _Conn:
    """The parts of gunicorn's ``TConn`` the worker reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.is_http2 = False
        self.parser = SimpleNamespace(unreader=SimpleNamespace(buf=io.BytesIO()))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """gunicorn's ``handle`` replaced: it reads one request (a line) and answers keep-alive,
    or closes on ``close``; what it served, in order."""
    served: list[bytes] = []

    def handle(self: ThreadWorker, conn: _Conn) -> bool:
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.sock.recv(1)
            if not chunk:
                return False
            line += chunk
        served.append(line.strip())
        return line.strip() != b"close"

    monkeypatch.setattr(ThreadWorker, "handle", handle)
    return served


@pytest.fixture
def worker() -> Iterator[LingeringThreadWorker]:
    w = LingeringThreadWorker.__new__(LingeringThreadWorker)  # no arbiter: only what handle uses
    w.alive = True
    w.tpool = ThreadPoolExecutor(1)
    yield w
    w.tpool.shutdown(wait=True)


def test_a_request_already_sent_is_served_in_the_same_thread(
    worker: LingeringThreadWorker, pair: tuple[socket.socket, socket.socket], answered: list[bytes]
) -> None:
    server, client = pair
    client.sendall(b"one\ntwo\nthree\n")
    assert worker.handle(_Conn(server)) is True
    assert answered == [b"one", b"two", b"three"]


def test_a_request_sent_while_the_thread_waits_is_served_by_it(
    worker: LingeringThreadWorker,
    pair: tuple[socket.socket, socket.socket],
    answered: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_mod, "LINGER_S", 5.0)  # however slow the machine
    server, client = pair
    client.sendall(b"one\n")
    later = threading.Timer(0.05, client.sendall, (b"two\n",))
    later.start()
    # ("two" arrives 50 ms into the wait; the wait then ends on the third, which never comes.)
    monkeypatch.setattr(
        worker_mod, "_next_request_arrives", _first_waits(worker_mod._next_request_arrives)
    )
    assert worker.handle(_Conn(server)) is True
    later.join()
    assert answered == [b"one", b"two"]


def _first_waits(real):  # type: ignore[no-untyped-def]
    """The real wait the first time, then none: the test ends once the second request is in."""
    calls = []

    def wait(sock: socket.socket, timeout: float) -> bool:
        calls.append(timeout)
        return real(sock, timeout if len(calls) == 1 else 0.0)

    return wait


def test_an_idle_connection_goes_back_to_the_main_thread(
    worker: LingeringThreadWorker, pair: tuple[socket.socket, socket.socket], answered: list[bytes]
) -> None:
    server, client = pair
    client.sendall(b"one\n")
    assert worker.handle(_Conn(server)) is True  # kept alive, for the poller to watch
    assert answered == [b"one"]
    client.sendall(b"two\n")  # after the wait: the main thread's poller hands it out again
    assert answered == [b"one"]


@pytest.mark.parametrize(
    ("sent", "alive", "answer"),
    [
        # The first request is answered with "Connection: close": the connection ends.
        pytest.param(b"close\nnever\n", True, False, id="answered-without-keep-alive"),
        # A stop signal (or max_requests reached by the first request): kept alive, for the
        # main thread to close once the stop's linger is over, but nothing more served here.
        pytest.param(b"one\ntwo\n", False, True, id="worker-stopping"),
    ],
)
def test_a_connections_turn_ends_when_it_is_not_kept_alive_or_the_worker_stops(
    worker: LingeringThreadWorker,
    pair: tuple[socket.socket, socket.socket],
    answered: list[bytes],
    sent: bytes,
    alive: bool,
    answer: bool,
) -> None:
    server, client = pair
    client.sendall(sent)
    worker.alive = alive
    assert worker.handle(_Conn(server)) is answer
    assert answered == [sent.split(b"\n")[0]]


def test_another_connection_waiting_for_a_thread_gets_it(
    worker: LingeringThreadWorker, pair: tuple[socket.socket, socket.socket], answered: list[bytes]
) -> None:
    server, client = pair
    client.sendall(b"one\ntwo\n")
    gate = threading.Event()
    busy = worker.tpool.submit(gate.wait)  # the pool's only thread is taken...
    waiting = worker.tpool.submit(lambda: None)  # ...so this one waits in its queue
    try:
        assert worker.handle(_Conn(server)) is True
        assert answered == [b"one"]  # "two" goes back to the main thread, behind the other
    finally:
        gate.set()
        busy.result(5)
        waiting.result(5)


def test_a_request_read_ahead_is_served_without_waiting(
    worker: LingeringThreadWorker,
    pair: tuple[socket.socket, socket.socket],
    answered: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, client = pair
    conn = _Conn(server)
    client.sendall(b"one\ntwo\n")
    handle = ThreadWorker.handle
    reads = []

    def handle_reading_ahead(self: ThreadWorker, c: _Conn) -> bool:
        reads.append(1)
        result = handle(self, c)
        # gunicorn's parser may read the next request into its buffer with this one's body
        c.parser.unreader.buf = io.BytesIO(b"two\n" if len(reads) == 1 else b"")
        return result

    monkeypatch.setattr(ThreadWorker, "handle", handle_reading_ahead)
    monkeypatch.setattr(worker_mod, "_next_request_arrives", lambda *_: False)
    assert worker.handle(conn) is True
    assert answered == [b"one", b"two"]


# ------------------------------------------------------------------ an answer, corked


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair (the server's side first), as gunicorn's are."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as gunicorn sets it
    yield server, client
    server.close()
    client.close()


def _corked(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="Linux's TCP_CORK")
@pytest.mark.parametrize("fails", [False, True], ids=["answered", "the-handler-raised"])
def test_an_answer_is_written_corked_and_sent_when_the_request_is_done(
    worker: LingeringThreadWorker,
    tcp_pair: tuple[socket.socket, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    fails: bool,
) -> None:
    server, client = tcp_pair
    seen: list[int] = []

    def handle_request(self: ThreadWorker, req: object, conn: _Conn) -> bool:
        seen.append(_corked(conn.sock))
        conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")  # gunicorn's head...
        conn.sock.sendall(b"body")  # ...then its body, in a write of its own
        if fails:
            raise OSError("the client went away")
        return True

    monkeypatch.setattr(ThreadWorker, "handle_request", handle_request)
    assert _corked(server) == 0
    if fails:
        with pytest.raises(OSError):
            worker.handle_request(None, _Conn(server))
    else:
        assert worker.handle_request(None, _Conn(server)) is True
    assert seen == [1]  # held while the answer was written
    assert _corked(server) == 0  # and released after it, whatever happened
    client.settimeout(5)
    received = b""
    while not received.endswith(b"body"):
        received += client.recv(1024)
    assert received == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"


def test_a_closed_socket_is_not_corked_and_nothing_fails(
    worker: LingeringThreadWorker, pair: tuple[socket.socket, socket.socket]
) -> None:
    server, _client = pair
    server.close()
    worker_mod._cork(server, True)  # a Unix socket, closed: left alone
    worker_mod._cork(server, False)


# ------------------------------------------------------------------ settings read once


def test_a_workers_settings_are_the_masters_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from gunicorn.config import Config, Setting

    master = Config()
    master.set("keepalive", 7)
    master.set("limit_request_line", 1234)
    settled = worker_mod.SettledConfig.of(master)
    reads: list[str] = []
    get = Setting.get

    def counted(self: Setting) -> object:
        reads.append(self.name)
        return get(self)

    monkeypatch.setattr(Setting, "get", counted)
    assert settled.keepalive == 7 and settled.limit_request_line == 1234
    assert settled.keepalive == 7 and settled.limit_request_line == 1234
    assert reads == ["keepalive", "limit_request_line"]  # each read once, then kept
    assert settled.is_ssl == master.is_ssl  # computed settings computed from the kept ones
    assert settled.forwarded_allow_networks() == master.forwarded_allow_networks()
    settled.set("keepalive", 9)  # a setting changed on it is read again
    assert settled.keepalive == 9
    with pytest.raises(AttributeError):
        settled.no_such_setting  # noqa: B018
    with pytest.raises(AttributeError):
        settled.keepalive = 3  # as gunicorn's: settings change through set() only


def test_the_worker_serves_with_settled_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from gunicorn.config import Config

    started: list[object] = []
    monkeypatch.setattr(ThreadWorker, "init_process", lambda self: started.append(self.cfg))
    w = LingeringThreadWorker.__new__(LingeringThreadWorker)
    w.cfg = Config()
    w.init_process()
    assert len(started) == 1 and isinstance(started[0], worker_mod.SettledConfig)
    assert w.cfg is started[0]


# A worker as gunicorn makes one, its signal handlers installed, its thread pool running.
_QUICK_STOP = """
import os, signal, sys, time
from gunicorn.config import Config
from gunicorn.glogging import Logger
from web.worker import LingeringThreadWorker

cfg = Config()
calls = []
cfg.set("worker_int", lambda worker: calls.append(1) or {second})
worker = LingeringThreadWorker(1, os.getppid(), [], None, 30, cfg, Logger(cfg))
worker.PIPE = os.pipe()
for fd in worker.PIPE:
    os.set_blocking(fd, False)
worker.tpool = worker.get_thread_pool()
worker.tpool.submit(print, "pool up", flush=True).result()
worker.init_signals()
import atexit
atexit.register(lambda: print("worker_int", len(calls), flush=True))
# What the main thread holds while it hands a connection to the pool (ThreadPoolExecutor.submit).
with worker.tpool._shutdown_lock:
    os.kill(os.getpid(), signal.{first})
    time.sleep(10)
print("not stopped", flush=True)
"""


@pytest.mark.parametrize("first", ["SIGINT", "SIGQUIT"])
@pytest.mark.parametrize("second", [None, "SIGQUIT"])
def test_a_quick_stop_never_waits_on_the_pools_lock(first: str, second: str | None) -> None:
    """Ctrl-C signals every process of the group and the master then sends its SIGQUIT: a
    worker's handler must not take the pool's lock, which its own main thread may hold (handing
    a connection to the pool, or shutting it down in the first signal's handler). gunicorn's
    ``gthread`` does, and then waits on itself until the master kills it."""
    import subprocess
    import sys
    from pathlib import Path

    send_second = f"os.kill(os.getpid(), signal.{second})" if second else "None"
    script = _QUICK_STOP.format(first=first, second=send_second)
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=8
        )
    except subprocess.TimeoutExpired:  # the process is killed by run() on the timeout
        pytest.fail("the worker waited on its own lock")
    assert done.returncode == 0, done.stderr
    # stopped by the handler, its hook run once even when a second signal came meanwhile
    assert done.stdout.split("\n")[:2] == ["pool up", "worker_int 1"], done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_the_pool_is_shut_down_when_a_quick_stop_leaves_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def quick_stop(self: ThreadWorker) -> None:
        raise SystemExit(0)  # what the handler raises in the main loop

    monkeypatch.setattr(ThreadWorker, "run", quick_stop)
    w = LingeringThreadWorker.__new__(LingeringThreadWorker)
    w.tpool = ThreadPoolExecutor(max_workers=1)
    with pytest.raises(SystemExit):
        w.run()
    with pytest.raises(RuntimeError, match="shutdown"):
        w.tpool.submit(print)
