"""The access log: who read whose personal data, when and from where (LGPD; Marco Civil
art. 15 asks for 6 months), kept apart from the change audit and tamper-evident itself.

A read costs one INSERT (``record``), never a lock: entries are chained afterwards by
``seal`` (the scheduler's ``access_log`` job every minute, and before every export or
verification), which gives each organization's unsealed entries, in id order, the next
``seq`` of its chain and a SHA-256 hash over the entry and the previous hash. An entry
changed or removed after sealing breaks the chain; retention removes the oldest entries and
moves the chain's anchor (``access_chain.anchor_*``) to the first one kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from engine import db
from engine.access.actor import Actor
from engine.db import utcnow
from engine.exports.csvsafe import spreadsheet_lines
from engine.lgpd.models import AccessChain, AccessEntry

GENESIS = "0" * 64
READ_ROLES = ("auditor", "admin")  # the organization's encarregado reads it as one of these
BATCH = 5000


def chain_key(org_id: int | None) -> str:
    return f"org:{org_id}" if org_id is not None else "system"


def record(
    session: Session | Connection, actor: Actor | None, view: str, *, org_id: int | None,
    entity_type: str = "", entity_id: Any = "", detail: str = "", address: str = "",
    channel: str = "web",
) -> None:  # fmt: skip
    """One read of personal data: a single INSERT, chained later by ``seal`` (in a session's
    transaction, or on a plain connection's: ``Database.statements``)."""
    connection = session.connection() if isinstance(session, Session) else session
    db.send(
        connection,
        _INSERT,
        {
            "at": utcnow(),
            "org_id": org_id,
            "user_id": actor.user_id if actor else None,
            "actor": (actor.label if actor else "system")[:254],
            "address": (address or "")[:64],
            "channel": channel[:8],
            "view": view[:60],
            "entity_type": entity_type[:40],
            "entity_id": str(entity_id)[:64],
            "detail": (detail or "")[:300],
        },
    )


# Built once: a read of a page or of the API pays for the INSERT only.
_INSERT = insert(AccessEntry.__table__)


def entry_hash(row: Any, chain: str, seq: int, prev_hash: str) -> str:
    body = json.dumps(
        {"id": row.id, "at": row.at.isoformat(timespec="microseconds"), "org_id": row.org_id,
         "user_id": row.user_id, "actor": row.actor, "address": row.address,
         "channel": row.channel, "view": row.view, "entity_type": row.entity_type,
         "entity_id": row.entity_id, "detail": row.detail, "chain": chain, "seq": seq,
         "prev_hash": prev_hash},  # fmt: skip
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _head(session: Session, key: str) -> AccessChain:
    lock = select(AccessChain).where(AccessChain.key == key).with_for_update()
    head = session.execute(lock).scalar_one_or_none()
    if head is not None:
        return head
    ins = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        ins(AccessChain)
        .values(key=key, last_seq=0, last_hash=GENESIS, anchor_seq=0, anchor_hash=GENESIS)
        .on_conflict_do_nothing()
    )
    return session.execute(lock).scalar_one()


def seal(session: Session, *, limit: int = BATCH) -> int:
    """Chain the entries not chained yet (at most ``limit``), in id order; returns how many."""
    stmt = select(AccessEntry).where(AccessEntry.hash.is_(None)).order_by(AccessEntry.id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt.limit(limit)))
    by_chain: dict[str, list[AccessEntry]] = {}
    for row in rows:
        by_chain.setdefault(chain_key(row.org_id), []).append(row)
    for key in sorted(by_chain):
        head = _head(session, key)
        seq, prev = head.last_seq, head.last_hash
        for row in by_chain[key]:
            seq += 1
            row.chain, row.seq, row.prev_hash = key, seq, prev
            row.hash = prev = entry_hash(row, key, seq, prev)
        head.last_seq, head.last_hash = seq, prev
    session.flush()
    return len(rows)


