"""Delivering the outbox over SMTP: claim with a lease, send, mark sent — with retries.

How a message is sent once, with several workers and crashes:

1. **Claim.** One short transaction picks due messages (``pending``, ``next_attempt_at`` passed,
   no live lease) — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so concurrent workers take
   different rows; SQLite serializes the claim — and stamps them with this worker's
   ``lease_owner`` and ``lease_until`` and counts the attempt. Other workers skip leased rows.
2. **Send.** Over one SMTP connection. A send starts only while the lease has at least the SMTP
   timeout plus a margin left, so a slow server cannot keep us sending past the lease.
3. **Mark.** Right after the server accepts a message (``250`` after ``DATA``) a transaction of
   its own marks it ``sent`` — guarded by ``lease_owner`` so a worker whose lease was taken
   over cannot overwrite the new owner's outcome.

A worker that dies after claiming and before sending leaves its messages leased; when the
lease runs out another worker claims and sends them — once. The one window where a message
can go out twice is between the server's ``250`` and the commit of step 3 (milliseconds: a
crash or a lost database connection exactly then). SMTP offers no way to make that atomic, so
delivery is at-least-once in that window; every message carries a stable ``Message-ID`` so
that mail systems that deduplicate show it once.

Failures: a message that fails is retried after ``base_delay * 2**(attempts-1)`` (capped at
``max_delay``); after ``max_attempts`` attempts it is marked ``failed`` and shows in
``credencia scheduler status`` and ``credencia outbox list --failed``, from where
``credencia outbox retry ID`` sends it again. A recipient refused permanently (5xx), or a
message the server cannot take (a non-ASCII address without SMTPUTF8), fails at once and alone.
When the server is unreachable every claimed message is put back with its back-off.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import or_, select, update

from engine.db import Database, utcnow
from engine.notifications.models import FAILED, PENDING, SENT, OutboxMessage

log = logging.getLogger(__name__)


def worker_id(prefix: str = "") -> str:
    """A name for this worker that no other process will use (host, pid, random)."""
    base = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return f"{prefix}:{base}" if prefix else base


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    base_delay: float = 30.0  # seconds before the 2nd attempt; doubles each time
    max_delay: float = 3600.0
    lease_seconds: float = 120.0
    batch: int = 50
    smtp_timeout: float = 20.0
    lease_margin: float = 5.0  # a send starts only with timeout + margin left on the lease

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryPolicy:
        """Settings may override the defaults (``outbox_max_attempts`` etc.) when they exist."""
        defaults = cls()
        return cls(
            max_attempts=int(getattr(settings, "outbox_max_attempts", defaults.max_attempts)),
            base_delay=float(getattr(settings, "outbox_base_delay_seconds", defaults.base_delay)),
            max_delay=float(getattr(settings, "outbox_max_delay_seconds", defaults.max_delay)),
            lease_seconds=float(getattr(settings, "outbox_lease_seconds", defaults.lease_seconds)),
            batch=int(getattr(settings, "outbox_batch", defaults.batch)),
            smtp_timeout=float(getattr(settings, "smtp_timeout_seconds", defaults.smtp_timeout)),
        )

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt."""
        return timedelta(seconds=min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))


@dataclass
class DeliveryResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0  # handed back unsent because the lease ran short
    lost_lease: int = 0  # sent, but another worker had taken the message over meanwhile
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "errors"}
        if self.errors:
            out["errors"] = self.errors[:5]
        return out


# ---------------------------------------------------------------- claiming and marking


def claim(
    db: Database, owner: str, *, policy: DeliveryPolicy | None = None, now: datetime | None = None
) -> list[int]:
    """Lease up to ``policy.batch`` due messages to ``owner``; returns their ids."""
    policy = policy or DeliveryPolicy()
    now = now or utcnow()
    with db.write() as session:
        stmt = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == PENDING,
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(policy.batch)
        )
        if db.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list(session.scalars(stmt))
        if ids:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(
                    lease_owner=owner,
                    lease_until=now + timedelta(seconds=policy.lease_seconds),
                    attempts=OutboxMessage.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
    return ids


def _mine(message_id: int, owner: str):
    return (
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.lease_owner == owner,
            OutboxMessage.status == PENDING,
        )
        .execution_options(synchronize_session=False)
    )


def mark_sent(db: Database, message_id: int, owner: str) -> bool:
    """Record a send; False when the lease had passed to another worker (a possible double)."""
    with db.write() as session:
        result = session.execute(
            _mine(message_id, owner).values(
                status=SENT, sent_at=utcnow(), lease_owner=None, lease_until=None, last_error=""
            )
        )
        return bool(result.rowcount)


def mark_failed_attempt(
    db: Database,
    message: OutboxMessage,
    owner: str,
    error: str,
    policy: DeliveryPolicy,
    *,
    permanent: bool = False,
) -> str:
    """Schedule a retry with back-off, or mark the message failed; returns the new status."""
    now = utcnow()
    give_up = permanent or message.attempts >= policy.max_attempts
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "last_error": error[:2000]}
    if give_up:
        values["status"] = FAILED
    else:
        values["next_attempt_at"] = now + policy.backoff(message.attempts)
    with db.write() as session:
        result = session.execute(_mine(message.id, owner).values(**values))
    if not result.rowcount:
        return "lost"
    if give_up:
        log.warning(
            "outbox message %s to %s failed after %s attempt(s): %s",
            message.id,
            message.to_addr,
            message.attempts,
            error,
        )
    return FAILED if give_up else PENDING


