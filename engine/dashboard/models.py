"""The dashboard's maintained counters (see engine/dashboard/counts.py)."""

from __future__ import annotations

from sqlalchemy import DDL, ForeignKey, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base
from engine.runtime.models import ProcessInstance


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


# SQLite: the counters follow a change of an instance's (stage, portfolio, status) in the
# instance's own UPDATE, as ``counts.instance_changed`` would queue it: a running instance
# (version > 0: a start counts itself), the latest of its establishment's, of a process that
# makes dashboard rows (not one that works on a credential after go-live, whose manifest's
# ``credential`` block is of another kind than "request"). One statement fewer per change of
# stage; SQLite's writers are serialized, so the order in which counters are locked, which
# PostgreSQL's batch at commit keeps (engine/dashboard/counts.py), does not arise. Created
# with the schema and by migration 0018.
SQLITE_COUNT_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS stage_count_follows_instance
AFTER UPDATE OF stage, portfolio_code, status ON process_instance
WHEN coalesce(OLD.version, 0) > 0 AND NEW.is_latest AND NEW.establishment_id IS NOT NULL
    AND (coalesce(OLD.stage, '') <> coalesce(NEW.stage, '')
         OR coalesce(OLD.portfolio_code, '') <> coalesce(NEW.portfolio_code, '')
         OR OLD.status IS NOT NEW.status)
    AND NOT EXISTS (
        SELECT 1 FROM process_definition d
        WHERE d.key = NEW.process_key
          AND json_type(d.manifest, '$.credential') = 'object'
          AND coalesce(json_extract(d.manifest, '$.credential.kind'), '') <> 'request'
    )
BEGIN
    INSERT INTO stage_count (org_id, uf, stage, portfolio_code, status, n)
    SELECT NEW.org_id, e.uf, coalesce(OLD.stage, ''), coalesce(OLD.portfolio_code, ''),
           OLD.status, -1
    FROM establishment e WHERE e.id = NEW.establishment_id
    ON CONFLICT (org_id, uf, stage, portfolio_code, status) DO UPDATE SET n = n + excluded.n;
    INSERT INTO stage_count (org_id, uf, stage, portfolio_code, status, n)
    SELECT NEW.org_id, e.uf, coalesce(NEW.stage, ''), coalesce(NEW.portfolio_code, ''),
           NEW.status, 1
    FROM establishment e WHERE e.id = NEW.establishment_id
    ON CONFLICT (org_id, uf, stage, portfolio_code, status) DO UPDATE SET n = n + excluded.n;
END"""
event.listen(
    ProcessInstance.__table__,
    "after_create",
    DDL(SQLITE_COUNT_TRIGGER).execute_if(dialect="sqlite"),
)