@dataclass
class ChainCheck:
    chain: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, org_id: int | None = None, *, every: bool = False) -> list[ChainCheck]:
    """Walk the access-log chains (one organization's, or ``every`` one) from their anchors."""
    keys = (
        list(session.scalars(select(AccessChain.key).order_by(AccessChain.key)))
        if every
        else [chain_key(org_id)]
    )
    out = []
    for key in keys:
        check = ChainCheck(key)
        head = session.get(AccessChain, key)
        if head is None:
            out.append(check)
            continue
        prev, expected = head.anchor_hash, head.anchor_seq + 1
        stmt = (
            select(AccessEntry)
            .where(AccessEntry.chain == key, AccessEntry.seq > head.anchor_seq)
            .order_by(AccessEntry.seq)
            .execution_options(yield_per=2000)
        )
        for row in session.scalars(stmt):
            check.checked += 1
            if row.seq != expected:
                check.problems.append(f"{key}: esperado seq {expected}, encontrado {row.seq}")
            elif row.prev_hash != prev:
                check.problems.append(f"{key}: seq {row.seq}: hash anterior não confere")
            elif entry_hash(row, key, row.seq, row.prev_hash) != row.hash:
                check.problems.append(f"{key}: seq {row.seq}: conteúdo alterado")
            prev, expected = row.hash, row.seq + 1
        if expected - 1 != head.last_seq or prev != head.last_hash:
            check.problems.append(f"{key}: últimas entradas removidas ou cabeça alterada")
        out.append(check)
    return out


def prune(session: Session, days: int, *, now: datetime | None = None) -> int:
    """Remove the sealed entries older than ``days`` and re-anchor each chain after them."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    removed = 0
    for key in list(session.scalars(select(AccessChain.key))):
        last_old = session.scalar(
            select(func.max(AccessEntry.seq)).where(
                AccessEntry.chain == key, AccessEntry.at < cutoff
            )
        )
        if not last_old:
            continue
        head = session.execute(
            select(AccessChain).where(AccessChain.key == key).with_for_update()
        ).scalar_one()
        anchor = session.scalar(
            select(AccessEntry.hash).where(AccessEntry.chain == key, AccessEntry.seq == last_old)
        )
        removed += session.execute(
            delete(AccessEntry).where(AccessEntry.chain == key, AccessEntry.seq <= last_old)
        ).rowcount
        head.anchor_seq, head.anchor_hash = last_old, anchor
    session.flush()
    return removed


def next_removal(session: Session, days: int) -> tuple[int, datetime | None]:
    """How many entries are past retention now, and when the oldest kept one will be."""
    cutoff = utcnow() - timedelta(days=days)
    due = session.scalar(select(func.count()).where(AccessEntry.at < cutoff)) or 0
    oldest = session.scalar(select(func.min(AccessEntry.at)).where(AccessEntry.at >= cutoff))
    return due, (oldest + timedelta(days=days)) if oldest else None


# --- the DPO's page and export -------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    user: str = ""
    view: str = ""
    since: date | None = None
    until: date | None = None


def _require(actor: Actor, org_id: int) -> None:
    if not any(actor.has_role(org_id, r) for r in READ_ROLES):
        raise actor.deny(
            "O registro de acessos é para o encarregado (auditores e administradores).",
            action="access_log.read", org_id=org_id,
        )  # fmt: skip


def _query(org_id: int, filters: Filters):
    stmt = select(AccessEntry).where(AccessEntry.org_id == org_id)
    if filters.user:
        stmt = stmt.where(
            func.lower(AccessEntry.actor).contains(filters.user.strip().lower(), autoescape=True)
        )
    if filters.view:
        stmt = stmt.where(AccessEntry.view.startswith(filters.view.strip(), autoescape=True))
    if filters.since:
        stmt = stmt.where(AccessEntry.at >= datetime.combine(filters.since, time.min))
    if filters.until:
        stmt = stmt.where(
            AccessEntry.at < datetime.combine(filters.until + timedelta(days=1), time.min)
        )
    return stmt


def search(session: Session, actor: Actor, org_id: int, filters: Filters = Filters(), *,
           limit: int = 50, offset: int = 0) -> tuple[list[AccessEntry], int]:  # fmt: skip
    _require(actor, org_id)
    stmt = _query(org_id, filters)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(AccessEntry.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def export_csv(
    session: Session, actor: Actor, org_id: int, filters: Filters = Filters()
) -> Iterator[str]:
    _require(actor, org_id)
    header = ["id", "quando_utc", "quem", "endereco", "canal", "tela", "entidade", "entidade_id",
              "detalhe", "cadeia", "seq", "hash_anterior", "hash"]  # fmt: skip

    def rows() -> Iterator[list[Any]]:
        last = 0
        while True:
            batch = list(session.scalars(
                _query(org_id, filters).where(AccessEntry.id > last).order_by(AccessEntry.id)
                .limit(1000)
            ))  # fmt: skip
            if not batch:
                return
            for e in batch:
                yield [e.id, e.at.isoformat(), e.actor, e.address, e.channel, e.view,
                       e.entity_type, e.entity_id, e.detail, e.chain or "", e.seq or "",
                       e.prev_hash or "", e.hash or ""]  # fmt: skip
            last = batch[-1].id

    yield from spreadsheet_lines(header, rows())


def unseal_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(AccessEntry.hash.is_(None))) or 0
