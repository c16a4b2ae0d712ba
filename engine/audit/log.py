"""Reading the audit log: filters, details and exports for auditors (admins read it too)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.audit import verify as verification
from engine.audit.models import AuditChain, AuditEvent
from engine.audit.queries import shown
from engine.db import Database
from engine.errors import NotFound
from engine.establishments.models import Establishment
from engine.exports.csvsafe import spreadsheet_lines
from engine.runtime.models import ProcessInstance

READ_ROLES = ("auditor", "admin")
BATCH = 1000
# Verifying takes about 0.1 ms per event: a look at the page verifies what is new when it is
# little; the button verifies up to VERIFY_LIMIT, well within a web worker's timeout (the
# rest: click again, or `credencia audit verify`).
AUTO_VERIFY = 2_000
VERIFY_LIMIT = 100_000


@dataclass(frozen=True)
class Filters:
    establishment: str = ""  # CNES
    user: str = ""  # part of the actor's e-mail
    action: str = ""  # an action or its prefix ("task.")
    since: date | None = None
    until: date | None = None  # inclusive
    instance: int | None = None


@dataclass
class ChainStatus:
    """The organization's chain as its last verification left it."""

    total: int  # events in the chain
    verified: int = 0  # events from the start found intact
    reached: int = 0  # the last event the last verification walked
    status: str = "never"  # ok | broken | partial | never
    verified_at: datetime | None = None
    verified_by: str = ""
    full: bool = False
    broken: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        """Events not looked at yet (appended since, or left by a run with a limit)."""
        return max(0, self.total - self.reached)


def can_read(actor: Actor, org_id: int) -> bool:
    return any(actor.has_role(org_id, role) for role in READ_ROLES)


def _require(actor: Actor, org_id: int) -> None:
    if not can_read(actor, org_id):
        raise actor.deny(
            "A auditoria é para auditores e administradores.", action="audit.read", org_id=org_id
        )


def _local_midnight(day: date) -> datetime:
    tz = ZoneInfo(settings_mod.load().timezone)
    return datetime.combine(day, time.min, tzinfo=tz)


def _query(session: Session, org_id: int, filters: Filters):
    stmt = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if filters.establishment:
        est_id = session.scalar(
            select(Establishment.id).where(
                Establishment.org_id == org_id, Establishment.cnes == filters.establishment
            )
        )
        if est_id is None:
            return stmt.where(False)
        instance_ids = select(cast(ProcessInstance.id, String)).where(
            ProcessInstance.establishment_id == est_id
        )
        stmt = stmt.where(
            or_(
                and_(
                    AuditEvent.entity_type == "establishment", AuditEvent.entity_id == str(est_id)
                ),
                and_(AuditEvent.entity_type == "instance", AuditEvent.entity_id.in_(instance_ids)),
            )
        )
    if filters.instance is not None:
        stmt = stmt.where(
            AuditEvent.entity_type == "instance", AuditEvent.entity_id == str(filters.instance)
        )
    if filters.user:
        stmt = stmt.where(
            func.lower(AuditEvent.actor).contains(filters.user.strip().lower(), autoescape=True)
        )
    if filters.action:
        action = filters.action.strip()
        if action.endswith("."):
            stmt = stmt.where(AuditEvent.action.startswith(action, autoescape=True))
        else:
            stmt = stmt.where(AuditEvent.action == action)
    if filters.since:
        stmt = stmt.where(AuditEvent.at >= _local_midnight(filters.since))
    if filters.until:
        stmt = stmt.where(AuditEvent.at < _local_midnight(filters.until + timedelta(days=1)))
    return stmt


def search(session: Session, actor: Actor, org_id: int, filters: Filters = Filters(), *,
           limit: int = 50, offset: int = 0) -> tuple[list[AuditEvent], int]:  # fmt: skip
    _require(actor, org_id)
    stmt = _query(session, org_id, filters)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(AuditEvent.seq.desc()).limit(limit).offset(offset))
    return shown(session, list(rows)), total


