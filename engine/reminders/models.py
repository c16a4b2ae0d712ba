from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime, utcnow

# Kinds of reminder (the first part of the unique key).
ANALYSIS_OVERDUE = "analysis_overdue"
OVERDUE_DIGEST = "overdue_digest"
CERTIFICATE_EXPIRY = "certificate_expiry"
CERTIFICATE_EXPIRED = "certificate_expired"
CERTIFICATE_RENEWAL = "certificate_renewal"


class Reminder(Base):
    """A reminder that was sent (or a hook that was run), recorded under its unique key.

    The key is (kind, subject, recipient, occurrence): e.g. (``analysis_overdue``,
    ``task:<id>``, ``user:7``, ``2``) is the third reminder of an analysis to user 7. It is
    inserted with ``ON CONFLICT DO NOTHING`` in the same transaction as the outbox message
    and in-app notification it causes, so a doubled, late or concurrent run sends it once.
    """

    __tablename__ = "reminder"
    __table_args__ = (
        UniqueConstraint("kind", "subject", "recipient", "occurrence", name="uq_reminder_key"),
        Index("ix_reminder_subject", "subject"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(80))  # task:<uuid>, certificate:<id>, tasks
    recipient: Mapped[str] = mapped_column(String(80))  # user:<id>, or hook:<name>
    occurrence: Mapped[str] = mapped_column(String(40))  # period number, local date, d30, …
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict | None] = mapped_column(JSONType)
