"""Reminders, each sent exactly once under its unique key.

(Over 600 lines on purpose: the three reminder kinds share the unique-key insert, the
recipient queries and the run summary below; split, each would import the others' privates.)

- **Overdue DATASUS analyses.** A READY task in the DATASUS lane past its ``due_at`` reminds the
  establishment's gestores and the organization's DATASUS users, then again every SLA period.
  The occurrence is the number of whole SLA periods (in business days) since the due date, so
  a scheduler that was down for three periods sends one reminder for the current period, not
  a burst of the missed ones. Like the SLA, reminders are sent on business days only.
- **Daily digest.** Every other overdue task goes into one e-mail per user per local day
  (occurrence = the date), sent from ``DIGEST_LOCAL_HOUR`` on business days.
- **Certificates.** At each of ``settings.certificate_reminder_days`` before ``not_after`` the
  establishment's gestores and integradores are reminded (occurrence ``d<threshold>``: after
  downtime only the current threshold is sent); an expired certificate is announced once and
  the expiry is audited once; at ``RENEWAL_WINDOW_DAYS`` the renewal process is started once
  (``engine.credentials.renewal``).

Each subject (task, user, certificate) is handled in a transaction of its own that inserts the
reminder rows with ``INSERT … ON CONFLICT DO NOTHING`` and, only for rows it inserted, writes
the outbox e-mail, the in-app notification and the audit event. A second run — late, doubled,
or in another process at the same moment — finds the keys taken and sends nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine import sla
from engine.access.actor import SYSTEM
from engine.accounts.models import SCOPED_ROLES, Membership, User, membership_establishment
from engine.audit import service as audit
from engine.certificates.models import Certificate
from engine.credentials import renewal
from engine.credentials.models import ENCERRADA, OPEN, Credential
from engine.db import Database, utcnow
from engine.definitions import queries as definition_queries
from engine.establishments.models import Establishment
from engine.notifications import service as notifications
from engine.notifications.render import render
from engine.reminders.models import (
    ANALYSIS_OVERDUE,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_EXPIRY,
    CERTIFICATE_RENEWAL,
    OVERDUE_DIGEST,
    Reminder,
)
from engine.runtime.models import READY, Task

log = logging.getLogger(__name__)

DATASUS_LANE = "DATASUS"
DIGEST_LOCAL_HOUR = 7  # digests go out from 07:00 local time, on business days
DIGEST_MAX_TASKS = 100  # listed in one digest; the rest are counted and linked
RENEWAL_WINDOW_DAYS = 30
_CHUNK = 500


# ---------------------------------------------------------------- links
# Paths of the web pages (web/ui): the task form, the establishment page, the inbox.


def task_path(task_id: str) -> str:
    return f"/tarefas/{task_id}"


def establishment_path(cnes: str) -> str:
    return f"/estabelecimentos/{cnes}"


INBOX_PATH = "/"


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


# ---------------------------------------------------------------- the unique key


def _insert_reminder(
    session: Session,
    *,
    kind: str,
    subject: str,
    recipient: str,
    occurrence: str,
    user_id: int | None,
    org_id: int | None,
    data: dict[str, Any] | None = None,
) -> int | None:
    """Insert the reminder's key; its id if this transaction took it, None if it existed."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(Reminder)
        .values(
            kind=kind,
            subject=subject,
            recipient=recipient,
            occurrence=occurrence,
            user_id=user_id,
            org_id=org_id,
            created_at=utcnow(),
            data=data or {},
        )
        .on_conflict_do_nothing(index_elements=["kind", "subject", "recipient", "occurrence"])
        .returning(Reminder.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def send_reminder(
    session: Session,
    settings: Any,
    *,
    kind: str,
    subject: str,
    occurrence: str,
    user: User,
    org_id: int | None,
    context: dict[str, Any],
    link_path: str,
    data: dict[str, Any] | None = None,
) -> bool:
    """Take the key (kind, subject, user, occurrence) and, if it was free, queue the e-mail and
    the in-app notification in the same transaction. True when this call sent it."""
    reminder_id = _insert_reminder(
        session,
        kind=kind,
        subject=subject,
        recipient=f"user:{user.id}",
        occurrence=occurrence,
        user_id=user.id,
        org_id=org_id,
        data=data,
    )
    if reminder_id is None:
        return False
    ctx = {
        **_in_language(session, context, user.locale),
        "user_name": user.name or user.email,
        "link": settings.base_url.rstrip("/") + link_path,
    }
    rendered = render(kind, user.locale, ctx, tz=settings.timezone)
    notifications.enqueue_email(
        session,
        user,
        rendered,
        kind=kind,
        mail_from=settings.mail_from,
        org_id=org_id,
        reminder_id=reminder_id,
    )
    notifications.notify(
        session,
        user.id,
        kind=kind,
        title=rendered.title,
        link=link_path,
        org_id=org_id,
        reminder_id=reminder_id,
    )
    return True


def _in_language(session: Session, context: dict[str, Any], locale: str) -> dict[str, Any]:
    """The task names of a message in the reader's language, from the processes' catalogs."""
    words = definition_queries.catalog(session, locale)
    if not words:
        return context
    out = dict(context)
    if isinstance(out.get("task_name"), str):
        out["task_name"] = words.get(out["task_name"], out["task_name"])
    if isinstance(out.get("tasks"), list):
        out["tasks"] = [
            {**t, "name": words.get(t.get("name"), t.get("name"))} if isinstance(t, dict) else t
            for t in out["tasks"]
        ]
    return out


def _existing_keys(
    session: Session, kind: str, subjects: Sequence[str]
) -> set[tuple[str, str, str]]:
    """(subject, recipient, occurrence) already taken, to skip settled subjects without writing."""
    found: set[tuple[str, str, str]] = set()
    for i in range(0, len(subjects), _CHUNK):
        rows = session.execute(
            select(Reminder.subject, Reminder.recipient, Reminder.occurrence).where(
                Reminder.kind == kind, Reminder.subject.in_(subjects[i : i + _CHUNK])
            )
        ).all()
        found.update((r[0], r[1], r[2]) for r in rows)
    return found


# ---------------------------------------------------------------- recipients


def _holders(
    session: Session, org_ids: Iterable[int], establishment_ids: Iterable[int], roles: Sequence[str]
) -> dict[tuple[int, str, int | None], list[User]]:
    """Active users by (org, role, establishment) for scoped roles and (org, role, None) for
    organization-wide ones."""
    org_ids, est_ids = sorted(set(org_ids)), sorted(set(establishment_ids))
    out: dict[tuple[int, str, int | None], list[User]] = defaultdict(list)
    if not org_ids:
        return out
    scoped = [r for r in roles if r in SCOPED_ROLES]
    wide = [r for r in roles if r not in SCOPED_ROLES]
    if scoped and est_ids:
        rows = session.execute(
            select(
                Membership.org_id,
                Membership.role,
                membership_establishment.c.establishment_id,
                User,
            )
            .join(
                membership_establishment, membership_establishment.c.membership_id == Membership.id
            )
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.org_id.in_(org_ids),
                Membership.role.in_(scoped),
                User.active.is_(True),
                membership_establishment.c.establishment_id.in_(est_ids),
            )
            .order_by(User.id)
        ).all()
        for org_id, role, est_id, user in rows:
            out[(org_id, role, est_id)].append(user)
    if wide:
        rows = session.execute(
            select(Membership.org_id, Membership.role, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.org_id.in_(org_ids), Membership.role.in_(wide), User.active.is_(True))
            .order_by(User.id)
        ).all()
        for org_id, role, user in rows:
            out[(org_id, role, None)].append(user)
    return out


