"""The analytics aggregates and the refresh job's watermarks (see engine/analytics/refresh.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime

# Bucket kinds.
ELEMENT = "element"  # one BPMN element of one version, per UF/município/portfolio and month
STAGE = "stage"  # instances reaching a stage, time from the start, per UF/portfolio and month
FLOW = "flow"  # instances reaching a stage per week (cumulative flow)
REJECTION = "rejection"  # rejections per normalised reason, element, portfolio and month
REMAINING = "remaining"  # time from reaching a stage to production, per portfolio
PERSON = "person"  # completions by person and lane per month (SLA compliance)
# The UF / município of the rolled-up rows: ELEMENT is kept for the country (uf and município
# ALL), each UF (município ALL) and each município; STAGE, FLOW and REJECTION for the country
# and each UF. A read takes the coarsest rows its filters allow: a few thousand at most.
ALL = "*"


class AnalyticsBucket(Base):
    """One aggregate: counters and duration histograms of the task rows of one combination of
    dimensions. ``key`` is a digest of the kind and dimensions (one row per combination)."""

    __tablename__ = "analytics_bucket"
    __table_args__ = (
        # The reads: one organization's buckets of a kind and process at one level (the
        # município, then the UF: ALL for the rolled-up rows) over a range of periods.
        Index(
            "ix_analytics_bucket_read",
            "org_id",
            "kind",
            "process_key",
            "municipio",
            "uf",
            "period",
        ),  # fmt: skip
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    process_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=0)
    element_id: Mapped[str] = mapped_column(String(100), default="")
    lane: Mapped[str] = mapped_column(String(100), default="")
    uf: Mapped[str] = mapped_column(String(2), default="")
    municipio: Mapped[str] = mapped_column(String(100), default="")
    portfolio_code: Mapped[str] = mapped_column(String(40), default="")
    stage: Mapped[str] = mapped_column(String(60), default="")
    # "2026-11" (month, in CREDENCIA_TIMEZONE) or, for FLOW, the week's Monday "2026-11-16".
    period: Mapped[str] = mapped_column(String(10), default="")
    # REJECTION: the normalised reason; PERSON: the user's id.
    label: Mapped[str] = mapped_column(String(200), default="")
    sample: Mapped[str] = mapped_column(Text, default="")  # REJECTION: a reason as written
    entered: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    loops: Mapped[int] = mapped_column(Integer, default=0)
    overdue: Mapped[int] = mapped_column(Integer, default=0)
    with_due: Mapped[int] = mapped_column(Integer, default=0)
    # Sparse histograms {bin's lower edge in seconds: count} (engine/analytics/histogram.py).
    hist: Mapped[dict] = mapped_column(JSONType, default=dict)
    claim_hist: Mapped[dict] = mapped_column(JSONType, default=dict)


class AnalyticsState(Base):
    """The refresh's watermarks: task rows created / completed up to these instants are in the
    buckets. One row (name "tasks")."""

    __tablename__ = "analytics_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_mark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_mark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_rows: Mapped[int] = mapped_column(Integer, default=0)