def get_event(session: Session, actor: Actor, org_id: int, event_id: int) -> AuditEvent:
    _require(actor, org_id)
    event = session.get(AuditEvent, event_id)
    if event is None or event.org_id != org_id:
        raise NotFound("Evento não encontrado.")
    return shown(session, [event])[0]


def actions(session: Session, actor: Actor, org_id: int) -> list[str]:
    _require(actor, org_id)
    return sorted(
        session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == org_id).distinct())
    )


def chain_status(session: Session, actor: Actor, org_id: int) -> ChainStatus:
    """The last verification of the organization's chain (verifies nothing itself)."""
    _require(actor, org_id)
    key = audit.chain_key(org_id)
    head = session.get(AuditChain, key)
    total = head.last_seq if head else 0
    cp = verification.checkpoint(session, key)
    if cp is None:
        return ChainStatus(total)
    return ChainStatus(
        total, verified=cp.seq, reached=cp.reached_seq, status=cp.status,
        verified_at=cp.verified_at, verified_by=cp.verified_by, full=cp.full,
        broken=cp.broken, problems=list(cp.problems or []),
    )  # fmt: skip


def verify_chain(
    db: Database, actor: Actor, org_id: int, *, limit: int | None = VERIFY_LIMIT
) -> ChainStatus:
    """Verify the organization's chain from its checkpoint (at most ``limit`` events)."""
    with db.read():  # a refusal is audited there, like any other
        _require(actor, org_id)
    verification.run(db, by=actor.label, org_ids=[org_id], limit=limit)
    with db.read() as session:
        return chain_status(session, actor, org_id)


def current_status(db: Database, actor: Actor, org_id: int) -> ChainStatus:
    """The chain's status, first verifying what was appended since the last verification
    when that is little (``AUTO_VERIFY`` events): a look at the page stays cheap."""
    with db.read() as session:
        status = chain_status(session, actor, org_id)
    if 0 < status.pending <= AUTO_VERIFY:
        return verify_chain(db, actor, org_id, limit=AUTO_VERIFY)
    return status


def _iter(session: Session, org_id: int, filters: Filters) -> Iterator[AuditEvent]:
    stmt = _query(session, org_id, filters).order_by(AuditEvent.seq)
    last = 0
    while True:
        batch = list(session.scalars(stmt.where(AuditEvent.seq > last).limit(BATCH)))
        if not batch:
            return
        yield from shown(session, batch)
        last = batch[-1].seq


def event_dict(ev: AuditEvent) -> dict:
    return {
        "id": ev.id, "chain": ev.chain, "seq": ev.seq, "at": ev.at.isoformat(), "actor": ev.actor,
        "action": ev.action, "entity_type": ev.entity_type, "entity_id": ev.entity_id,
        "data": ev.data, "prev_hash": ev.prev_hash, "hash": ev.hash,
    }  # fmt: skip


def export_csv(
    session: Session, actor: Actor, org_id: int, filters: Filters = Filters()
) -> Iterator[str]:
    _require(actor, org_id)
    header = ["id", "cadeia", "seq", "quando_utc", "quem", "acao", "entidade", "entidade_id",
              "dados", "hash_anterior", "hash"]  # fmt: skip
    rows = (_csv_row(ev) for ev in _iter(session, org_id, filters))
    yield from spreadsheet_lines(header, rows)


def _csv_row(ev: AuditEvent) -> list[Any]:
    return [ev.id, ev.chain, ev.seq, ev.at.isoformat(), ev.actor, ev.action, ev.entity_type,
            ev.entity_id, json.dumps(ev.data, ensure_ascii=False, sort_keys=True), ev.prev_hash,
            ev.hash]  # fmt: skip


def export_json(
    session: Session, actor: Actor, org_id: int, filters: Filters = Filters()
) -> Iterator[str]:
    """A JSON array, streamed one event at a time."""
    _require(actor, org_id)
    yield "["
    first = True
    for ev in _iter(session, org_id, filters):
        yield ("" if first else ",") + "\n" + json.dumps(event_dict(ev), ensure_ascii=False)
        first = False
    yield "\n]\n"