def _establishments(session: Session, ids: Iterable[int | None]) -> dict[int, Establishment]:
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, Establishment] = {}
    for i in range(0, len(wanted), _CHUNK):
        for est in session.scalars(
            select(Establishment).where(Establishment.id.in_(wanted[i : i + _CHUNK]))
        ):
            found[est.id] = est
    return found


def _est_context(est: Establishment | None) -> dict[str, str]:
    if est is None:
        return {"establishment": "—", "cnes": "—"}
    return {"establishment": est.nome_fantasia or est.razao_social, "cnes": est.cnes}


def _unique_users(*groups: Iterable[User]) -> list[User]:
    seen: dict[int, User] = {}
    for group in groups:
        for user in group:
            seen.setdefault(user.id, user)
    return list(seen.values())


@dataclass
class RunSummary:
    subjects: int = 0  # candidates looked at
    sent: int = 0  # reminders taken and queued by this run
    failed: int = 0  # subjects whose transaction failed (retried on the next run)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# ---------------------------------------------------------------- overdue DATASUS analyses


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
        holders = _holders(
            session,
            [t.org_id for t in tasks],
            [t.establishment_id for t in tasks if t.establishment_id],
            ("gestor", "datasus"),
        )
        taken = _existing_keys(session, ANALYSIS_OVERDUE, [f"task:{t.id}" for t in tasks])
        ests = _establishments(session, [t.establishment_id for t in tasks])
    for task in tasks:
        subject, occ = f"task:{task.id}", str(occurrence[task.id])
        users = _unique_users(
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
            **_est_context(ests.get(task.establishment_id)),
        }
        try:
            with db.write() as session:
                sent = [
                    u.email
                    for u in todo
                    if send_reminder(
                        session,
                        settings,
                        kind=ANALYSIS_OVERDUE,
                        subject=subject,
                        occurrence=occ,
                        user=u,
                        org_id=task.org_id,
                        context=context,
                        link_path=task_path(task.id),
                        data={"instance_id": task.instance_id, "due_at": task.due_at.isoformat()},
                    )
                ]
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


