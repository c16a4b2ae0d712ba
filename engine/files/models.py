from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column

from engine.db import Base, JSONType, UTCDateTime, utcnow


class StoredFile(Base):
    """An uploaded file, kept in the database with its SHA-256 for auditors."""

    __tablename__ = "stored_file"
    __table_args__ = (
        # A user's unattached uploads (the quota at upload), without their attached ones.
        Index("ix_stored_file_uploader_unattached", "uploaded_by_id", "instance_id"),
        # An instance's files in order, and the unattached ones past their time (expiry).
        Index("ix_stored_file_instance_created", "instance_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # Set when a task completion attaches the file: who may read it follows the establishment.
    establishment_id: Mapped[int | None] = mapped_column(ForeignKey("establishment.id"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(
        String(20)
    )  # pdf | png | certificate | certificate_with_key (a .pfx with its key)
    size: Mapped[int] = mapped_column(Integer)
    # Content warnings for the DATASUS lane, e.g. a PDF with JavaScript or embedded files.
    flags: Mapped[list] = mapped_column(JSONType, default=list)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
