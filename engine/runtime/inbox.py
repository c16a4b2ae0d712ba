"""The inbox: my tasks and the unclaimed tasks of my lanes, overdue first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, false, func, or_, select, text
from sqlalchemy.orm import Session, defer

from engine.access.actor import Actor
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


def _lane_clause(actor: Actor, org_id: int):
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


def _base(actor: Actor, org_id: int):
    mine = Task.assignee_id == actor.user_id if actor.user_id is not None else false()
    available = and_(Task.assignee_id.is_(None), _lane_clause(actor, org_id))
    return mine, available


def _ordered(stmt):
    # Overdue first, then by due date: the same order as (due_at < now, due_at) since both
    # sort ascending by due_at, with the tasks without a due date last. Written this way an
    # index on due_at can serve it.
    return stmt.order_by(Task.due_at.asc().nulls_last(), Task.created_at, Task.id)


def inbox(session: Session, actor: Actor, org_id: int, filters: InboxFilters = InboxFilters(),
          *, limit: int = 500) -> list[InboxRow]:  # fmt: skip
    now = utcnow()
    mine, available = _base(actor, org_id)
    # "Mine" and "available" are read as two queries, each limited, then merged: one OR
    # across assignee and lane would keep the planner from either index and sort every
    # ready task of the organization.
    parts = {"mine": [mine], "available": [available]}.get(filters.scope, [mine, available])
    picked: list[tuple[Task, ProcessInstance, Establishment | None, str | None]] = []
    for part in parts:
        stmt = (
            select(Task, ProcessInstance, Establishment, User.email)
            .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
            .outerjoin(Establishment, Establishment.id == Task.establishment_id)
            .outerjoin(User, User.id == Task.assignee_id)
            .where(Task.org_id == org_id, Task.state == READY, part)
            .options(defer(ProcessInstance.state))  # the workflow state is not shown here
        )
        if filters.establishment:
            stmt = stmt.where(Establishment.cnes == filters.establishment)
        if filters.process:
            stmt = stmt.where(ProcessInstance.process_key == filters.process)
        if filters.lane:
            stmt = stmt.where(Task.lane == filters.lane)
        if filters.overdue:
            stmt = stmt.where(Task.due_at < now)
        picked.extend(tuple(r) for r in session.execute(_ordered(stmt).limit(limit)))
    if len(parts) > 1:  # a task is mine or unassigned, never both: no duplicates to remove
        far = datetime.max.replace(tzinfo=now.tzinfo)
        picked.sort(
            key=lambda r: (r[0].due_at is None, r[0].due_at or far, r[0].created_at, r[0].id)
        )
        picked = picked[:limit]
    return [
        InboxRow(task, instance, est, email, bool(task.due_at and task.due_at < now))
        for task, instance, est, email in picked
    ]


def counts(session: Session, actor: Actor, org_id: int) -> InboxCounts:
    now = utcnow()
    mine, available = _base(actor, org_id)
    # One aggregate per part (each on its own index) rather than FILTERs over every ready
    # task of the organization; the parts are disjoint (assigned to me / unassigned).
    out = []
    for part in (mine, available):
        out.append(
            session.execute(
                select(func.count(), func.count().filter(Task.due_at < now)).where(
                    Task.org_id == org_id, Task.state == READY, part
                )
            ).one()
        )
    return InboxCounts(
        mine=out[0][0] or 0, available=out[1][0] or 0, overdue=(out[0][1] or 0) + (out[1][1] or 0)
    )


def lanes(session: Session, actor: Actor, org_id: int) -> list[str]:
    """Lanes of the tasks the actor can see (for the filter)."""
    # A loose index scan (one index probe per distinct lane) on ix_task_org_lane instead of
    # DISTINCT over every task row the organization ever had.
    found = session.scalars(
        text(
            "WITH RECURSIVE l(lane) AS ("
            " SELECT min(lane) FROM task WHERE org_id = :org"
            " UNION ALL"
            " SELECT (SELECT min(t.lane) FROM task t WHERE t.org_id = :org AND t.lane > l.lane)"
            " FROM l WHERE l.lane IS NOT NULL"
            ") SELECT lane FROM l WHERE lane IS NOT NULL"
        ),
        {"org": org_id},
    )
    return sorted(x for x in found if x)


def is_overdue(task: Task, now: datetime | None = None) -> bool:
    return bool(task.state == READY and task.due_at and task.due_at < (now or utcnow()))
