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
"""

from __future__ import annotations

import select
from typing import Any

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


class LingeringThreadWorker(ThreadWorker):
    """``gthread``, serving a kept-alive connection's next request in the answering thread."""

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
