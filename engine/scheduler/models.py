from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime

RUNNING, OK, ERROR = "running", "ok", "error"


class SchedulerJob(Base):
    """The last run of each scheduler job, for ``credencia scheduler status`` and the admin page.

    One row per job name, shared by every scheduler process (``last_owner`` says which ran it).
    """

    __tablename__ = "scheduler_job"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_owner: Mapped[str] = mapped_column(String(120), default="")
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_result: Mapped[str] = mapped_column(String(16), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_summary: Mapped[dict | None] = mapped_column(JSONType)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
