"""The append-only, hash-chained audit log.

Each organization has its own chain (events without an organization go to ``system``), so
writers of different organizations never wait for each other. Appending locks the chain's
head row for the rest of the transaction: the event commits or rolls back with the change it
describes, and concurrent appends line up one after another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.audit.models import AuditChain, AuditEvent
from engine.db import utcnow

if TYPE_CHECKING:
    from engine.access.actor import Actor
    from engine.errors import Forbidden

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"


def chain_key(org_id: int | None) -> str:
    return f"org:{org_id}" if org_id is not None else SYSTEM_CHAIN


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
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    body = json.dumps(
        {
            "chain": chain,
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "org_id": org_id,
            "actor_id": actor_id,
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "data": data,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
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
        # Round-trip through JSON so the hash covers exactly what the database keeps.
        "data": json.loads(json.dumps(data, default=str)),
        "prev_hash": head.last_hash,
    }
    event = AuditEvent(**fields, hash=event_hash(**fields))
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


@dataclass
class Break:
    chain: str
    seq: int | None
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"evento {self.event_id} (seq {self.seq})" if self.event_id else f"seq {self.seq}"
        return f"cadeia {self.chain}: {where}: {self.problem}"


def _events(session: Session, chain: str) -> Iterator[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.chain == chain)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=2000)
    )
    yield from session.scalars(stmt)


def verify(session: Session) -> tuple[int, Break | None]:
    """Check every chain; return (events checked, first break or None).

    Detects an edited event (its hash no longer matches), a deleted or reordered one (the
    sequence or the link to the previous hash breaks) and a removed tail (the head no longer
    matches the last event).
    """
    checked = 0
    heads = {h.key: h for h in session.scalars(select(AuditChain).order_by(AuditChain.key))}
    chains = set(heads) | set(session.scalars(select(AuditEvent.chain).distinct()))
    for chain in sorted(chains):
        prev_hash, expected_seq = GENESIS, 1
        last: AuditEvent | None = None
        for ev in _events(session, chain):
            checked += 1
            if ev.seq != expected_seq:
                return checked, Break(
                    chain,
                    expected_seq,
                    ev.id,
                    f"esperado seq {expected_seq}, encontrado {ev.seq} (evento removido ou fora de ordem)",
                )
            if ev.prev_hash != prev_hash:
                return checked, Break(
                    chain,
                    ev.seq,
                    ev.id,
                    "hash anterior não confere (evento removido, inserido ou reordenado)",
                )
            recomputed = event_hash(
                chain=ev.chain,
                seq=ev.seq,
                at=ev.at,
                org_id=ev.org_id,
                actor_id=ev.actor_id,
                actor=ev.actor,
                action=ev.action,
                entity_type=ev.entity_type,
                entity_id=ev.entity_id,
                data=ev.data,
                prev_hash=ev.prev_hash,
            )
            if recomputed != ev.hash:
                return checked, Break(chain, ev.seq, ev.id, "conteúdo alterado (hash não confere)")
            prev_hash, expected_seq, last = ev.hash, expected_seq + 1, ev
        head = heads.get(chain)
        if head is None:
            return checked, Break(chain, None, None, "cabeça da cadeia ausente")
        if head.last_seq != (last.seq if last else 0) or head.last_hash != prev_hash:
            return checked, Break(
                chain,
                head.last_seq,
                None,
                "últimos eventos removidos (cabeça da cadeia não confere)",
            )
    return checked, None
