"""SQLite's writers one at a time, in the order they asked.

SQLite lets one transaction write at a time. A writer that finds the database locked sleeps
in SQLite's busy handler — 1, 2, 5, 10, 15, 20, 25… ms between attempts — so with a few
writers at once the lock often sits free while they all sleep, and an unlucky writer loses
race after race: with four API clients on two workers, a completion's 95th percentile was
several times its median, and the lock idle between writers cost throughput
(docs/PERFORMANCE.md, "Issue 19, session 18").

Here every write transaction of ``engine.db`` (``BEGIN IMMEDIATE``) first takes its turn:
the threads of a process on a lock of their own, the processes (web workers, the scheduler,
a command) on an exclusive ``flock`` of a file beside the database (``<database>-writers``).
Whoever holds the turn goes on to SQLite's lock, which is then free but for a program outside
Credencia; the turn passes on as the transaction ends (commit, rollback, or its connection
closed), and the next writer is woken by the kernel at once instead of at its next poll.

A process waits for its turn as long as the writer before it takes — as it waited for
SQLite's lock before, where SQLite would give up after its busy timeout. Threads of one
process give up after ``timeout`` seconds, as SQLite would (``database is locked``).
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from typing import Any

from sqlalchemy import exc as sa_exc

# The queues of this process, one per database file, whichever engines use it.
_QUEUES: weakref.WeakValueDictionary[str, WriterQueue] = weakref.WeakValueDictionary()
_QUEUES_LOCK = threading.Lock()


def queue_for(database_path: str, *, timeout: float) -> WriterQueue:
    """The queue of the database file at ``database_path``, shared by every engine of this
    process on it: a thread that begins a second write to the same file while it holds one
    (through another engine) then waits ``timeout`` and fails, as with SQLite's lock alone,
    instead of waiting for itself forever on the file's lock."""
    key = os.path.realpath(database_path)
    with _QUEUES_LOCK:
        queue = _QUEUES.get(key)
        if queue is None:
            queue = _QUEUES[key] = WriterQueue(key, timeout=timeout)
        return queue


class WriterQueue:
    """The turn to write to one SQLite database file, for this process's threads and
    between processes (``queue_for`` gives the process's one for a file)."""

    def __init__(self, database_path: str, *, timeout: float) -> None:
        self.path = f"{database_path}-writers"
        self.timeout = timeout
        self._threads = threading.Lock()
        self._holder: int | None = None  # id() of the driver connection holding the turn
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            # Opened in the process that uses it: a descriptor inherited through fork shares
            # its open file, and with it the lock, with the parent and the other children.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def enter(self, connection: Any) -> None:
        """Wait for the turn, for ``connection`` (the driver's) to begin writing."""
        if not self._threads.acquire(timeout=self.timeout):
            raise sa_exc.OperationalError(
                "BEGIN IMMEDIATE", None, Exception("database is locked (writers' queue)")
            )
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        self._holder = id(connection)

    def leave(self, connection: Any) -> None:
        """Pass the turn on, if ``connection`` holds it (any other: nothing)."""
        if self._holder is None or self._holder != id(connection):
            return
        self._holder = None
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _forked(self) -> None:
        # The child has none of its parent's threads: a turn one of them held is not its own,
        # and its lock file is opened anew (``_file``).
        self._threads = threading.Lock()
        self._holder = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _after_fork_in_child() -> None:
    global _QUEUES_LOCK
    _QUEUES_LOCK = threading.Lock()
    for queue in list(_QUEUES.values()):
        queue._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
