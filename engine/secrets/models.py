"""The ``secret_value`` table: one encrypted secret field of one process instance."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class SecretValue(Base):
    """One secret field of one process instance, encrypted (``ciphertext`` is a token)."""

    __tablename__ = "secret_value"
    __table_args__ = (
        UniqueConstraint("instance_id", "field"),
        Index("ix_secret_value_key_id", "key_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(200))
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def context(self) -> str:
        return f"secret_value:{self.org_id}:{self.instance_id}:{self.field}"
