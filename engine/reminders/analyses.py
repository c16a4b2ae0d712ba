"""Overdue DATASUS analyses: a READY task in the DATASUS lane past its ``due_at`` reminds the
establishment's gestores and the organization's DATASUS users, then again every SLA period.

The occurrence is the number of whole SLA periods (in business days) since the due date, so a
scheduler that was down for three periods sends one reminder for the current period, not a
burst of the missed ones. Like the SLA, reminders are sent on business days only.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine import sla
from engine.access.actor import SYSTEM
from engine.audit import service as audit
from engine.db import Database, utcnow
from engine.reminders.delivery import RunSummary, existing_keys, send_to_each, task_path
from engine.reminders.models import ANALYSIS_OVERDUE
from engine.reminders.recipients import (
    est_context,
    establishments_by_id,
    role_holders,
    unique_users,
)
from engine.runtime.models import READY, Task

log = logging.getLogger(__name__)

DATASUS_LANE = "DATASUS"


# ---------------------------------------------------------------- business-day periods


@lru_cache(maxsize=4096)
def business_days_between(start: date, end: date) -> int:
    """Business days strictly after ``start`` and strictly before ``end`` (0 if none)."""
    count, day = 0, start + timedelta(days=1)
    while day < end:
        count += sla.is_business_day(day)
        day += timedelta(days=1)
    return count


def sla_business_days(created_at: datetime, due_at: datetime, tz: str) -> int:
    """The SLA a task was given, recovered from its stored dates (at least 1)."""
    zone = ZoneInfo(tz)
    created, due = created_at.astimezone(zone).date(), due_at.astimezone(zone).date()
    days = business_days_between(created, due) + (
        1 if due > created and sla.is_business_day(due) else 0
    )
    return max(days, 1)


def analysis_occurrence(created_at: datetime, due_at: datetime, now: datetime, tz: str) -> int:
    """Which reminder period ``now`` falls in: 0 from the due date's end, 1 after one more SLA
    period of business days, and so on."""
    zone = ZoneInfo(tz)
    elapsed = business_days_between(due_at.astimezone(zone).date(), now.astimezone(zone).date())
    return elapsed // sla_business_days(created_at, due_at, tz)


# ---------------------------------------------------------------- the run


def remind_overdue_analyses(
    db: Database, settings: Any, *, now: datetime | None = None
) -> RunSummary:
    now = now or utcnow()
    summary = RunSummary()
    # The SLA counts business days; reminders about it wait for one too (no Saturday e-mails).
    if not sla.is_business_day(now.astimezone(ZoneInfo(settings.timezone)).date()):
        return summary
    with db.read() as session:
        tasks = session.execute(
            select(
                Task.id,
                Task.instance_id,
                Task.org_id,
                Task.establishment_id,
                Task.name,
                Task.created_at,
                Task.due_at,
            )
            .where(Task.state == READY, Task.lane == DATASUS_LANE, Task.due_at < now)
            .order_by(Task.due_at, Task.id)
        ).all()
        if not tasks:
            return summary
        summary.subjects = len(tasks)
        occurrence = {
            t.id: analysis_occurrence(t.created_at, t.due_at, now, settings.timezone) for t in tasks
        }
        holders = role_holders(
            session,
            [t.org_id for t in tasks],
            [t.establishment_id for t in tasks if t.establishment_id],
            ("gestor", "datasus"),
        )
        taken = existing_keys(session, ANALYSIS_OVERDUE, [f"task:{t.id}" for t in tasks])
        ests = establishments_by_id(session, [t.establishment_id for t in tasks])
    for task in tasks:
        subject, occ = f"task:{task.id}", str(occurrence[task.id])
        users = unique_users(
            holders.get((task.org_id, "gestor", task.establishment_id), ()),
            holders.get((task.org_id, "datasus", None), ()),
        )
        todo = [u for u in users if (subject, f"user:{u.id}", occ) not in taken]
        if not todo:
            continue
        context = {
            "task_name": task.name,
            "due_at": task.due_at,
            "occurrence": occurrence[task.id],
            **est_context(ests.get(task.establishment_id)),
        }
        try:
            with db.write() as session:
                sent = send_to_each(
                    session,
                    settings,
                    todo,
                    kind=ANALYSIS_OVERDUE,
                    subject=subject,
                    occurrence=occ,
                    org_id=task.org_id,
                    context=context,
                    link_path=task_path(task.id),
                    data={"instance_id": task.instance_id, "due_at": task.due_at.isoformat()},
                )
                if sent:
                    audit.record(
                        session,
                        SYSTEM,
                        "reminder.analysis_overdue",
                        org_id=task.org_id,
                        entity_type="instance",
                        entity_id=task.instance_id,
                        data={
                            "task": task.id,
                            "name": task.name,
                            "occurrence": occurrence[task.id],
                            "due_at": task.due_at.isoformat(),
                            "recipients": sent,
                        },
                    )
            summary.sent += len(sent)
        except Exception:
            summary.failed += 1
            log.exception("could not remind the overdue analysis %s", task.id)
    return summary
