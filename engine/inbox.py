"""The inbox: my tasks and the unclaimed tasks of my lanes, overdue first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.orm import Session

from engine.accounts.actor import Actor
from engine.accounts.models import User
from engine.db import utcnow
from engine.establishments.models import Establishment
from engine.runtime.models import READY, ProcessInstance, Task


@dataclass(frozen=True)
class InboxFilters:
    establishment: str = ""  # CNES
    process: str = ""
    lane: str = ""
    overdue: bool = False
    scope: str = ""  # "" (mine + available), "mine", "available"


@dataclass
class InboxRow:
    task: Task
    instance: ProcessInstance
    establishment: Establishment | None
    assignee: str | None
    overdue: bool


@dataclass
class InboxCounts:
    mine: int = 0
    available: int = 0
    overdue: int = 0

    @property
    def total(self) -> int:
        return self.mine + self.available


def _lane_clause(actor: Actor, org_id: int):  # type: ignore[no-untyped-def]
    """Tasks of a lane the actor holds, for the establishments the role reaches."""
    clauses = []
    for grant in actor.grants:
        if grant.org_id != org_id:
            continue
        clause = and_(Task.org_id == org_id, Task.role == grant.role)
        if grant.establishment_ids is not None:
            if not grant.establishment_ids:
                continue
            clause = and_(clause, Task.establishment_id.in_(grant.establishment_ids))
        clauses.append(clause)
    return or_(*clauses) if clauses else false()


def _base(actor: Actor, org_id: int):  # type: ignore[no-untyped-def]
    mine = Task.assignee_id == actor.user_id if actor.user_id is not None else false()
    available = and_(Task.assignee_id.is_(None), _lane_clause(actor, org_id))
    return mine, available


def inbox(session: Session, actor: Actor, org_id: int, filters: InboxFilters = InboxFilters(),
          *, limit: int = 500) -> list[InboxRow]:  # fmt: skip
    now = utcnow()
    mine, available = _base(actor, org_id)
    scope = {"mine": mine, "available": available}.get(filters.scope, or_(mine, available))
    stmt = (
        select(Task, ProcessInstance, Establishment, User.email)
        .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
        .outerjoin(Establishment, Establishment.id == Task.establishment_id)
        .outerjoin(User, User.id == Task.assignee_id)
        .where(Task.org_id == org_id, Task.state == READY, scope)
    )
    if filters.establishment:
        stmt = stmt.where(Establishment.cnes == filters.establishment)
    if filters.process:
        stmt = stmt.where(ProcessInstance.process_key == filters.process)
    if filters.lane:
        stmt = stmt.where(Task.lane == filters.lane)
    if filters.overdue:
        stmt = stmt.where(Task.due_at < now)
    overdue_first = case((Task.due_at < now, 0), else_=1)
    stmt = stmt.order_by(overdue_first, Task.due_at, Task.created_at, Task.id).limit(limit)
    rows = []
    for task, instance, est, email in session.execute(stmt):
        rows.append(InboxRow(task, instance, est, email, bool(task.due_at and task.due_at < now)))
    return rows


def counts(session: Session, actor: Actor, org_id: int) -> InboxCounts:
    now = utcnow()
    mine, available = _base(actor, org_id)
    row = session.execute(
        select(
            func.count().filter(mine),
            func.count().filter(available),
            func.count().filter(or_(mine, available), Task.due_at < now),
        ).where(Task.org_id == org_id, Task.state == READY)
    ).one()
    return InboxCounts(mine=row[0] or 0, available=row[1] or 0, overdue=row[2] or 0)


def lanes(session: Session, actor: Actor, org_id: int) -> list[str]:
    """Lanes of the tasks the actor can see (for the filter)."""
    return sorted(
        x for x in session.scalars(select(Task.lane).where(Task.org_id == org_id).distinct()) if x
    )


def is_overdue(task: Task, now: datetime | None = None) -> bool:
    return bool(task.state == READY and task.due_at and task.due_at < (now or utcnow()))
