"""An establishment's certificates: the current one and the history of previous ones.

Only public material is kept: the leaf certificate's DER in ``stored_file`` and the facts
read from it here. A .pfx's private key and password never reach the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime, unique_where, utcnow


class Certificate(Base):
    __tablename__ = "certificate"
    __table_args__ = (
        # The same e-CNPJ may serve several establishments (UBSs under one Fundo Municipal de
        # Saúde share its CNPJ), so a fingerprint is unique per establishment, not per org.
        UniqueConstraint("establishment_id", "sha256"),
        # At most one current certificate per establishment, even under concurrent uploads.
        unique_where("uq_certificate_current", "establishment_id", where="is_current"),
        Index("ix_certificate_org_not_after", "org_id", "not_after"),
        Index("ix_certificate_org_sha256", "org_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    establishment_id: Mapped[int] = mapped_column(
        ForeignKey("establishment.id", ondelete="CASCADE")
    )
    file_id: Mapped[str] = mapped_column(ForeignKey("stored_file.id"))
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(String(80))
    sha256: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    cnpj: Mapped[str | None] = mapped_column(String(14))
    cpf_responsavel: Mapped[str | None] = mapped_column(String(11))
    cert_type: Mapped[str] = mapped_column("type", String(10))  # A1 | A3 | unknown
    icp_brasil: Mapped[bool] = mapped_column(Boolean)
    client_auth: Mapped[bool] = mapped_column(Boolean)
    cnpj_exception_reason: Mapped[str | None] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    # The inspection report at registration (checklist, chain, fields): public data only.
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def is_valid_at(self, now: datetime) -> bool:
        """Within its validity at ``now``."""
        return self.not_before <= now <= self.not_after