# ---------------------------------------------------------------- daily digest of other overdue tasks


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
        holders = _holders(
            session,
            [t.org_id for t in tasks],
            [t.establishment_id for t in tasks if t.establishment_id],
            roles,
        )
        ests = _establishments(session, [t.establishment_id for t in tasks])
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
                **_est_context(ests.get(t.establishment_id)),
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


# ---------------------------------------------------------------- certificates


def certificate_threshold(days_left: int, thresholds: Sequence[int]) -> int | None:
    """The reminder due now: the smallest threshold not below the days left, if any."""
    candidates = [t for t in thresholds if t >= days_left]
    return min(candidates) if candidates else None


def _still_credentialed(certificate_cls: Any) -> Any:
    """A certificate is reminded of unless every credential of its establishment has ended
    (a withdrawn establishment stops hearing about it); one with no credential yet is."""
    of_est = Credential.establishment_id == certificate_cls.establishment_id
    ended = select(Credential.id).where(of_est, Credential.status == ENCERRADA).exists()
    still_open = select(Credential.id).where(of_est, Credential.status.in_(OPEN)).exists()
    return or_(~ended, still_open)


def remind_certificates(db: Database, settings: Any, *, now: datetime | None = None) -> RunSummary:
    certificate_cls = Certificate
    now = now or utcnow()
    summary = RunSummary()
    zone = ZoneInfo(settings.timezone)
    today = now.astimezone(zone).date()
    thresholds = sorted({int(d) for d in settings.certificate_reminder_days if int(d) > 0})
    horizon = now + timedelta(days=max([*thresholds, RENEWAL_WINDOW_DAYS]) + 1)
    with db.read() as session:
        stmt = select(certificate_cls).where(
            certificate_cls.not_after <= horizon, _still_credentialed(certificate_cls)
        )
        if hasattr(certificate_cls, "is_current"):
            stmt = stmt.where(certificate_cls.is_current.is_(True))
        certificates = list(
            session.scalars(stmt.order_by(certificate_cls.not_after, certificate_cls.id))
        )
        if not certificates:
            return summary
        summary.subjects = len(certificates)
        holders = _holders(
            session,
            [c.org_id for c in certificates],
            [c.establishment_id for c in certificates],
            ("gestor", "integrador"),
        )
        ests = _establishments(session, [c.establishment_id for c in certificates])
        subjects = [f"certificate:{c.id}" for c in certificates]
        taken = {
            kind: _existing_keys(session, kind, subjects)
            for kind in (CERTIFICATE_EXPIRY, CERTIFICATE_EXPIRED, CERTIFICATE_RENEWAL)
        }
    for cert in certificates:
        subject = f"certificate:{cert.id}"
        expired = cert.not_after <= now
        days_left = (cert.not_after.astimezone(zone).date() - today).days
        users = _unique_users(
            holders.get((cert.org_id, "gestor", cert.establishment_id), ()),
            holders.get((cert.org_id, "integrador", cert.establishment_id), ()),
        )
        if expired:
            kind, occ = CERTIFICATE_EXPIRED, "expired"
        else:
            threshold = certificate_threshold(days_left, thresholds)
            kind, occ = (CERTIFICATE_EXPIRY, f"d{threshold}") if threshold is not None else ("", "")
        todo = [u for u in users if kind and (subject, f"user:{u.id}", occ) not in taken[kind]]
        needs_expired_hook = (
            expired and (subject, "hook:expired", "expired") not in taken[CERTIFICATE_EXPIRED]
        )
        needs_renewal = (
            days_left <= RENEWAL_WINDOW_DAYS
            and (subject, "hook:renewal", "window") not in taken[CERTIFICATE_RENEWAL]
        )
        if not (todo or needs_expired_hook or needs_renewal):
            continue
        est = ests.get(cert.establishment_id)
        context = {"not_after": cert.not_after, "days_left": max(days_left, 0), **_est_context(est)}
        data = {
            "certificate_id": cert.id,
            "not_after": cert.not_after.isoformat(),
            "establishment_id": cert.establishment_id,
        }
        try:
            with db.write() as session:
                sent = [
                    u.email
                    for u in todo
                    if send_reminder(
                        session,
                        settings,
                        kind=kind,
                        subject=subject,
                        occurrence=occ,
                        user=u,
                        org_id=cert.org_id,
                        context=context,
                        link_path=establishment_path(est.cnes if est else ""),
                        data=data,
                    )
                ]
                hooks: list[str] = []
                if needs_expired_hook and _insert_reminder(
                    session,
                    kind=CERTIFICATE_EXPIRED,
                    subject=subject,
                    recipient="hook:expired",
                    occurrence="expired",
                    user_id=None,
                    org_id=cert.org_id,
                    data=data,
                ):
                    hooks.append("expired")
                if needs_renewal and _insert_reminder(
                    session,
                    kind=CERTIFICATE_RENEWAL,
                    subject=subject,
                    recipient="hook:renewal",
                    occurrence="window",
                    user_id=None,
                    org_id=cert.org_id,
                    data=data,
                ):
                    hooks.append("renewal")
                    # In this transaction: a failing start is retried on the next run.
                    renewal.start_renewal(session, cert)
                if sent or hooks:
                    action = "certificate.expired" if expired else "certificate.expiry_reminder"
                    audit.record(
                        session,
                        SYSTEM,
                        action,
                        org_id=cert.org_id,
                        entity_type="establishment",
                        entity_id=cert.establishment_id,
                        data={
                            **data,
                            "occurrence": occ,
                            "days_left": days_left,
                            "recipients": sent,
                            "hooks": hooks,
                        },
                    )
            summary.sent += len(sent)
        except Exception:
            summary.failed += 1
            log.exception("could not process the expiry of certificate %s", cert.id)
    return summary


def expired_certificate_establishments(
    session: Session, org_id: int, *, now: datetime | None = None
) -> set[int]:
    """Establishments of the organization flagged *certificado vencido*: their current
    certificate's ``not_after`` has passed ."""
    certificate_cls = Certificate
    stmt = select(certificate_cls.establishment_id).where(
        certificate_cls.org_id == org_id, certificate_cls.not_after <= (now or utcnow())
    )
    if hasattr(certificate_cls, "is_current"):
        stmt = stmt.where(certificate_cls.is_current.is_(True))
    return set(session.scalars(stmt))
