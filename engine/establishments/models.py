from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime, utcnow

UFS = (
    "AC",
    "AL",
    "AM",
    "AP",
    "BA",
    "CE",
    "DF",
    "ES",
    "GO",
    "MA",
    "MG",
    "MS",
    "MT",
    "PA",
    "PB",
    "PE",
    "PI",
    "PR",
    "RJ",
    "RN",
    "RO",
    "RR",
    "RS",
    "SC",
    "SE",
    "SP",
    "TO",
)


class Establishment(Base):
    __tablename__ = "establishment"
    __table_args__ = (
        UniqueConstraint("org_id", "cnes"),
        # The dashboard's and the list's order: its first page is an ordered index scan.
        Index("ix_establishment_org_order", "org_id", "uf", "municipio", "razao_social", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    cnes: Mapped[str] = mapped_column(String(7))
    cnpj: Mapped[str] = mapped_column(String(14), index=True)
    razao_social: Mapped[str] = mapped_column(String(200))
    nome_fantasia: Mapped[str] = mapped_column(String(200), default="")
    uf: Mapped[str] = mapped_column(String(2))
    municipio: Mapped[str] = mapped_column(String(100))
    cep: Mapped[str] = mapped_column(String(8), default="")
    endereco: Mapped[str] = mapped_column(String(300), default="")
    bairro: Mapped[str] = mapped_column(String(100), default="", server_default="")
    telefone: Mapped[str] = mapped_column(String(20), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    cnes_pai: Mapped[str | None] = mapped_column(String(7))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def register_data(self) -> dict[str, str]:
        """The register fields as the process sees them (start data of an instance)."""
        return {
            "cnes": self.cnes,
            "cnpj": self.cnpj,
            "razao_social": self.razao_social,
            "nome_fantasia": self.nome_fantasia,
            "uf": self.uf,
            "municipio": self.municipio,
            "cep": self.cep,
            "endereco": self.endereco,
            "bairro": self.bairro,
            "telefone": self.telefone,
            "email": self.email,
        }


class Portfolio(Base):
    """The DATASUS portfolio catalogue (seed 003), kept as editable data."""

    __tablename__ = "portfolio"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(20), default="")
    date: Mapped[str] = mapped_column(String(10), default="")
    operations: Mapped[list] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    # The largest evidence file (PDF/PNG) its forms take, in MB; None: the upload limit
    # (MAX_UPLOAD_BYTES, 10 MB as leaflet 002 says). Declared in processes/portfolios.json.
    evidence_max_mb: Mapped[int | None] = mapped_column(Integer)

    def evidence_limit(self, upload_limit: int) -> int:
        """The evidence limit in bytes: the portfolio's, never above the upload limit."""
        if not self.evidence_max_mb:
            return upload_limit
        return min(upload_limit, self.evidence_max_mb * 1024 * 1024)

    def as_data(self) -> dict:
        return {"code": self.code, "name": self.name, "operations": list(self.operations)}
