"""SQLite: the audit chain's head moved by the events' insert itself

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 07:00:00

A trigger on ``audit_event`` moves its chain's head to each event inserted and refuses an
event that does not follow the head (engine/audit/models.py, ``SQLITE_HEAD_TRIGGER``): one
statement per append where there were two, as PostgreSQL's data-modifying WITH does. The
chains are unchanged. PostgreSQL: nothing to do.
"""

from alembic import op

from engine.audit.models import SQLITE_HEAD_TRIGGER

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_HEAD_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_event_moves_head")
