"""SQLite: the dashboard's counters moved by the instance's own UPDATE

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 10:00:00

A trigger on ``process_instance`` moves the dashboard's stage counters when a running
instance's stage, portfolio or status changes (engine/dashboard/models.py,
``SQLITE_COUNT_TRIGGER``), as the completion's own upsert at commit did: one statement fewer
per change of stage. The counters are unchanged. PostgreSQL: nothing to do.
"""

from alembic import op

from engine.dashboard.models import SQLITE_COUNT_TRIGGER

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_COUNT_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS stage_count_follows_instance")
