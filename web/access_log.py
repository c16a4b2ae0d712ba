"""Logging reads of personal data (engine/lgpd/access.py) from the pages and the API, after
the read succeeded: one INSERT in a short transaction of its own (a plain connection, no ORM
session) — or, for an API read on PostgreSQL, in the read's own transaction, committed there
and then."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from engine.lgpd import access


def logged(view: str, *, org_id: int | None, entity_type: str = "", entity_id: Any = "",
           detail: str = "") -> None:  # fmt: skip
    database = current_app.extensions["credencia.db"]
    channel = "api" if request.path.startswith("/api/") else "web"
    entry = {
        "org_id": org_id, "entity_type": entity_type, "entity_id": entity_id, "detail": detail,
        "address": request.remote_addr or "", "channel": channel,
    }  # fmt: skip
    session = g.get("read_session")  # an API read's, the one its token was checked in
    if session is not None and database.dialect == "postgresql":
        # The read's transaction takes the entry and commits it: no second connection (its
        # checkout ping, BEGIN and COMMIT are three round trips), and the read's own end is
        # this COMMIT instead of a ROLLBACK. (SQLite cannot turn a read that began deferred
        # into a write safely: a writer that committed since would make it fail, not wait.)
        # On the session's connection, committed there, as ``Database.read`` ends a read: no
        # autoflush, so nothing a read left changed on its objects is written with the entry.
        connection = session.connection()
        access.record(connection, g.get("actor"), view, **entry)
        connection.commit()
        return
    with database.statements() as conn:
        access.record(conn, g.get("actor"), view, **entry)
