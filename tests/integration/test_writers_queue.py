"""SQLite's writers take turns (``engine.db.WriterQueue``): a writer waits for the one before it —
in this process on a lock, in another on the ``flock`` beside the database — and the turn
passes on however the transaction ends: commit, rollback, its connection dropped."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from engine.db import Database, WriterQueue, queue_for
from tests.support.workers import TurnHolder

WAIT_S = 0.5  # long enough for a writer that does not wait to have finished


@pytest.fixture
def sqlite_db(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'queue.db'}")
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield database
    database.dispose()


def _write_in_thread(database: Database, value: int, done: list[int]) -> threading.Thread:
    def write() -> None:
        with database.write() as s:
            s.execute(text("INSERT INTO t VALUES (:n)"), {"n": value})
        done.append(value)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_writer_of_this_process_waits_for_the_turn_and_gets_it_when_it_ends(sqlite_db, end):
    done: list[int] = []
    conn = sqlite_db.engine.connect()
    conn.execution_options(credencia_write=True)
    transaction = conn.begin()  # BEGIN IMMEDIATE: the turn is this connection's
    waiting = _write_in_thread(sqlite_db, 2, done)
    waiting.join(WAIT_S)
    assert waiting.is_alive() and done == []
    conn.execute(text("INSERT INTO t VALUES (1)"))
    transaction.commit() if end == "commit" else transaction.rollback()
    waiting.join(10)  # the connection still open: the turn passed as the transaction ended
    assert done == [2]
    conn.close()
    with sqlite_db.read() as s:
        rows = sorted(n for (n,) in s.execute(text("SELECT n FROM t")))
    assert rows == ([1, 2] if end == "commit" else [2])


def test_a_dropped_connection_passes_the_turn_on(sqlite_db):
    done: list[int] = []
    conn = sqlite_db.engine.connect()
    conn.execution_options(credencia_write=True)
    conn.begin()
    waiting = _write_in_thread(sqlite_db, 3, done)
    waiting.join(WAIT_S)
    assert waiting.is_alive()
    conn.invalidate()  # closed without COMMIT or ROLLBACK through the dialect
    waiting.join(10)
    assert done == [3]


def test_a_writer_of_another_process_holds_the_turn_until_it_lets_go(sqlite_db, tmp_path):
    holder = TurnHolder(tmp_path / "queue.db")
    try:
        done: list[int] = []
        waiting = _write_in_thread(sqlite_db, 4, done)
        waiting.join(WAIT_S)
        assert waiting.is_alive() and done == []  # SQLite's own lock is free: it is the turn
        holder.let_go()
        waiting.join(10)
        assert done == [4]
    finally:
        holder.stop()


def _free_for_another_process(db_path: Path) -> bool:
    """Whether a third process gets the writers' file's lock at once."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, f"{db_path}-writers"], timeout=30)
    return done.returncode == 0


def _settled(queue: WriterQueue) -> None:
    deadline = time.monotonic() + 10
    while queue._pending is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue._pending is None


def _waiting_threads() -> int:
    return sum(t.name == "writers-turn" for t in threading.enumerate())


def test_a_writer_gives_up_on_another_processs_turn_after_the_timeout(sqlite_db, tmp_path):
    """SQLite would say "database is locked" after its busy timeout; so does the turn, when a
    process holds it that long (a hung one must not hang every writer with it)."""
    queue = _queue_of(sqlite_db)
    queue.timeout = 0.3
    holder = TurnHolder(tmp_path / "queue.db")
    try:
        started = time.monotonic()
        locked = pytest.raises(sa_exc.OperationalError, match="database is locked")
        with locked, sqlite_db.write() as s:
            s.execute(text("INSERT INTO t VALUES (8)"))
        assert 0.3 <= time.monotonic() - started < 10
        assert queue._holder is None and queue._threads.acquire(blocking=False)
        queue._threads.release()  # this process's turn is free again
        holder.let_go()
        # The wait given up got the lock when the holder let go, and let it go: nobody wanted it.
        _settled(queue)
        assert _free_for_another_process(tmp_path / "queue.db")
        with sqlite_db.write() as s:
            s.execute(text("INSERT INTO t VALUES (9)"))
    finally:
        holder.stop()
    with sqlite_db.read() as s:
        assert [n for (n,) in s.execute(text("SELECT n FROM t"))] == [9]


def test_a_wait_given_up_goes_on_for_the_next_writer(sqlite_db, tmp_path):
    queue = _queue_of(sqlite_db)
    queue.timeout = 0.2
    holder = TurnHolder(tmp_path / "queue.db")
    try:
        locked = pytest.raises(sa_exc.OperationalError, match="database is locked")
        with locked, sqlite_db.write() as s:
            s.execute(text("INSERT INTO t VALUES (10)"))
        queue.timeout = 30
        done: list[int] = []
        waiting = _write_in_thread(sqlite_db, 11, done)
        waiting.join(WAIT_S)
        assert waiting.is_alive() and done == []
        assert _waiting_threads() == 1  # the same kernel wait, not a second one on the file
        holder.let_go()
        waiting.join(10)
        assert done == [11]
    finally:
        holder.stop()
    _settled(queue)
    assert _waiting_threads() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_process_takes_its_own_turn(sqlite_db):
    with sqlite_db.write() as s:
        s.execute(text("INSERT INTO t VALUES (5)"))  # the file is open in this process
        # Now this process holds the turn. A child forked meanwhile opens the file anew: had
        # it kept the inherited descriptor, it would share this process's lock and get it.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            queue = _queue_of(sqlite_db)
            try:
                fcntl.flock(queue._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                code = 1  # it got a turn this process holds
            except BlockingIOError:
                code = 0 if queue._holder is None else 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_threads_give_up_after_the_timeout_as_sqlite_would(tmp_path):
    queue = WriterQueue(str(tmp_path / "x.db"), timeout=0.05)
    queue.enter(object())
    failed: list[BaseException] = []

    def second() -> None:
        try:
            queue.enter(object())
        except sa_exc.OperationalError as exc:
            failed.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(10)
    assert failed and "database is locked" in str(failed[0])


def test_leaving_is_only_for_the_holder(tmp_path):
    queue = WriterQueue(str(tmp_path / "y.db"), timeout=0.05)
    holder, other = object(), object()
    queue.enter(holder)
    queue.leave(other)  # not its turn: nothing happens
    assert queue._holder == id(holder)
    queue.leave(holder)
    queue.enter(other)  # free again
    queue.leave(other)


def _queue_of(database: Database) -> WriterQueue:
    return queue_for(database.engine.url.database, timeout=1)


def test_engines_on_one_file_share_its_queue(sqlite_db, tmp_path):
    # A thread that holds a write through one engine and begins another through a second
    # engine on the same file fails after the timeout, as SQLite alone would make it, instead
    # of waiting forever for its own lock on the file.
    other = Database(f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        assert _queue_of(other) is _queue_of(sqlite_db)
        queue = _queue_of(sqlite_db)
        queue.timeout = 0.2
        with sqlite_db.write() as s:
            s.execute(text("INSERT INTO t VALUES (6)"))
            refused = pytest.raises(sa_exc.OperationalError, match="database is locked")
            with refused, other.write() as s2:
                s2.execute(text("INSERT INTO t VALUES (7)"))
    finally:
        other.dispose()
    with sqlite_db.read() as s:
        assert [n for (n,) in s.execute(text("SELECT n FROM t"))] == [6]
