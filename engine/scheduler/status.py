"""What ``credencia scheduler status`` (and the admin page) shows: each job's last run and
result, the due backlog, and the messages that failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db import utcnow
from engine.notifications.models import FAILED, OutboxMessage
from engine.notifications.service import OutboxCounts, outbox_counts
from engine.reminders.service import DATASUS_LANE
from engine.runtime import timers
from engine.runtime.models import READY, Task
from engine.scheduler.jobs import JOBS
from engine.scheduler.models import SchedulerJob

# A job that has not started for this many of its periods (and the grace below) is stalled:
# the scheduler process is probably not running.
STALLED_PERIODS = 3
STALLED_GRACE = timedelta(minutes=2)


@dataclass
class JobLine:
    name: str
    every_seconds: int
    description: str
    row: SchedulerJob | None
    stalled: bool = False


def is_stalled(every_seconds: int, last_started_at: datetime | None, now: datetime) -> bool:
    """No start for ``STALLED_PERIODS`` periods plus ``STALLED_GRACE`` (or never)."""
    late_after = timedelta(seconds=STALLED_PERIODS * every_seconds) + STALLED_GRACE
    return last_started_at is None or now - last_started_at > late_after


def heartbeat(session: Session) -> datetime | None:
    """When any scheduler process last started a job (the /readyz heartbeat), or None."""
    return session.scalar(select(func.max(SchedulerJob.last_started_at)))


@dataclass
class Status:
    now: datetime
    jobs: list[JobLine]
    timers_due: int
    overdue_analyses: int
    overdue_tasks: int
    outbox: OutboxCounts
    failed_messages: list[OutboxMessage] = field(default_factory=list)

    @property
    def stalled(self) -> list[JobLine]:
        return [j for j in self.jobs if j.stalled]

    @property
    def healthy(self) -> bool:
        return self.outbox.failed == 0 and all(
            j.row is None or j.row.last_result != "error" for j in self.jobs
        )


def collect(session: Session, *, failed_limit: int = 20) -> Status:
    now = utcnow()
    rows = {row.name: row for row in session.scalars(select(SchedulerJob))}
    overdue = dict(
        session.execute(
            select(Task.lane, func.count())
            .where(Task.state == READY, Task.due_at < now)
            .group_by(Task.lane)
        ).all()
    )
    failed = list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == FAILED)
            .order_by(OutboxMessage.id.desc())
            .limit(failed_limit)
        )
    )
    return Status(
        now=now,
        jobs=[
            JobLine(
                j.name,
                j.seconds,
                j.description,
                row,
                is_stalled(j.seconds, row.last_started_at if row else None, now),
            )
            for j in JOBS
            for row in [rows.get(j.name)]
        ],
        timers_due=timers.due_count(session, now),
        overdue_analyses=overdue.get(DATASUS_LANE, 0),
        overdue_tasks=sum(v for lane, v in overdue.items() if lane != DATASUS_LANE),
        outbox=outbox_counts(session),
        failed_messages=failed,
    )
