"""Reminders, each sent exactly once under its unique key: the jobs the scheduler runs.

- **Overdue DATASUS analyses** (``analyses``): reminded every SLA period past the due date.
- **Daily digest** (``digest``): every other overdue task, one e-mail per user per local day.
- **Certificates** (``certificates``): reminders before expiry, the expiry announced and audited
  once, the renewal process started once.

Each subject (task, user, certificate) is handled in a transaction of its own that inserts the
reminder rows with ``INSERT … ON CONFLICT DO NOTHING`` (``delivery``) and, only for rows it
inserted, writes the outbox e-mail, the in-app notification and the audit event. A second run
— late, doubled, or in another process at the same moment — finds the keys taken and sends
nothing. Recipients are the current holders of the roles (``recipients``).
"""

from __future__ import annotations

from engine.audit import service as audit
from engine.reminders.analyses import (
    DATASUS_LANE,
    analysis_occurrence,
    business_days_between,
    remind_overdue_analyses,
    sla_business_days,
)
from engine.reminders.certificates import (
    RENEWAL_WINDOW_DAYS,
    certificate_threshold,
    expired_certificate_establishments,
    remind_certificates,
)
from engine.reminders.delivery import INBOX_PATH, RunSummary, send_reminder
from engine.reminders.digest import DIGEST_LOCAL_HOUR, DIGEST_MAX_TASKS, send_daily_digests

__all__ = [
    "DATASUS_LANE",
    "DIGEST_LOCAL_HOUR",
    "DIGEST_MAX_TASKS",
    "INBOX_PATH",
    "RENEWAL_WINDOW_DAYS",
    "RunSummary",
    "analysis_occurrence",
    "audit",
    "business_days_between",
    "certificate_threshold",
    "expired_certificate_establishments",
    "remind_certificates",
    "remind_overdue_analyses",
    "send_daily_digests",
    "send_reminder",
    "sla_business_days",
]
