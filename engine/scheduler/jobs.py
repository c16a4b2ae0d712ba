"""The scheduler's jobs, and the record of each job's last run.

Every job is safe to run in several processes at once and to run late or twice: timers are
claimed with row locks, reminders with unique keys, outbox messages with leases. The runner
only decides *when*; correctness never depends on it running alone.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from engine.analytics import refresh as analytics
from engine.db import Database, utcnow
from engine.files import service as files
from engine.notifications import delivery
from engine.reminders import service as reminders
from engine.runtime import timers
from engine.scheduler.models import ERROR, OK, RUNNING, SchedulerJob

log = logging.getLogger(__name__)


def timers_job(db: Database, settings: Any, owner: str = "") -> dict[str, Any]:
    return timers.fire_due_timers(db).as_dict()


def reminders_job(db: Database, settings: Any, owner: str = "") -> dict[str, Any]:
    analyses = reminders.remind_overdue_analyses(db, settings)
    digests = reminders.send_daily_digests(db, settings)
    return {"analyses": analyses.as_dict(), "digests": digests.as_dict()}


def certificates_job(db: Database, settings: Any, owner: str = "") -> dict[str, Any]:
    result = reminders.remind_certificates(db, settings)
    return result if isinstance(result, dict) else result.as_dict()


def uploads_job(db: Database, settings: Any, owner: str = "") -> dict[str, Any]:
    with db.write() as session:
        return files.expire_unattached(session, ttl_hours=settings.upload_ttl_hours).as_dict()


def analytics_job(db: Database, settings: Any, owner: str = "") -> dict[str, Any]:
    return analytics.refresh(db, settings).as_dict()


def access_log_job(db: Database, settings: Any, owner: str = "") -> dict[str, Any]:
    from engine.lgpd import access

    with db.write() as session:
        return {"sealed": access.seal(session)}


def lgpd_job(db: Database, settings: Any, owner: str = "") -> dict[str, Any]:
    from engine.lgpd import retention

    with db.write() as session:
        return retention.apply(session, settings)


# One outbox run keeps taking batches while they go out whole, for up to this long (less
# than the job's interval): after an SMTP outage the backlog drains at the server's pace
# instead of one batch per interval.
OUTBOX_RUN_SECONDS = 10.0


def outbox_job(
    db: Database, settings: Any, owner: str = "", *, budget: float = OUTBOX_RUN_SECONDS
) -> dict[str, Any]:
    # The lease owner: this scheduler process plus a random part per run.
    run_owner = f"{owner}/{uuid.uuid4().hex[:6]}" if owner else delivery.worker_id("outbox")
    policy = delivery.DeliveryPolicy.from_settings(settings)
    deadline = time.monotonic() + budget
    total = delivery.DeliveryResult()
    batches = 0
    while True:
        result = delivery.deliver_due(db, settings, owner=run_owner, policy=policy)
        batches += 1
        for name in ("claimed", "sent", "retried", "failed", "released", "lost_lease"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
        total.errors.extend(result.errors)
        # Stop on a short batch (nothing more due), on any trouble (the server is down or
        # refusing: back-off applies) and when the run's time is up.
        if (
            result.claimed < policy.batch
            or result.sent < result.claimed
            or time.monotonic() >= deadline
        ):
            return {**total.as_dict(), "batches": batches}


@dataclass(frozen=True)
class Job:
    name: str
    seconds: int  # how often the runner starts it
    func: Callable[[Database, Any, str], dict[str, Any]]
    description: str


JOBS: tuple[Job, ...] = (
    Job("timers", 30, timers_job, "BPMN timers due (next_timer_due_at)"),
    Job("reminders", 300, reminders_job, "overdue DATASUS analyses and daily digests"),
    Job("certificates", 3600, certificates_job, "certificate expiry reminders and renewal hook"),
    Job("outbox", 15, outbox_job, "e-mail delivery over SMTP"),
    Job("uploads", 3600, uploads_job, "unattached uploads past CREDENCIA_UPLOAD_TTL_HOURS"),
    Job("analytics", 300, analytics_job, "analytics buckets from task rows past the watermarks"),
    Job("access_log", 60, access_log_job, "chains the access log's new entries (LGPD)"),
    Job("lgpd", 3600, lgpd_job, "LGPD retention of personal data (CREDENCIA_LGPD_RETENTION_*)"),
)
JOBS_BY_NAME = {job.name: job for job in JOBS}


def _upsert(
    db: Database, name: str, values: dict[str, Any], *, increment: dict[str, int] | None = None
) -> None:
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    with db.write() as session:
        stmt = insert(SchedulerJob).values(name=name, runs=0, failures=0, **values)
        updates: dict[str, Any] = dict(values)
        for column, step in (increment or {}).items():
            updates[column] = getattr(SchedulerJob, column) + step
        session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=updates))


def run_job(db: Database, settings: Any, job: Job, *, owner: str = "") -> dict[str, Any]:
    """Run one job now and record its start, result and duration for ``scheduler status``."""
    started = utcnow()
    try:
        _upsert(
            db, job.name, {"last_owner": owner, "last_started_at": started, "last_result": RUNNING}
        )
    except Exception:  # the status row is a convenience: never let it stop the job
        log.exception("could not record the start of job %s", job.name)
    clock = time.perf_counter()
    summary: dict[str, Any] = {}
    error = ""
    try:
        summary = job.func(db, settings, owner)
    except Exception as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.exception("scheduler job %s failed", job.name)
    duration_ms = int((time.perf_counter() - clock) * 1000)
    finished = utcnow()
    values: dict[str, Any] = {
        "last_owner": owner,
        "last_finished_at": finished,
        "last_duration_ms": duration_ms,
        "last_result": ERROR if error else OK,
        "last_error": error[:4000],
        "last_summary": summary,
    }
    if not error:
        values["last_ok_at"] = finished
    try:
        _upsert(db, job.name, values, increment={"runs": 1, "failures": 1 if error else 0})
    except Exception:
        log.exception("could not record the end of job %s", job.name)
    if error:
        return {"error": error}
    return summary
