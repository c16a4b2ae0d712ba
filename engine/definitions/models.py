from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime, utcnow


class ProcessDefinition(Base):
    """One deployed version of a BPMN process, with its forms and manifest, stored once."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100))  # BPMN process id, e.g. credenciamento-rnds
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    bpmn_xml: Mapped[str] = mapped_column(Text)
    # file name -> parsed JSON (forms, process.json), or the text of a term of use (terms/*.md)
    files: Mapped[dict] = mapped_column(JSONType)
    manifest: Mapped[dict] = mapped_column(JSONType)
    source_path: Mapped[str] = mapped_column(String(300), default="")
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deployed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
