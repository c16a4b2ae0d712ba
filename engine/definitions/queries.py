"""Read models of deployed process definitions for the pages."""

from __future__ import annotations

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from engine.definitions.models import ProcessDefinition


def versions(session: Session, key: str) -> list[ProcessDefinition]:
    """Every deployed version of one process, oldest first (empty when the key is unknown)."""
    return list(
        session.scalars(
            select(ProcessDefinition)
            .where(ProcessDefinition.key == key)
            .order_by(ProcessDefinition.version)
        )
    )


def process_titles(session: Session) -> list[Row[tuple[str, str]]]:
    """(key, title) rows of the deployed processes, for filters."""
    rows = session.execute(
        select(ProcessDefinition.key, ProcessDefinition.title)
        .distinct()
        .order_by(ProcessDefinition.key)
    ).all()
    return list(rows)
