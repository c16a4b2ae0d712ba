"""Writing to the outbox and to users' in-app notifications; reading and managing both.

``enqueue_email`` and ``notify`` only add rows to the caller's session: the message is sent
(and the notification shown) only if the caller's transaction commits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts.models import User
from engine.audit import service as audit
from engine.db import utcnow
from engine.errors import Conflict, NotFound
from engine.notifications.models import FAILED, PENDING, SENT, Notification, OutboxMessage
from engine.notifications.render import Rendered

_DOMAIN_RE = re.compile(r"@([^>\s]+)")


def _mail_domain(mail_from: str) -> str:
    found = _DOMAIN_RE.search(mail_from or "")
    return found.group(1) if found else "credencia.localhost"


def enqueue_email(
    session: Session,
    user: User | None,
    rendered: Rendered,
    *,
    kind: str,
    mail_from: str,
    org_id: int | None = None,
    reminder_id: int | None = None,
    to_addr: str | None = None,
) -> OutboxMessage:
    """Queue an e-mail to ``user`` (or to ``to_addr``, someone without an account yet)."""
    message = OutboxMessage(
        org_id=org_id,
        user_id=user.id if user is not None else None,
        reminder_id=reminder_id,
        kind=kind,
        to_addr=to_addr or (user.email if user is not None else ""),
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        locale=rendered.lang,
        status=PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(message)
    session.flush()
    message.message_id = f"<outbox.{message.id}.{reminder_id or 0}@{_mail_domain(mail_from)}>"
    return message


def notify(
    session: Session,
    user_id: int,
    *,
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
    org_id: int | None = None,
    reminder_id: int | None = None,
) -> Notification:
    row = Notification(
        user_id=user_id,
        org_id=org_id,
        reminder_id=reminder_id,
        kind=kind,
        title=title[:300],
        body=body,
        link=link[:300],
    )
    session.add(row)
    return row


# ---------------------------------------------------------------- in-app notifications


def list_for(
    session: Session,
    actor: Actor,
    *,
    unread_only: bool = False,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Notification]:
    """The actor's own notifications, newest first (page with ``before_id``)."""
    if actor.user_id is None:
        return []
    stmt = select(Notification).where(Notification.user_id == actor.user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(Notification.id < before_id)
    return list(session.scalars(stmt.order_by(Notification.id.desc()).limit(limit)))


def unread_count(session: Session, actor: Actor) -> int:
    if actor.user_id is None:
        return 0
    return (
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == actor.user_id, Notification.read_at.is_(None))
        )
        or 0
    )


def mark_read(session: Session, actor: Actor, notification_id: int) -> Notification:
    row = session.get(Notification, notification_id)
    # Someone else's notification answers like a missing one: ids are not secrets, contents are.
    if row is None or actor.user_id is None or row.user_id != actor.user_id:
        raise NotFound("Notificação não encontrada.")
    if row.read_at is None:
        row.read_at = utcnow()
    return row


def mark_all_read(session: Session, actor: Actor) -> int:
    if actor.user_id is None:
        return 0
    result = session.execute(
        update(Notification)
        .where(Notification.user_id == actor.user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    return result.rowcount or 0


# ---------------------------------------------------------------- outbox administration


def _visible_outbox(actor: Actor):
    stmt = select(OutboxMessage)
    if actor.is_system:
        return stmt
    admin_orgs = [org_id for org_id in actor.org_ids if actor.has_role(org_id, "admin")]
    return stmt.where(OutboxMessage.org_id.in_(admin_orgs)) if admin_orgs else stmt.where(False)


def list_outbox(
    session: Session, actor: Actor, *, statuses: Sequence[str] | None = None, limit: int = 50
) -> list[OutboxMessage]:
    """Messages admins may see (their organizations'; everything for the system actor)."""
    stmt = _visible_outbox(actor)
    if statuses:
        stmt = stmt.where(OutboxMessage.status.in_(statuses))
    return list(session.scalars(stmt.order_by(OutboxMessage.id.desc()).limit(limit)))


@dataclass
class OutboxCounts:
    pending: int
    due: int
    sent: int
    failed: int


def outbox_counts(session: Session) -> OutboxCounts:
    now = utcnow()
    rows = dict(
        session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    )
    due = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now)
    )
    return OutboxCounts(
        pending=rows.get(PENDING, 0),
        due=due or 0,
        sent=rows.get(SENT, 0),
        failed=rows.get(FAILED, 0),
    )


def retry(session: Session, actor: Actor, message_id: int) -> OutboxMessage:
    """Put a failed (or waiting) message back to be sent at once, with a fresh attempt count."""
    message = session.scalar(_visible_outbox(actor).where(OutboxMessage.id == message_id))
    if message is None:
        raise NotFound(f"Mensagem {message_id} não encontrada.")
    if message.status == SENT:
        raise Conflict(f"A mensagem {message_id} já foi enviada.")
    previous = message.status
    message.status, message.attempts, message.next_attempt_at = PENDING, 0, utcnow()
    message.lease_owner, message.lease_until = None, None
    audit.record(
        session,
        actor,
        "outbox.retried",
        org_id=message.org_id,
        entity_type="outbox_message",
        entity_id=message.id,
        data={
            "previous_status": previous,
            "to": message.to_addr,
            "last_error": message.last_error[:500],
        },
    )
    return message
