"""Database access: the declarative base, column types and transaction scopes.

Every change runs in ``Database.write()``: one transaction that commits or rolls back as a
whole. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers
wait for each other (busy timeout) instead of failing when they upgrade a read lock.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import JSON, DateTime, Index, MetaData, create_engine, event, inspect, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapper,
    Session,
    make_transient_to_detached,
    sessionmaker,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.pool import QueuePool
from sqlalchemy.types import TypeDecorator

from engine.errors import Forbidden, Invalid

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


JSONType = JSON().with_variant(JSONB(), "postgresql")

# The largest id a row can have: an ``Integer`` primary key is 32 bits on PostgreSQL, a
# ``BigInteger`` one (the audit events') 64 bits, as SQLite's every integer. A larger number
# names no row; passed to SQLite's driver it is an ``OverflowError``, not "not found".
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1


# Writes a transaction queues for its end, run just before it commits, by rank: a lower
# rank first (the audit chain's head, 10, before the dashboard counters, 20), so that every
# transaction takes those locks in one order. After a rollback their queues are dropped.
_AT_COMMIT: list[
    tuple[int, Callable[[Session], None], Callable[[Session], None], Callable[[Session], bool]]
] = []


def at_commit(
    rank: int,
    write: Callable[[Session], None],
    drop: Callable[[Session], None],
    pending: Callable[[Session], bool],
) -> None:
    """Register ``write(session)`` to run before every commit, ``drop(session)`` after every
    rollback, and ``pending(session)``: whether ``write`` has anything to write."""
    _AT_COMMIT.append((rank, write, drop, pending))
    _AT_COMMIT.sort(key=lambda item: item[0])


@event.listens_for(Session, "before_commit")
def _write_queued(session: Session) -> None:
    for _rank, write, _drop, _pending in _AT_COMMIT:
        write(session)


@event.listens_for(Session, "after_rollback")
def _drop_queued(session: Session) -> None:
    for _rank, _write, drop, _pending in _AT_COMMIT:
        drop(session)


def _nothing_to_commit(session: Session) -> bool:
    """Whether committing ``session`` would write nothing: no transaction is open (a view
    committed it already, ``web.api.auth.transaction``), no object waits to be flushed and
    nothing is queued for the commit. SQLAlchemy's commit of nothing still begins and ends
    a transaction of its own in Python (a twentieth of a small write's own work)."""
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        return False
    return not any(pending(session) for *_, pending in _AT_COMMIT)


# session.info: what a transaction keeps for its own length (``transaction_memo``).
_MEMO = "credencia.transaction_memo"


def transaction_memo(session: Session) -> dict[Any, Any]:
    """A dict that lives as long as the session's transaction: emptied when it ends (commit,
    rollback, close) and when a savepoint in it ends, so nothing kept in it outlives what it
    read."""
    return session.info.setdefault(_MEMO, {})


def hold(session: Session, obj: Any) -> Any:
    """Keep ``obj`` referenced until the transaction ends. The session's identity map holds
    rows weakly: without this a row read in one step of a completion and asked for by primary
    key (``session.get``) in a later one is read from the database again."""
    transaction_memo(session).setdefault("held", []).append(obj)
    return obj


@event.listens_for(Session, "after_transaction_end")
def _forget_memo(session: Session, transaction: Any) -> None:
    if transaction.parent is None or transaction.nested:  # (not a flush's own)
        session.info.pop(_MEMO, None)


class Columns(NamedTuple):
    """A mapped class's columns, to select them in a Core statement and make persistent
    objects of its rows' values (``adopt``)."""

    mapper: Mapper
    keys: tuple[str, ...]  # the attributes, in the order of ``columns``
    columns: tuple[Any, ...]
    identity: tuple[int, ...]  # where the primary key's columns are in ``keys``
    left_out: tuple[str, ...]  # the column attributes not selected: loaded on first use

    def of(self, row: Any, start: int) -> tuple[Any, ...]:
        """This class's values in ``row``, whose columns start at ``start``."""
        return tuple(row[start : start + len(self.keys)])


def columns_of(model: type, *, without: tuple[str, ...] = ()) -> Columns:
    """The column attributes of ``model`` but ``without``, as a Core statement selects them."""
    mapper = inspect(model)
    attrs = [a for a in mapper.column_attrs if a.key not in without]
    keys = tuple(a.key for a in attrs)
    primary = {c.key for c in mapper.primary_key}
    return Columns(
        mapper=mapper,
        keys=keys,
        columns=tuple(a.columns[0] for a in attrs),
        identity=tuple(i for i, a in enumerate(attrs) if a.columns[0].key in primary),
        left_out=tuple(without),
    )


def adopt(session: Session, cols: Columns, values: tuple[Any, ...]) -> Any:
    """The persistent object whose row a Core statement returned (``values``, in the order of
    ``cols.keys``), as if the ORM had loaded it with ``populate_existing``: the one the
    session already has, its attributes set to these values (the ones left out of the
    statement expired), or a new one in the session. What a query's loading does besides —
    its statement handling, the row processing, the per-row loader — is left out: a third of
    the ORM's cost for a row or two (docs/PERFORMANCE.md, "Issue 19, session 18")."""
    key = cols.mapper.identity_key_from_primary_key([values[i] for i in cols.identity])
    obj = session.identity_map.get(key)
    if obj is not None:
        for name, value in zip(cols.keys, values, strict=True):
            set_committed_value(obj, name, value)
        if cols.left_out:
            session.expire(obj, cols.left_out)
        return obj
    obj = cols.mapper.class_manager.new_instance()
    obj.__dict__.update(zip(cols.keys, values, strict=True))
    make_transient_to_detached(obj)  # the rest (``left_out``) loads when first asked for
    session.add(obj)
    return obj


def insert_now(session: Session, obj: Any) -> Any:
    """``session.add(obj); session.flush()`` for a new object of a single-table mapping: the
    session's other pending changes flushed first (as the flush would order them before a row
    that may refer to them), then ``obj``'s row written by one Core ``INSERT … RETURNING``
    (the column defaults applied as the flush applies them, every column read back), and
    ``obj`` made a persistent object of the session with those values. The ORM's flush of one
    new object — its unit of work, dependency sort and per-mapper bookkeeping — costs several
    times the statement (docs/PERFORMANCE.md, "Issue 19, session 24"). Anything else (an
    object already in a session, a mapping over several tables) takes the flush."""
    state = inspect(obj)
    mapper = state.mapper
    if not state.transient or len(mapper.tables) != 1:
        session.add(obj)
        session.flush()
        return obj
    session.flush()
    attrs = _insert_attrs(mapper)
    given = state.dict
    # (A primary key left None is the database's to number, as the flush leaves it.)
    values = {
        column: given[key]
        for key, column, key_column in attrs
        if key in given and not (key_column and given[key] is None)
    }
    row = session.connection().execute(_insert_returning(mapper), values).one()
    for (key, _column, _key_column), value in zip(attrs, row, strict=True):
        given[key] = value
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


@functools.cache
def _insert_attrs(mapper: Mapper) -> tuple[tuple[str, str, bool], ...]:
    """(attribute, column, whether in the primary key) of a single-table mapping, in the
    table's column order."""
    by_column = {prop.columns[0].key: prop.key for prop in mapper.column_attrs}
    return tuple((by_column[c.key], c.key, c.primary_key) for c in mapper.local_table.c)


@functools.cache
def _insert_returning(mapper: Mapper) -> Any:
    table = mapper.local_table
    return table.insert().returning(*table.c)


def load(session: Session, cols: Columns, values: tuple[Any, ...]) -> Any:
    """The persistent object whose row a Core statement returned, as the ORM's plain load
    (without ``populate_existing``) gives it: an object the session already holds keeps its
    values, changes not yet flushed included, and only its attributes not loaded take the
    row's; otherwise a new persistent object, as ``adopt`` makes it. For a row read again
    under a lock (``SELECT … FOR UPDATE``) that an earlier step may have changed."""
    key = cols.mapper.identity_key_from_primary_key([values[i] for i in cols.identity])
    obj = session.identity_map.get(key)
    if obj is None:
        return adopt(session, cols, values)
    unloaded = inspect(obj).unloaded
    if unloaded:
        for name, value in zip(cols.keys, values, strict=True):
            if name in unloaded:
                set_committed_value(obj, name, value)
    return obj


def unique_where(name: str, *columns: str, where: str) -> Index:
    """A partial unique index (unique among the rows matching ``where``), on both databases."""
    return Index(
        name, *columns, unique=True, sqlite_where=text(where), postgresql_where=text(where)
    )


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """On SQLite, ``process_bind_param`` and the dialect's text in one step: the text
        SQLite's DATETIME writes (``YYYY-MM-DD HH:MM:SS.ffffff``) is ``isoformat``'s, a
        third of the cost of its ``%`` formatting of a dict. Anything but a datetime goes
        the usual way (and fails the usual way)."""
        usual = super().bind_processor(dialect)
        if type(self.impl_instance) is not sqlite.DATETIME or usual is None:
            return usual  # (not the SQLite dialect's type: PostgreSQL, or not yet adapted)

        def process(value: Any) -> Any:
            if type(value) is not datetime or value.tzinfo is None:
                return usual(value)
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process


def utcnow() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ SQLite's writers in turn

# SQLite's writers one at a time, in the order they asked.
#
# SQLite lets one transaction write at a time. A writer that finds the database locked sleeps
# in SQLite's busy handler — 1, 2, 5, 10, 15, 20, 25… ms between attempts — so with a few
# writers at once the lock often sits free while they all sleep, and an unlucky writer loses
# race after race: with four API clients on two workers, a completion's 95th percentile was
# several times its median, and the lock idle between writers cost throughput
# (docs/PERFORMANCE.md, "Issue 19, session 18").
#
# Here every write transaction (``BEGIN IMMEDIATE``, ``_configure_sqlite``) first takes its turn:
# the threads of a process on a lock of their own, the processes (web workers, the scheduler,
# a command) on an exclusive ``flock`` of a file beside the database (``<database>-writers``).
# Whoever holds the turn goes on to SQLite's lock, which is then free but for a program outside
# Credencia; the turn passes on as the transaction ends (commit, rollback, or its connection
# closed), and the next writer is woken by the kernel at once instead of at its next poll.
#
# A writer waits for its turn at most ``timeout`` seconds (SQLite's busy timeout), then fails
# as SQLite would (``database is locked``), whether the turn is held by a thread of its own
# process or by another process: a process that hangs holding it must not hang every other
# writer with it. The file's lock is first tried without waiting (the usual case: nobody
# writes); when another process holds it, a thread of this process waits for it in the kernel
# (``_FileWait``), so the turn still passes at once when it is let go, and the writer waits for
# that thread with a deadline. A wait given up keeps going for whoever asks next; when the lock
# comes and nobody wants it any more, it is let go at once.

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
        self._waits = threading.Lock()  # guards ``_pending`` and each wait's ``wanted``
        self._pending: _FileWait | None = None  # the kernel wait in progress, if any

    def _file(self) -> int:
        if self._fd is None:
            # Opened in the process that uses it: a descriptor inherited through fork shares
            # its open file, and with it the lock, with the parent and the other children.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def enter(self, connection: Any) -> None:
        """Wait for the turn, for ``connection`` (the driver's) to begin writing; at most
        ``timeout`` seconds in all, then ``OperationalError`` (database is locked)."""
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            raise _locked("writers' queue")
        try:
            self._take_file(deadline)
        except BaseException:
            self._threads.release()
            raise
        self._holder = id(connection)

    def _take_file(self, deadline: float) -> None:
        """The file's lock, for this process (its threads take turns on ``_threads``)."""
        fd = self._file()
        with self._waits:
            wait = self._pending
            if wait is None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return  # nobody else was writing
                except BlockingIOError:
                    wait = self._pending = _FileWait(self, fd)
            wait.wanted = True
        wait.done.wait(max(0.0, deadline - time.monotonic()))
        with self._waits:
            if wait.done.is_set():
                self._pending = None
                if wait.error is not None:
                    raise _locked(f"writers' file: {wait.error}")
                return  # the lock is this process's now
            wait.wanted = False  # given up: the wait goes on for the next writer, if one comes
        raise _locked("another process writes")

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
        self._waits = threading.Lock()
        self._pending = None  # (its thread is the parent's)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _FileWait:
    """A blocking ``flock`` of the writers' file in a thread of its own: the kernel hands the
    lock over the moment its holder lets go, and the writer that asked can stop waiting.

    When the lock comes: if a writer still wants it (``wanted``, under the queue's ``_waits``)
    it is that writer's, which the writer sees through ``done``; if not, it is let go again."""

    def __init__(self, queue: WriterQueue, fd: int) -> None:
        self.wanted = False
        self.error: OSError | None = None
        self.done = threading.Event()
        self._queue, self._fd = queue, fd
        threading.Thread(target=self._wait, name="writers-turn", daemon=True).start()

    def _wait(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:  # the descriptor closed meanwhile (a fork's child reopens it)
            self.error = exc
        with self._queue._waits:
            if self.wanted:
                self.done.set()  # the writer takes the lock, or the error (and clears ``_pending``)
                return
            if self._queue._pending is self:
                self._queue._pending = None
            if self.error is None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)  # nobody wants it any more


def _locked(why: str) -> sa_exc.OperationalError:
    """What SQLite raises when its busy timeout passes (``web.errors`` answers it with 503)."""
    return sa_exc.OperationalError(
        "BEGIN IMMEDIATE", None, Exception(f"database is locked ({why})")
    )


def _after_fork_in_child() -> None:
    global _QUEUES_LOCK
    _QUEUES_LOCK = threading.Lock()
    for queue in list(_QUEUES.values()):
        queue._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


# How long a write waits for another one: SQLite's busy timeout and the writers' turn
# (``WriterQueue``), PostgreSQL's ``lock_timeout`` unless one is configured there.
LOCK_WAIT_S = 30


def make_engine(url: str, *, statement_timeout_s: float | None = None, **kwargs: Any) -> Engine:
    """The engine for ``url``. ``statement_timeout_s``: on PostgreSQL, the longest a statement
    may run before the server cancels it (57014), unless one is configured there (the web
    app's; SQLite has no such limit)."""
    if url.startswith("sqlite"):
        connect_args = {"timeout": LOCK_WAIT_S, "check_same_thread": False}
        # Pooled connections stay open: closing the last one checkpoints and removes the WAL,
        # which cost ~6 ms per write transaction. (:memory: is not supported: several
        # connections must see one database.)
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
        engine = create_engine(url, connect_args=connect_args, poolclass=QueuePool, **kwargs)
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # Not SQLAlchemy's pre-ping (a round trip before every transaction): see
    # ``_configure_postgresql``, which checks each connection as it leaves the pool.
    check = kwargs.pop("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    _configure_postgresql(engine, check_at_checkout=check, statement_timeout_s=statement_timeout_s)
    return engine


# Each limit is set as a connection opens, unless the server, database, role or URL set one;
# a statement timeout of "0ms" sets nothing.
_SESSION_LIMITS = (
    "SELECT set_config('lock_timeout', %(lock)s, false)"
    " WHERE current_setting('lock_timeout') = '0'"
    " UNION ALL SELECT set_config('statement_timeout', %(statement)s, false)"
    " WHERE current_setting('statement_timeout') = '0' AND %(statement)s <> '0ms'"
)

# connection.info: the current transaction ran a statement other than a SELECT.
_WROTE = "credencia.wrote"

# The BEGIN a PostgreSQL connection sends as it leaves the pool, set by ``Database`` around
# the checkouts of its transactions (``Database._checkout``); None elsewhere: a plain ping.
_BEGIN_AT_CHECKOUT: ContextVar[bytes | None] = ContextVar("credencia_begin", default=None)
BEGIN = b"BEGIN"
BEGIN_SNAPSHOT = b"BEGIN ISOLATION LEVEL REPEATABLE READ"


def _configure_postgresql(
    engine: Engine, *, check_at_checkout: bool = True, statement_timeout_s: float | None = None
) -> None:
    """Two things per connection and transaction:

    - A connection leaving the pool is checked with one round trip, as SQLAlchemy's
      ``pool_pre_ping`` does, so that one the server dropped (a restart, an idle cut) is
      replaced before use instead of failing the request that drew it. For ``Database``'s
      transactions that round trip is the transaction's own BEGIN, sent then (psycopg, finding
      the connection in a transaction, sends none of its own): the check costs nothing more.
      Anywhere else (the CLI, migrations, the scheduler's own connections) it is a ping.
      A failed check raises ``DisconnectionError``: the pool discards the connection and
      checks out a fresh one (up to three times).
    - Whether the transaction ran anything but a SELECT: a read that did not ends with COMMIT
      (``Database.read``), which keeps the connection's prepared statements."""
    from psycopg import pq

    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # A statement waits for another transaction's lock at most as long as a SQLite writer
        # waits for its turn; then PostgreSQL gives it up (55P03) and the request answers 503
        # (``web.errors.database_busy``) instead of holding a thread for as long as the other
        # transaction lasts. A ``lock_timeout`` set for the server, database, role or in the
        # URL's options is theirs to choose, and kept. Likewise a statement of the web app
        # runs at most ``statement_timeout_s`` (then 57014, the same 503): a runaway query
        # does not hold a worker's thread for as long as it runs.
        with dbapi_conn.cursor() as cur:
            statement = f"{round((statement_timeout_s or 0) * 1000)}ms"
            limits = {"lock": f"{LOCK_WAIT_S}s", "statement": statement}
            cur.execute(_SESSION_LIMITS, limits)
        dbapi_conn.commit()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        command = _BEGIN_AT_CHECKOUT.get()
        if command is None:
            if check_at_checkout:
                _ping(dialect, dbapi_conn)
            return
        pgconn = dbapi_conn.pgconn
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            raise sa_exc.DisconnectionError("connection not idle when leaving the pool")
        result = pgconn.exec_(command)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise sa_exc.DisconnectionError(
                f"BEGIN failed as the connection left the pool: {pgconn.error_message!r}"
            )

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.info.pop(_WROTE, None)

    @event.listens_for(engine, "before_cursor_execute")
    def _on_statement(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("SELECT"):
            conn.info[_WROTE] = True


def _ping(dialect: Any, dbapi_conn: Any) -> None:
    try:
        dialect.do_ping(dbapi_conn)
    except dialect.loaded_dbapi.Error as exc:
        if dialect.is_disconnect(exc, dbapi_conn, None):
            raise sa_exc.DisconnectionError(str(exc)) from exc
        raise


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN so we can choose IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_S * 1000)}")
        cur.close()

    path = engine.url.database
    queue = queue_for(path, timeout=LOCK_WAIT_S) if path and path != ":memory:" else None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("credencia_write", False)
        # On the driver's connection: a BEGIN needs none of SQLAlchemy's statement handling
        # (an execution context, a cursor, a result), which cost more than the BEGIN itself.
        driver = conn.connection.driver_connection
        if not immediate:
            driver.execute("BEGIN")
            return
        if queue is None:
            driver.execute("BEGIN IMMEDIATE")
            return
        queue.enter(driver)  # the writers' turn first (``WriterQueue``)
        try:
            driver.execute("BEGIN IMMEDIATE")
        except BaseException:
            queue.leave(driver)
            raise

    if queue is None:
        return
    # The turn passes on as the transaction ends: after its COMMIT or ROLLBACK (the pool's
    # reset of a returned connection is a ROLLBACK too), or with its connection, closed or
    # dropped without either.
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            queue.leave(getattr(dbapi_connection, "driver_connection", dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            queue.leave(getattr(dbapi_connection, "driver_connection", dbapi_connection))

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback

    @event.listens_for(engine, "close")
    @event.listens_for(engine, "close_detached")
    def _on_close(dbapi_connection: Any, *_record: Any) -> None:
        queue.leave(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exception: Any) -> None:
        queue.leave(dbapi_connection)


class Database:
    """A bound engine and its session factory; one per process and database URL."""

    def __init__(self, url: str, *, statement_timeout_s: float | None = None, **engine_kwargs: Any):
        self.url = url
        self.engine = make_engine(url, statement_timeout_s=statement_timeout_s, **engine_kwargs)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        # Called with (session, Forbidden) in a fresh transaction after a denial rolled back.
        self.on_denied: Callable[[Session, Forbidden], None] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def _beginning(self, begin: bytes = BEGIN) -> Iterator[None]:
        """On PostgreSQL, a connection checked out inside the block begins its transaction
        (``begin``) as it leaves the pool, in the round trip that checks it."""
        if self.dialect != "postgresql":
            yield
            return
        token = _BEGIN_AT_CHECKOUT.set(begin)
        try:
            yield
        finally:
            _BEGIN_AT_CHECKOUT.reset(token)

    def _checkout(self, session: Session, *, begin: bytes = BEGIN, **options: Any) -> Connection:
        """The session's connection, taken from the pool now (see ``_beginning``)."""
        with self._beginning(begin):
            return session.connection(execution_options=options or None)

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Session]:
        """A read-only transaction. ``snapshot``: one that sees a single moment of the whole
        database throughout (PostgreSQL's REPEATABLE READ; SQLite's transactions always do)."""
        session = self.session_factory()
        try:
            if self.dialect == "postgresql":
                self._checkout(session, begin=BEGIN_SNAPSHOT if snapshot else BEGIN)
            yield session
            self._end_read(session)
        except (Forbidden, Invalid) as refused:
            session.close()
            self._audit_denial(refused)
            raise
        finally:
            # close() ends the transaction without expiring loaded objects (rollback would).
            session.close()

    def _end_read(self, session: Session) -> None:
        """On PostgreSQL, a read that wrote nothing ends with COMMIT, not with the ROLLBACK
        ``close()`` would send: at a ROLLBACK the driver (psycopg) drops every statement it
        prepared on the connection (in case the rollback undid a DDL), so each request would
        have the server parse and plan its statements again, after a DEALLOCATE ALL round trip.
        A read that did write (by mistake: reads never should) is rolled back, as before."""
        transaction = session.get_transaction()
        if self.dialect != "postgresql" or transaction is None:
            return
        if not transaction.is_active or session.new or session.dirty or session.deleted:
            return
        connection = session.connection()
        if connection.in_transaction() and not connection.info.get(_WROTE):
            connection.commit()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction; commits on success, rolls back everything on any error.

        A ``Forbidden`` (or an ``Invalid`` carrying a denial) is audited in a transaction of
        its own, since the denied transaction itself is rolled back.
        """
        session = self.session_factory()
        self._checkout(session, credencia_write=True)
        try:
            yield session
            if not _nothing_to_commit(session):
                session.commit()
        except (Forbidden, Invalid) as refused:
            session.rollback()
            self._audit_denial(refused)
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def statements(self) -> Iterator[Connection]:
        """One write transaction on a plain connection, without an ORM session: for a Core
        statement or two that no session hook has to see (a read's access-log entry), at a
        third of the cost of ``write``. Commits on success, rolls back on any error."""
        with self._beginning():
            conn = self.engine.connect()
        with conn:
            conn.execution_options(credencia_write=True)
            with conn.begin():
                yield conn

    def _audit_denial(self, refused: Forbidden | Invalid) -> None:
        """Audit a denial: a ``Forbidden``, or the one an ``Invalid`` carries (if any)."""
        denial = refused if isinstance(refused, Forbidden) else refused.denial
        if self.on_denied is None or denial is None:
            return
        session = self.session_factory()
        self._checkout(session, credencia_write=True)
        try:
            self.on_denied(session, denial)
            session.commit()
        except Exception:
            session.rollback()
            log.exception("could not audit a denial")
        finally:
            session.close()

    def ping(self) -> None:
        """One round trip to the database (the health check); raises when it is unreachable."""
        with self.read() as session:
            session.execute(select(1))

    def dispose(self) -> None:
        self.engine.dispose()


# ------------------------------------------------------------------ statements on the driver


class _Plan:
    """A Core statement compiled for one dialect and one set of parameter names: its SQL, the
    order of its positional parameters (None: named), its bind and result processors."""

    __slots__ = ("statement", "sql", "names", "defaults", "binds", "results")

    def __init__(self, statement: Any, dialect: Any, keys: tuple[str, ...]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        # What only SQLAlchemy's execution does: Python-side column defaults, parameters
        # rendered at execution (expanding IN), renamed parameters. A statement needing any
        # of them goes through ``connection.execute``.
        if (
            compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.post_compile_params
            or compiled.escaped_bind_names
        ):
            raise ValueError(f"not a statement for send(): {compiled.string[:80]!r}")
        self.statement = statement  # held: its id keys the plan
        self.sql = compiled.string
        positions = compiled.positiontup
        self.names = tuple(positions) if dialect.positional else None
        # Values the statement carries itself (literals turned into parameters).
        self.defaults = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if name not in keys and not bind.required
        }
        self.binds = tuple(compiled._bind_processors.items())
        results = [
            column[3]._cached_result_processor(dialect, None) for column in compiled._result_columns
        ]
        # (column, processor) for the columns that have one.
        self.results = tuple((i, p) for i, p in enumerate(results) if p is not None) or None


# Plans by (id of the statement, dialect, parameter names). The plan holds its statement, so
# the id stays that statement's; the statements are module-level constants, a handful.
_PLANS: dict[tuple[int, str, tuple[str, ...]], _Plan] = {}
_MAX_PLANS = 1000


class Sent(NamedTuple):
    """What ``send`` got back: the rows changed, and the rows returned (a SELECT's, or an
    INSERT's or UPDATE's RETURNING), as plain tuples."""

    rowcount: int
    rows: list[tuple[Any, ...]]


def _plan(connection: Connection, statement: Any, keys: tuple[str, ...]) -> _Plan:
    key = (id(statement), connection.dialect.name, keys)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:  # statements built per call by mistake: stay bounded
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(statement, connection.dialect, keys)
    return plan


def _arguments(plan: _Plan, params: dict[str, Any]) -> Any:
    """The driver's parameters for one execution: positional or named, as the dialect's."""
    values = {**plan.defaults, **params} if plan.defaults else dict(params)
    for name, process in plan.binds:
        if name in values:
            values[name] = process(values[name])
    return values if plan.names is None else tuple(map(values.__getitem__, plan.names))


def _run(connection: Connection, plan: _Plan, args: Any, *, many: bool = False) -> Sent:
    if not connection.in_transaction():  # as ``connection.execute`` would: begin first
        connection.begin()
    dialect = connection.dialect
    cursor = connection.connection.driver_connection.cursor()
    try:
        if connection._has_events or connection.engine._has_events:
            for listener in connection.dispatch.before_cursor_execute:
                listener(connection, cursor, plan.sql, args, None, many)
        try:
            if many:
                cursor.executemany(plan.sql, args)
            else:
                cursor.execute(plan.sql, args)
            rows = cursor.fetchall() if cursor.description is not None else []
        except dialect.loaded_dbapi.Error as exc:
            connection._handle_dbapi_exception(exc, plan.sql, args, cursor, None)
        rowcount = cursor.rowcount
        if connection._has_events or connection.engine._has_events:
            for listener in connection.dispatch.after_cursor_execute:
                listener(connection, cursor, plan.sql, args, None, many)
    finally:
        cursor.close()
    if plan.results is not None and rows:
        processed = plan.results
        rows = [_processed(row, processed) for row in rows]
    return Sent(rowcount, rows)


def _processed(row: tuple[Any, ...], processors: tuple[tuple[int, Any], ...]) -> tuple[Any, ...]:
    """``row`` with each (column, processor) of ``processors`` applied (the columns without
    one, most of a wide read's, are left as they are)."""
    values = list(row)
    for i, process in processors:
        values[i] = process(values[i])
    return tuple(values)


def send(connection: Connection, statement: Any, params: dict[str, Any]) -> Sent:
    """Execute a prebuilt Core ``statement`` once, with ``params``, on ``connection``'s driver
    connection: the SQL, the parameter and result processing, the events and the error
    handling of ``connection.execute``, without the part of SQLAlchemy's work that is the
    same at every execution (the execution context, the cache key, the result object). The
    statement is compiled once per dialect and set of parameter names. For the few statements
    every request sends (docs/PERFORMANCE.md, "Issue 19, session 13")."""
    plan = _plan(connection, statement, tuple(params))
    return _run(connection, plan, _arguments(plan, params))


def send_many(connection: Connection, statement: Any, rows: list[dict[str, Any]]) -> Sent:
    """``send`` for several sets of parameters with the same names, in one executemany (no
    RETURNING: the driver returns no rows from it)."""
    plan = _plan(connection, statement, tuple(rows[0]))
    return _run(connection, plan, [_arguments(plan, row) for row in rows], many=True)