def release(db: Database, message_ids: list[int], owner: str) -> None:
    """Hand unsent messages back at once (the attempt they were charged is returned too)."""
    if not message_ids:
        return
    with db.write() as session:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(message_ids),
                OutboxMessage.lease_owner == owner,
                OutboxMessage.status == PENDING,
            )
            .values(lease_owner=None, lease_until=None, attempts=OutboxMessage.attempts - 1)
            .execution_options(synchronize_session=False)
        )


# ---------------------------------------------------------------- SMTP


def build_email(message: OutboxMessage, mail_from: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = mail_from
    email["To"] = message.to_addr
    email["Subject"] = message.subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = message.message_id or make_msgid(domain="credencia.localhost")
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to robots
    email["X-Credencia-Outbox-Id"] = str(message.id)
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    # After the bodies: set_content() drops the Content-* headers already set.
    email["Content-Language"] = "en" if message.locale == "en" else "pt-BR"
    return email


class SmtpSender:
    """One SMTP connection, opened on the first message (STARTTLS and login when configured)."""

    def __init__(self, settings: Any, timeout: float = 20.0):
        self.host = settings.smtp_host
        self.port = int(settings.smtp_port)
        self.starttls = bool(settings.smtp_starttls)
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def connect(self) -> None:
        if self._smtp is None:
            self._smtp = self._connect()

    def send(self, email: EmailMessage, to_addr: str) -> None:
        self.connect()
        assert self._smtp is not None
        self._smtp.send_message(email, to_addrs=[to_addr])

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failed(
    db: Database,
    message: OutboxMessage,
    owner: str,
    exc: Exception,
    policy: DeliveryPolicy,
    result: DeliveryResult,
    *,
    permanent: bool = False,
) -> None:
    error = f"{type(exc).__name__}: {exc}"
    result.errors.append(error)
    outcome = mark_failed_attempt(db, message, owner, error, policy, permanent=permanent)
    result.failed += outcome == FAILED
    result.retried += outcome == PENDING


def _server_unavailable(
    db: Database,
    messages: list[OutboxMessage],
    owner: str,
    exc: Exception,
    policy: DeliveryPolicy,
    result: DeliveryResult,
    sender: SmtpSender,
) -> None:
    """The server is down or dropped us: this and every remaining message wait their turn."""
    for message in messages:
        _failed(db, message, owner, exc, policy, result)
    log.warning(
        "SMTP %s:%s unavailable, %d message(s) will be retried: %s: %s",
        sender.host,
        sender.port,
        len(messages),
        type(exc).__name__,
        exc,
    )


def _permanent(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # e.g. a non-ASCII address, no SMTPUTF8
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _msg in exc.recipients.values())
    return False


def deliver_due(
    db: Database,
    settings: Any,
    *,
    owner: str | None = None,
    policy: DeliveryPolicy | None = None,
) -> DeliveryResult:
    """Claim a batch of due messages and send them; returns what happened."""
    policy = policy or DeliveryPolicy.from_settings(settings)
    owner = owner or worker_id("outbox")
    result = DeliveryResult()
    ids = claim(db, owner, policy=policy)
    result.claimed = len(ids)
    if not ids:
        return result
    with db.read() as session:
        messages = list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.lease_owner == owner)
                .order_by(OutboxMessage.id)
            )
        )
    margin = timedelta(seconds=policy.smtp_timeout + policy.lease_margin)
    with SmtpSender(settings, timeout=policy.smtp_timeout) as sender:
        for index, message in enumerate(messages):
            if message.lease_until is None or utcnow() + margin > message.lease_until:
                rest = [m.id for m in messages[index:]]
                release(db, rest, owner)
                result.released += len(rest)
                break
            try:
                sender.connect()  # connect, EHLO, STARTTLS, login: once per batch
            except Exception as exc:
                _server_unavailable(db, messages[index:], owner, exc, policy, result, sender)
                break
            try:
                sender.send(build_email(message, settings.mail_from), message.to_addr)
            except smtplib.SMTPServerDisconnected as exc:
                _server_unavailable(db, messages[index:], owner, exc, policy, result, sender)
                break
            except smtplib.SMTPException as exc:  # this message only: refused, 4xx/5xx on DATA
                _failed(db, message, owner, exc, policy, result, permanent=_permanent(exc))
            except OSError as exc:  # the connection broke: reset, timeout
                _server_unavailable(db, messages[index:], owner, exc, policy, result, sender)
                break
            except Exception as exc:  # e.g. an address smtplib cannot encode: no retry helps
                _failed(db, message, owner, exc, policy, result, permanent=True)
            else:
                if mark_sent(db, message.id, owner):
                    result.sent += 1
                else:
                    result.lost_lease += 1
                    log.error(
                        "outbox message %s was sent after its lease passed to another worker",
                        message.id,
                    )
    return result
