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
    return list(
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
