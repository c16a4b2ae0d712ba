from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, Boolean, ForeignKey, Index, Integer, String, Text, event, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, JSONType, UTCDateTime, unique_where, utcnow
from engine.definitions.models import ProcessDefinition
from engine.establishments.models import Establishment

RUNNING, COMPLETED, CANCELLED = "running", "completed", "cancelled"
READY = "ready"


class ProcessInstance(Base):
    __tablename__ = "process_instance"
    __table_args__ = (
        Index("ix_process_instance_org_stage", "org_id", "status", "stage"),
        Index("ix_process_instance_establishment", "establishment_id"),
        # One running credentialing per (establishment, portfolio, process).
        unique_where(
            "uq_process_instance_running",
            "establishment_id",
            "process_key",
            "portfolio_code",
            where="status = 'running'",
        ),
        Index("ix_process_instance_next_timer", "next_timer_due_at"),
        # The latest instance of each (establishment, process, portfolio): the dashboard's row.
        unique_where(
            "uq_process_instance_latest",
            "establishment_id",
            "process_key",
            "portfolio_code",
            where="is_latest",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    process_key: Mapped[str] = mapped_column(String(100))
    establishment_id: Mapped[int | None] = mapped_column(ForeignKey("establishment.id"))
    portfolio_code: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    stage: Mapped[str] = mapped_column(String(60), default="")
    stage_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    numero_solicitacao: Mapped[str] = mapped_column(String(40), default="")
    identificador_solicitante: Mapped[str] = mapped_column(String(40), default="")
    last_rejection_reason: Mapped[str] = mapped_column(Text, default="")
    # Serialized SpiffWorkflow state without the spec (the spec lives on the definition).
    # Kept as text, not JSONB: SpiffWorkflow's restore depends on the order of the task map,
    # which JSONB does not preserve (it sorts keys).
    state: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    next_timer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    # True on the newest instance of its (establishment, process, portfolio); a start clears
    # it on the one before, in the same transaction (engine/runtime/service.py, engine/runtime/bulk.py).
    is_latest: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The credential the instance works on or brought into being (engine/credentials/).
    credential_id: Mapped[int | None] = mapped_column(ForeignKey("credential.id"), index=True)

    definition: Mapped[ProcessDefinition] = relationship(lazy="raise")
    establishment: Mapped[Establishment | None] = relationship(lazy="raise")


class Task(Base):
    """Read model of human tasks: one row per SpiffWorkflow user/manual task that became READY."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_org_lane_state", "org_id", "state", "lane"),
        Index("ix_task_assignee_state", "assignee_id", "state"),
        Index("ix_task_instance", "instance_id"),
        Index("ix_task_establishment_state", "establishment_id", "state"),
        # The inbox's "available" part: a lane's ready tasks in due order (engine/runtime/inbox.py).
        Index("ix_task_org_state_role_due", "org_id", "state", "role", "due_at"),
        # The inbox's lane filter: distinct lanes by a loose index scan.
        Index("ix_task_org_lane", "org_id", "lane"),
        # The analytics refresh's watermarks: rows created / closed since its last run.
        Index("ix_task_created_at", "created_at"),
        Index("ix_task_completed_at", "completed_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the spiff task's UUID
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    establishment_id: Mapped[int | None] = mapped_column(ForeignKey("establishment.id"))
    element_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    lane: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=READY)
    stage: Mapped[str] = mapped_column(String(60), default="")
    form: Mapped[str | None] = mapped_column(String(200))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    data: Mapped[dict | None] = mapped_column(JSONType)  # what was submitted (secrets removed)

    instance: Mapped[ProcessInstance] = relationship(lazy="raise")


# The saved state is rewritten by every change of an instance (~20 KB of JSON): compressed
# with LZ4 rather than the default pglz, about half the server's CPU (migration 0016). A
# server built without LZ4 keeps pglz.
STATE_LZ4 = """
DO $$ BEGIN
    ALTER TABLE process_instance ALTER COLUMN state SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$"""
event.listen(
    ProcessInstance.__table__, "after_create", DDL(STATE_LZ4).execute_if(dialect="postgresql")
)
