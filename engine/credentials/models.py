"""The credential record and what it covers.

A credential is what an organization holds with the RNDS for one principal establishment
and one portfolio: its status, its identificador do solicitante, the approved operations, the
certificate, the requesting system and IP range, the gestor responsável and the child
establishments it covers. Processes write it as their ``process.json`` declares
(engine/credentialing/block.py); every instance that touched it points to it
(``process_instance.credential_id``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.credentialing.block import (  # noqa: F401  (the record's statuses)
    EM_ANALISE_PRODUCAO,
    EM_SOLICITACAO,
    ENCERRADA,
    HOMOLOGACAO,
    PRODUCAO,
    STATUSES,
    SUSPENSA,
)
from engine.db import Base, JSONType, UTCDateTime, unique_where, utcnow

STATUS_LABELS = {
    EM_SOLICITACAO: "Em solicitação",
    HOMOLOGACAO: "Homologação",
    EM_ANALISE_PRODUCAO: "Em análise para produção",
    PRODUCAO: "Produção",
    SUSPENSA: "Suspensa",
    ENCERRADA: "Encerrada",
}
# A live credential: the RNDS granted it and it has not ended. A credenciamento for the same
# establishment and portfolio is refused while one is live.
LIVE = (HOMOLOGACAO, EM_ANALISE_PRODUCAO, PRODUCAO, SUSPENSA)
# Statuses whose record is still open (at most one per organization, establishment, portfolio).
OPEN = (EM_SOLICITACAO, *LIVE)


class Credential(Base):
    __tablename__ = "credential"
    __table_args__ = (
        # One open credential per organization × principal establishment × portfolio.
        unique_where(
            "uq_credential_open",
            "org_id",
            "establishment_id",
            "portfolio_code",
            where="status <> 'encerrada'",
        ),
        Index("ix_credential_org_status", "org_id", "status"),
        Index("ix_credential_org_requester", "org_id", "portfolio_code", "uf", "requester_id"),
        Index("ix_credential_org_cert_until", "org_id", "certificate_not_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    establishment_id: Mapped[int] = mapped_column(ForeignKey("establishment.id"), index=True)
    portfolio_code: Mapped[str] = mapped_column(String(40), default="")
    uf: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(24), default=EM_SOLICITACAO)
    status_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # [{"status", "at", "instance"}]: every status it went through, with when and by which run.
    history: Mapped[list] = mapped_column(JSONType, default=list)
    homologation_on: Mapped[date | None] = mapped_column(Date)
    production_on: Mapped[date | None] = mapped_column(Date)
    requester_id: Mapped[str] = mapped_column(String(40), default="")  # identificador
    request_numbers: Mapped[list] = mapped_column(JSONType, default=list)
    operations: Mapped[list] = mapped_column(JSONType, default=list)  # [{operacao, metodo}]
    ip_start: Mapped[str] = mapped_column(String(45), default="")
    ip_end: Mapped[str] = mapped_column(String(45), default="")
    system_name: Mapped[str] = mapped_column(String(200), default="")
    system_version: Mapped[str] = mapped_column(String(60), default="")
    gestor_name: Mapped[str] = mapped_column(String(200), default="")
    gestor_cpf: Mapped[str] = mapped_column(String(11), default="")
    gestor_email: Mapped[str] = mapped_column(String(254), default="")
    certificate_sha256: Mapped[str] = mapped_column(String(64), default="")
    certificate_cnpj: Mapped[str] = mapped_column(String(14), default="")
    certificate_not_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_pec: Mapped[bool] = mapped_column(Boolean, default=False)
    ended_on: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str] = mapped_column(Text, default="")
    # How it came to Credencia: "process" (a credenciamento run) or "import" (a CSV import).
    origin: Mapped[str] = mapped_column(String(16), default="process")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE


class CredentialChild(Base):
    """A child establishment a credential covers (by CNES; linked to the organization's
    establishment of that CNES when it is registered)."""

    __tablename__ = "credential_child"
    __table_args__ = (
        Index("uq_credential_child", "credential_id", "cnes", unique=True),
        Index("ix_credential_child_org_cnes", "org_id", "cnes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credential.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    cnes: Mapped[str] = mapped_column(String(7))
    establishment_id: Mapped[int | None] = mapped_column(ForeignKey("establishment.id"))
