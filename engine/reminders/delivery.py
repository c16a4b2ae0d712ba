"""Sending one reminder exactly once: its unique key, the e-mail and the in-app notice.

The key is (kind, subject, recipient, occurrence); the row is inserted with ``INSERT … ON
CONFLICT DO NOTHING`` and only the transaction that inserted it queues the messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.accounts.models import User
from engine.db import utcnow
from engine.definitions import queries as definition_queries
from engine.notifications import service as notifications
from engine.notifications.render import render
from engine.reminders.models import Reminder

CHUNK = 500  # ids per IN (...) query


# ---------------------------------------------------------------- links
# Paths of the web pages (web/ui): the task form, the establishment page, the inbox.


def task_path(task_id: str) -> str:
    return f"/tarefas/{task_id}"


def establishment_path(cnes: str) -> str:
    return f"/estabelecimentos/{cnes}"


INBOX_PATH = "/"


# ---------------------------------------------------------------- the unique key


def insert_reminder(
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


def take_hook(
    session: Session,
    kind: str,
    subject: str,
    hook: str,
    occurrence: str,
    org_id: int | None,
    data: dict[str, Any],
) -> bool:
    """Take the key of a once-only action with no recipient (``hook:<name>``); True if free."""
    return (
        insert_reminder(
            session,
            kind=kind,
            subject=subject,
            recipient=f"hook:{hook}",
            occurrence=occurrence,
            user_id=None,
            org_id=org_id,
            data=data,
        )
        is not None
    )


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
    reminder_id = insert_reminder(
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


def send_to_each(
    session: Session, settings: Any, users: Iterable[User], **reminder: Any
) -> list[str]:
    """``send_reminder`` to each user (the other arguments as there); the e-mail addresses of
    those this call sent it to, for the audit event."""
    return [u.email for u in users if send_reminder(session, settings, user=u, **reminder)]


def existing_keys(
    session: Session, kind: str, subjects: Sequence[str]
) -> set[tuple[str, str, str]]:
    """(subject, recipient, occurrence) already taken, to skip settled subjects without writing."""
    found: set[tuple[str, str, str]] = set()
    for i in range(0, len(subjects), CHUNK):
        rows = session.execute(
            select(Reminder.subject, Reminder.recipient, Reminder.occurrence).where(
                Reminder.kind == kind, Reminder.subject.in_(subjects[i : i + CHUNK])
            )
        ).all()
        found.update((r[0], r[1], r[2]) for r in rows)
    return found


@dataclass
class RunSummary:
    subjects: int = 0  # candidates looked at
    sent: int = 0  # reminders taken and queued by this run
    failed: int = 0  # subjects whose transaction failed (retried on the next run)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)
