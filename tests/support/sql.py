"""The SQL statements a block of a test sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import event

from engine.db import Database


@contextmanager
def statements(db: Database, keep: Callable[[str], bool] = lambda sql: True) -> Iterator[list[str]]:
    """The statements sent meanwhile that ``keep`` accepts, each on one line (SQLite's BEGIN
    is not one of them)."""
    seen: list[str] = []

    def sent(conn, cursor, statement, *args) -> None:
        if keep(statement):
            seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", sent)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", sent)
