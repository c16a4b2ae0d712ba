"""Read models of process instances for the pages and the CLI."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.establishments.models import Establishment
from engine.runtime.models import RUNNING, ProcessInstance


def instance_counts(
    session: Session, actor: Actor, org_id: int | None, *, process_key: str = "",
    running_only: bool = False,
) -> dict[int, int]:  # fmt: skip
    """How many instances each process version has: in one organization (administrators), or
    in the whole installation (``org_id`` None, the system actor only)."""
    if org_id is None:
        if not actor.is_system:
            raise actor.deny("Apenas o sistema conta todas as organizações.",
                             action="process.list", org_id=None)  # fmt: skip
    else:
        actor.require_role(org_id, "admin", "process.list")
    stmt = select(ProcessInstance.definition_id, func.count(ProcessInstance.id))
    if org_id is not None:
        stmt = stmt.where(ProcessInstance.org_id == org_id)
    if process_key:
        stmt = stmt.where(ProcessInstance.process_key == process_key)
    if running_only:
        stmt = stmt.where(ProcessInstance.status == RUNNING)
    return dict(session.execute(stmt.group_by(ProcessInstance.definition_id)).all())


def running_instance_ids(
    session: Session, actor: Actor, org_id: int, definition_id: int, *, limit: int
) -> list[int]:
    """The first running instances of one process version in the organization (administrators)."""
    actor.require_role(org_id, "admin", "process.compare")
    return list(
        session.scalars(
            select(ProcessInstance.id)
            .where(ProcessInstance.org_id == org_id, ProcessInstance.definition_id == definition_id)
            .where(ProcessInstance.status == RUNNING)
            .order_by(ProcessInstance.id)
            .limit(limit)
        )
    )


def establishment_instances(
    session: Session, actor: Actor, org_id: int, est: Establishment
) -> list[ProcessInstance]:
    """An establishment's processes, newest first."""
    actor.require_establishment(org_id, est)
    return list(
        session.scalars(
            select(ProcessInstance)
            .where(ProcessInstance.establishment_id == est.id)
            .order_by(ProcessInstance.id.desc())
        )
    )
