"""The append-only, hash-chained audit log.

Each organization has its own chain (events without an organization go to ``system``), so
writers of different organizations never wait for each other. Appending locks the chain's
head row for the rest of the transaction: the event commits or rolls back with the change it
describes, and concurrent appends line up one after another.

Each event's hash covers the previous one's, and its data is stored as the very text that
was hashed (engine/audit/canonical.py); engine/audit/verify.py walks the chains.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.audit.canonical import canonical_json, escape_surrogates
from engine.audit.models import AuditChain, AuditEvent
from engine.db import utcnow

if TYPE_CHECKING:
    from engine.access.actor import Actor
    from engine.audit.verify import Break
    from engine.errors import Forbidden

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"


def chain_key(org_id: int | None) -> str:
    return f"org:{org_id}" if org_id is not None else SYSTEM_CHAIN


def _members(fields: dict[str, Any]) -> str:
    """``"k":v,...`` of a JSON object with sorted keys, as the chain's hashes are written."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return escape_surrogates(text[1:-1])


def event_hash(
    *,
    chain: str,
    seq: int,
    at: datetime,
    org_id: int | None,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    data: str,
    prev_hash: str,
) -> str:
    """SHA-256 of the event as one JSON object with sorted keys, ``data`` being the canonical
    text exactly as stored (``canonical_json``), spliced in as is.

    The same bytes as ``json.dumps`` of the whole event with the data as a nested object, the
    form older events were hashed in.
    """
    head = _members({"action": action, "actor": actor, "actor_id": actor_id,
                     "at": at.isoformat(timespec="microseconds"), "chain": chain})  # fmt: skip
    tail = _members({"entity_id": entity_id, "entity_type": entity_type, "org_id": org_id,
                     "prev_hash": prev_hash, "seq": seq})  # fmt: skip
    body = "{" + head + ',"data":' + data + "," + tail + "}"
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _lock_head(session: Session, key: str) -> AuditChain:
    lock = select(AuditChain).where(AuditChain.key == key).with_for_update()
    head = session.execute(lock).scalar_one_or_none()
    if head is not None:
        return head
    # First event of the chain: create its head; a concurrent creator's row wins quietly.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(AuditChain).values(key=key, last_seq=0, last_hash=GENESIS).on_conflict_do_nothing()
    )
    return session.execute(lock).scalar_one()


def _append(
    session: Session,
    *,
    org_id: int | None,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    data: dict[str, Any],
) -> AuditEvent:
    key = chain_key(org_id)
    head = _lock_head(session, key)
    fields = {
        "chain": key,
        "seq": head.last_seq + 1,
        "at": utcnow(),
        "org_id": org_id,
        "actor_id": actor_id,
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        # The hash covers the text the database keeps; the event holds its parsed value.
        "data": canonical_json(data),
        "prev_hash": head.last_hash,
    }
    digest = event_hash(**fields)
    event = AuditEvent(**{**fields, "data": json.loads(fields["data"])}, hash=digest)
    session.add(event)
    head.last_seq, head.last_hash = event.seq, event.hash
    session.flush()
    return event


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    *,
    org_id: int | None,
    entity_type: str = "",
    entity_id: str | int = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to its organization's chain inside the caller's transaction."""
    return _append(
        session,
        org_id=org_id,
        actor_id=actor.user_id if actor else None,
        actor=actor.label if actor else "system",
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        data=data or {},
    )


def record_denial(session: Session, denial: Forbidden) -> AuditEvent:
    return _append(
        session,
        org_id=denial.org_id,
        actor_id=denial.actor_id,
        actor=denial.actor_label or "anonymous",
        action=f"denied.{denial.action}",
        entity_type=denial.entity_type,
        entity_id=str(denial.entity_id),
        data={"reason": denial.message, **denial.details},
    )


def verify(session: Session) -> tuple[int, Break | None]:
    """Every chain from its start, saving nothing: (events checked, the first break found or
    None). Reports and checkpoints: engine/audit/verify.py, which finds every break of every
    chain."""
    from engine.audit import verify as verification  # it builds on this module

    report = verification.verify(session)
    breaks = report.breaks
    return report.checked, breaks[0] if breaks else None
