"""The dashboard's maintained counters (see engine/dashboard/counts.py)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base


class StageCount(Base):
    """How many dashboard rows each organization has per UF, stage, portfolio and status.

    A dashboard row is an establishment with the latest instance of one (process, portfolio),
    or an establishment with no instance at all (stage "", portfolio "", status "none").
    Kept in step by the writes that move rows (engine/dashboard/counts.py), in their own
    transaction, so the national stage x UF summary reads a few hundred rows instead of
    joining every establishment with its instances.
    """

    __tablename__ = "stage_count"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    uf: Mapped[str] = mapped_column(String(2), primary_key=True)
    stage: Mapped[str] = mapped_column(String(60), primary_key=True)
    portfolio_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
