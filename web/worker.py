"""The gunicorn worker ``credencia serve`` runs: gunicorn's threaded worker (``gthread``), with a
kept-alive connection served on in the thread that answered it while its client goes on.

gunicorn's ``gthread`` hands every request of a kept-alive connection through its main thread:
the answering thread returns the connection to the main thread (a pipe write and a wake-up),
which registers the socket with its poller; when the next request arrives the main thread
unregisters it and hands it to a pool thread again (a queue and a second wake-up). For a client
that sends its next request at once (an API client walking a process, a browser fetching a
page's assets, a proxy reusing its upstream connections) that round costs about a fifth of a
small request's CPU (docs/PERFORMANCE.md, "Issue 19, session 12").

Here the answering thread waits a little (``LINGER_S``) for the connection's next request and
serves it itself; a connection idle longer than that goes back to the main thread as before, so
an idle client holds a thread for at most ``LINGER_S`` and never blocks the pool. Everything
else — timeouts, the keep-alive limit, graceful stops, ``max_requests`` — is gunicorn's own:
the loop stops as soon as a request was answered without keep-alive or the worker is stopping.
A gunicorn whose ``handle`` answers something else than True for a kept-alive connection (22.x
returns a pair) gets no lingering: the worker is then plain ``gthread``.

Two more of a request's own costs, each a few percent of an API request's CPU
(docs/PERFORMANCE.md, "Issue 19, session 17"):

- gunicorn sends a response's head and its body in two writes, and with ``TCP_NODELAY`` (which
  gunicorn sets) each goes out as a packet of its own, which the kernel delivers to the
  client on its own. The socket is corked (``TCP_CORK``) while a request is answered: the
  kernel sends what was written once the answer is complete (or whenever a full packet is
  ready), a small answer in one packet. Nothing waits longer than the answer takes.
- gunicorn reads a setting per use through ``Config.__getattr__`` (a dictionary look-up and
  the setting's ``get()``), some twenty times a request. A worker's settings do not change
  once it runs (a reload starts new workers with a new configuration), so the worker reads
  each once (``SettledConfig``).

And one fix to gunicorn's quick stop (SIGINT, SIGQUIT). ``gthread``'s handler shuts the thread
pool down in the signal handler, which takes the pool's lock; a handler runs in the main thread
between any two of its steps, so when the main thread already holds that lock — handing a
connection to the pool (``submit``), or inside the handler of a first signal when a second one
comes (Ctrl-C signals the whole process group, and the master sends its SIGQUIT a moment
later) — the worker waits on itself forever, and the master kills it after the graceful
timeout. Here the handler only marks the worker stopping and leaves, as gunicorn's base worker
does; the pool is shut down on the way out, outside any handler, and a second signal while the
first is handled does nothing more.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

from gunicorn.config import Config
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker

# How long an answering thread waits for the same connection's next request. Long enough for a
# client that goes straight on (its next request comes within a fraction of a millisecond on
# the same machine, a few on a network); short enough that a pool thread is never held by an
# idle connection for longer than a request takes.
LINGER_S = 0.005


def _next_request_arrives(sock: Any, timeout: float) -> bool:
    """Whether the socket turns readable (a request, or the client closing) within ``timeout``."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    except (OSError, ValueError):  # closed meanwhile
        return False


# Linux's; elsewhere the answer goes out as gunicorn writes it.
_CORK = getattr(socket, "TCP_CORK", None)


def _cork(sock: Any, on: bool) -> None:
    """Hold (``on``) or release what is written to a TCP socket (a closed or non-TCP socket,
    e.g. a Unix one, is left as it is)."""
    if _CORK is None:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1 if on else 0)


class SettledConfig(Config):
    """gunicorn's ``Config`` whose settings are each read once, then kept as attributes.

    Only for a worker: it is made from the master's configuration as the worker starts, after
    which nothing changes a worker's settings. The computed ones (``is_ssl``, ``address``…)
    stay properties, computed from the kept values."""

    @classmethod
    def of(cls, cfg: Config) -> SettledConfig:
        settled = cls.__new__(cls)
        settled.__dict__.update(cfg.__dict__)  # the same settings objects; nothing copied
        return settled

    def __getattr__(self, name: str) -> Any:
        value = super().__getattr__(name)  # AttributeError for what is not a setting
        self.__dict__[name] = value
        return value

    def set(self, name: str, value: Any) -> None:
        super().set(name, value)
        self.__dict__.pop(name, None)  # read again on its next use


class LingeringThreadWorker(ThreadWorker):
    """``gthread``, serving a kept-alive connection's next request in the answering thread,
    its answer corked, its settings read once."""

    _quitting = False

    def init_process(self) -> None:
        self.cfg = SettledConfig.of(self.cfg)  # before any connection takes it
        super().init_process()

    def run(self) -> None:
        try:
            super().run()
        finally:
            # After a quick stop's SystemExit too; a second shutdown is a no-op.
            self.tpool.shutdown(wait=False)

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGINT or SIGQUIT: stop now, without taking the pool's lock in the handler (see the
        module's docstring)."""
        if self._quitting:  # a second signal while the first is handled
            return
        self._quitting = True
        Worker.handle_quit(self, sig, frame)  # not alive; worker_int; 0.1 s; SystemExit

    def handle_request(self, req: Any, conn: Any) -> Any:
        sock = conn.sock
        _cork(sock, True)
        try:
            return super().handle_request(req, conn)
        finally:
            _cork(sock, False)  # sends what is left of the answer now

    def handle(self, conn: Any) -> Any:
        result = super().handle(conn)
        while (
            result is True  # answered with keep-alive (not closed, not deferred, not an error)
            and self.alive  # not stopping, and ``max_requests`` not reached
            and not conn.is_http2
            and not self._others_waiting()
            and (conn.parser.unreader.buf.getvalue() or _next_request_arrives(conn.sock, LINGER_S))
        ):
            result = super().handle(conn)
        return result

    def _others_waiting(self) -> bool:
        """Whether another connection waits for a thread: this one then goes back to the main
        thread, as in ``gthread``, so that a client sending request after request cannot keep
        a thread from the others."""
        queue = getattr(self.tpool, "_work_queue", None)
        return queue is None or not queue.empty()
