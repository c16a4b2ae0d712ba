from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class TermAcceptance(Base):
    """Who accepted which version of a process's term of use, when: one row per completed task
    and accepting field, written in the completion's transaction."""

    __tablename__ = "term_acceptance"
    __table_args__ = (Index("ix_term_acceptance_instance", "instance_id", "accepted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(36))
    # The deployed version whose files hold the accepted text (the instance may move on).
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    field: Mapped[str] = mapped_column(String(100))
    term_id: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(40))
    file: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    accepted_by: Mapped[str] = mapped_column(String(254))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
