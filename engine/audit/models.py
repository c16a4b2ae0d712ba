from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.audit.canonical import CanonicalJSON
from engine.db import Base, JSONType, UTCDateTime


class AuditChain(Base):
    """Head of one hash chain (one per organization, plus ``system``); locked to append."""

    __tablename__ = "audit_chain"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("chain", "seq"),
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
        Index("ix_audit_event_org_at", "org_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id", ondelete="RESTRICT"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40), default="")
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    # The canonical JSON text the hash was computed over (engine/audit/canonical.py).
    data: Mapped[dict] = mapped_column(CanonicalJSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# SQLite: each event inserted moves its chain's head in the insert's own statement, and an
# event that does not follow the head (the next seq, the head's hash as its prev_hash) is
# refused — the single statement PostgreSQL gets from a data-modifying WITH
# (engine/audit/service.py), and no path, the application's or an SQL session's, can insert
# an event that forks a chain or leaves its head behind. Migration 0017 adds it to existing
# databases.
SQLITE_HEAD_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS audit_event_moves_head AFTER INSERT ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit event does not follow the head of its chain')
    WHERE NOT EXISTS (
        SELECT 1 FROM audit_chain
        WHERE key = NEW.chain AND last_seq = NEW.seq - 1 AND last_hash = NEW.prev_hash
    );
    UPDATE audit_chain SET last_seq = NEW.seq, last_hash = NEW.hash WHERE key = NEW.chain;
END"""
event.listen(
    AuditEvent.__table__, "after_create", DDL(SQLITE_HEAD_TRIGGER).execute_if(dialect="sqlite")
)


class AuditCheckpoint(Base):
    """One chain's verified prefix and the outcome of its last verification.

    ``seq``/``event_id``/``hash`` name the last event of the prefix found intact from the
    chain's start: the next incremental run starts after it. A break stops the prefix before
    it, so every later run reports the break again; ``--full`` runs recheck from the start.
    """

    __tablename__ = "audit_checkpoint"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_by: Mapped[str] = mapped_column(String(254))
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))  # ok | broken | partial
    checked: Mapped[int] = mapped_column(BigInteger, default=0)
    reached_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # the last event walked
    broken: Mapped[int] = mapped_column(BigInteger, default=0)  # breaks found (all of them)
    problems: Mapped[list] = mapped_column(JSONType, default=list)  # the first few, described


class AuthFailureCount(Base):
    """Unauthenticated API calls counted per minute, client address (keyed hash) and reason;
    closed minutes are summed up into one audit event and deleted (engine/audit/failures.py)."""

    __tablename__ = "auth_failure_count"

    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(40), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
