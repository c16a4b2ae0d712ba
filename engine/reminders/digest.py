"""Daily digest: every overdue task outside the DATASUS lane goes into one e-mail per user per
local day (occurrence = the date), sent from ``DIGEST_LOCAL_HOUR`` on business days."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from engine import sla
from engine.accounts.models import SCOPED_ROLES, User
from engine.db import Database, utcnow
from engine.reminders.analyses import DATASUS_LANE
from engine.reminders.delivery import INBOX_PATH, RunSummary, send_reminder, task_path
from engine.reminders.models import OVERDUE_DIGEST, Reminder
from engine.reminders.recipients import est_context, establishments_by_id, role_holders
from engine.runtime.models import READY, Task

log = logging.getLogger(__name__)

DIGEST_LOCAL_HOUR = 7  # digests go out from 07:00 local time, on business days
DIGEST_MAX_TASKS = 100  # listed in one digest; the rest are counted and linked


def send_daily_digests(
    db: Database, settings: Any, *, now: datetime | None = None, hour: int = DIGEST_LOCAL_HOUR
) -> RunSummary:
    now = now or utcnow()
    summary = RunSummary()
    local = now.astimezone(ZoneInfo(settings.timezone))
    if local.hour < hour or not sla.is_business_day(local.date()):
        return summary
    occurrence = local.date().isoformat()
    with db.read() as session:
        tasks = session.execute(
            select(
                Task.id,
                Task.org_id,
                Task.establishment_id,
                Task.name,
                Task.role,
                Task.assignee_id,
                Task.due_at,
            )
            .where(
                Task.state == READY,
                Task.due_at < now,
                or_(Task.lane.is_(None), Task.lane != DATASUS_LANE),
            )
            .order_by(Task.due_at, Task.id)
        ).all()
        if not tasks:
            return summary
        roles = sorted({t.role for t in tasks if t.role})
        holders = role_holders(
            session,
            [t.org_id for t in tasks],
            [t.establishment_id for t in tasks if t.establishment_id],
            roles,
        )
        ests = establishments_by_id(session, [t.establishment_id for t in tasks])
        taken = {
            r
            for (r,) in session.execute(
                select(Reminder.recipient).where(
                    Reminder.kind == OVERDUE_DIGEST,
                    Reminder.subject == "tasks",
                    Reminder.occurrence == occurrence,
                )
            ).all()
        }
    by_user: dict[int, list[Any]] = defaultdict(list)
    users: dict[int, User] = {}
    for task in tasks:
        scope = task.establishment_id if task.role in SCOPED_ROLES else None
        lane = holders.get((task.org_id, task.role, scope), []) if task.role else []
        # An assignee only while they still hold the lane's role here (a revoked member's
        # claims are released, but no claim may keep mailing someone who left).
        owners = [u for u in lane if u.id == task.assignee_id] if task.assignee_id else lane
        for user in owners:
            users[user.id] = user
            by_user[user.id].append(task)
    summary.subjects = len(by_user)
    for user_id, user_tasks in by_user.items():
        if f"user:{user_id}" in taken:
            continue
        listed = [
            {
                "name": t.name,
                "due_at": t.due_at,
                "link": settings.base_url.rstrip("/") + task_path(t.id),
                **est_context(ests.get(t.establishment_id)),
            }
            for t in user_tasks[:DIGEST_MAX_TASKS]
        ]
        orgs = {t.org_id for t in user_tasks}
        context = {
            "tasks": listed,
            "total": len(user_tasks),
            "inbox_link": settings.base_url.rstrip("/") + INBOX_PATH,
        }
        try:
            with db.write() as session:
                sent = send_reminder(
                    session,
                    settings,
                    kind=OVERDUE_DIGEST,
                    subject="tasks",
                    occurrence=occurrence,
                    user=users[user_id],
                    org_id=orgs.pop() if len(orgs) == 1 else None,
                    context=context,
                    link_path=INBOX_PATH,
                    data={"tasks": [t.id for t in user_tasks]},
                )
            summary.sent += sent
        except Exception:
            summary.failed += 1
            log.exception("could not send the digest of user %s", user_id)
    return summary
