"""Read models of the audit log for the pages."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit.models import AuditEvent
from engine.establishments.models import Establishment


def establishment_events(
    session: Session, actor: Actor, org_id: int, est: Establishment, instance_ids: Iterable[int],
    *, limit: int = 50,
) -> list[AuditEvent]:  # fmt: skip
    """The latest events about an establishment and its processes, newest first."""
    actor.require_establishment(org_id, est)
    rows = list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.org_id == org_id,
                or_(
                    (AuditEvent.entity_type == "establishment")
                    & (AuditEvent.entity_id == str(est.id)),
                    (AuditEvent.entity_type == "instance")
                    & AuditEvent.entity_id.in_([str(i) for i in instance_ids]),
                ),
            )
            .order_by(AuditEvent.seq.desc())
            .limit(limit)
        )
    )
    return shown(session, rows)


def shown(session: Session, events: list[AuditEvent]) -> list[AuditEvent]:
    """The events as people read them: each personal value opened from the vault, or
    "dado pessoal removido" where it was erased (engine/audit/vault.py). The events are
    detached first, so the opened values can never be written back into the chain."""
    from engine.audit import vault

    if not events:
        return events
    datas = vault.reveal_all(session, [ev.data for ev in events])
    for ev, data in zip(events, datas, strict=True):
        if data is not ev.data:
            session.expunge(ev)
            ev.data = data
    return events
