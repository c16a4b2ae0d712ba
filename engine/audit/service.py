"""The append-only, hash-chained audit log.

Each organization has its own chain (events without an organization go to ``system``), so
writers of different organizations never wait for each other. Appending locks the chain's
head row for the rest of the transaction: the event commits or rolls back with the change it
describes, and concurrent appends line up one after another.

Each event's hash covers the previous one's, and its data is stored as the very text that
was hashed (engine/audit/canonical.py); engine/audit/verify.py walks the chains. Personal
values never enter that text: engine/audit/vault.py replaces each by a salted commitment and
keeps the value, encrypted per data subject, beside the chain (so it can be erased).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.audit import vault
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


class NewEvent(NamedTuple):
    """One event of ``append_many``."""

    action: str
    entity_type: str
    entity_id: str
    data: dict[str, Any]


class _Who(NamedTuple):
    actor_id: int | None
    actor: str


def _who(actor: Actor | None) -> _Who:
    return _Who(actor.user_id, actor.label) if actor else _Who(None, "system")


def _fields(
    head: AuditChain, seq: int, prev_hash: str, org_id: int | None, who: _Who, event: NewEvent
) -> dict[str, Any]:
    """The columns of the next event of the chain, hash included; ``data`` as the canonical
    text the hash covers and the database keeps."""
    fields = {
        "chain": head.key,
        "seq": seq,
        "at": utcnow(),
        "org_id": org_id,
        "actor_id": who.actor_id,
        "actor": who.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": str(event.entity_id),
        "data": canonical_json(event.data),
        "prev_hash": prev_hash,
    }
    fields["hash"] = event_hash(**fields)
    return fields


def _append(session: Session, org_id: int | None, who: _Who, event: NewEvent) -> AuditEvent:
    head = _lock_head(session, chain_key(org_id))
    sealed, personal = vault.seal(event.data)
    fields = _fields(
        head, head.last_seq + 1, head.last_hash, org_id, who, event._replace(data=sealed)
    )
    if personal:
        place = vault.Placed(
            head.key, fields["seq"], event.entity_type, fields["entity_id"], personal
        )
        vault.store(session, org_id, [place])
    # The event holds the parsed value; its column writes it back as the same text.
    row = AuditEvent(**{**fields, "data": json.loads(fields["data"])})
    session.add(row)
    head.last_seq, head.last_hash = row.seq, row.hash
    session.flush()
    return row


_COLUMNS = (
    "chain", "seq", "at", "org_id", "actor_id", "actor", "action", "entity_type", "entity_id",
    "data", "prev_hash", "hash",
)  # fmt: skip


def append_many(
    session: Session, actor: Actor | None, org_id: int | None, events: Sequence[NewEvent]
) -> int:
    """Append ``events``, in order, to the organization's chain inside the caller's
    transaction: what ``record`` does for each, under one lock of the chain's head and in one
    statement (COPY on PostgreSQL). Returns the number of events."""
    if not events:
        return 0
    head = _lock_head(session, chain_key(org_id))
    seq, prev = head.last_seq, head.last_hash
    who = _who(actor)
    rows = []
    places = []
    for event in events:
        seq += 1
        sealed, personal = vault.seal(event.data)
        fields = _fields(head, seq, prev, org_id, who, event._replace(data=sealed))
        rows.append(fields)
        prev = fields["hash"]
        if personal:
            places.append(
                vault.Placed(head.key, seq, event.entity_type, fields["entity_id"], personal)
            )
    vault.store(session, org_id, places)  # one batch for all the events' personal values
    if session.get_bind().dialect.name == "postgresql":
        raw = session.connection().connection.driver_connection
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY audit_event ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
        ):
            for fields in rows:  # the canonical text goes in as it is
                copy.write_row(tuple(fields[c] for c in _COLUMNS))
    else:
        session.execute(insert(AuditEvent), [{**f, "data": json.loads(f["data"])} for f in rows])
    head.last_seq, head.last_hash = seq, prev
    session.flush()
    return len(rows)


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
        session, org_id, _who(actor), NewEvent(action, entity_type, str(entity_id), data or {})
    )


def record_denial(session: Session, denial: Forbidden) -> AuditEvent:
    who = _Who(denial.actor_id, denial.actor_label or "anonymous")
    event = NewEvent(
        f"denied.{denial.action}",
        denial.entity_type,
        str(denial.entity_id),
        {"reason": denial.message, **denial.details},
    )
    return _append(session, denial.org_id, who, event)


def verify(session: Session) -> tuple[int, Break | None]:
    """Every chain from its start, saving nothing: (events checked, the first break found or
    None). Reports and checkpoints: engine/audit/verify.py, which finds every break of every
    chain."""
    from engine.audit import verify as verification  # it builds on this module

    report = verification.verify(session)
    breaks = report.breaks
    return report.checked, breaks[0] if breaks else None
