"""Logging reads of personal data (engine/lgpd/access.py) from the pages and the API: one
INSERT in a short transaction of its own (a plain connection, no ORM session), after the read
succeeded."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from engine.lgpd import access


def logged(view: str, *, org_id: int | None, entity_type: str = "", entity_id: Any = "",
           detail: str = "") -> None:  # fmt: skip
    database = current_app.extensions["credencia.db"]
    channel = "api" if request.path.startswith("/api/") else "web"
    with database.statements() as conn:
        access.record(
            conn, g.get("actor"), view, org_id=org_id, entity_type=entity_type,
            entity_id=entity_id, detail=detail, address=request.remote_addr or "",
            channel=channel,
        )  # fmt: skip
