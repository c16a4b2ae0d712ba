"""Read models of deployed process definitions for the pages."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from engine import i18n
from engine.definitions.models import ProcessDefinition

# content hash -> the catalogs among its files ({"i18n/en.json": {...}}): the hash covers them.
_catalogs: dict[str, dict[str, Any]] = {}
_merged: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}
_lock = threading.Lock()


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


def catalog(session: Session, locale: str | None) -> dict[str, str]:
    """The words of every deployed process in ``locale`` as one catalog (a later version's
    translation wins), for lists that mix processes (inbox, dashboard, e-mails). Empty for
    pt-BR. Read from the database once per new version, not per call."""
    locale = i18n.locale_of(locale)
    if locale == i18n.DEFAULT:
        return {}
    hashes = tuple(
        session.scalars(select(ProcessDefinition.content_hash).order_by(ProcessDefinition.id))
    )
    found = _merged.get(locale)
    if found is not None and found[0] == hashes:
        return found[1]
    unread = [h for h in hashes if h not in _catalogs]
    if unread:
        rows = session.execute(
            select(ProcessDefinition.content_hash, ProcessDefinition.files).where(
                ProcessDefinition.content_hash.in_(unread)
            )
        ).all()
        with _lock:
            for content_hash, files in rows:
                _catalogs[content_hash] = {
                    name: content
                    for name, content in (files or {}).items()
                    if name.startswith(i18n.FOLDER + "/")
                }
    merged: dict[str, str] = {}
    for content_hash in hashes:
        merged.update(i18n.catalog(_catalogs.get(content_hash), locale))
    with _lock:
        _merged[locale] = (hashes, merged)
    return merged
