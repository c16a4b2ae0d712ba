"""A workflow's saved state compressed with LZ4 on PostgreSQL

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 10:00:00

Every completion, timer and start writes the instance's whole state (~20 KB of JSON for a
credenciamento), which PostgreSQL compresses into TOAST; LZ4 does that in about half the
server CPU of the default pglz (engine/runtime/models.py sets it on new databases too).
Values already stored keep their compression until rewritten. A server built without LZ4
keeps pglz. SQLite: nothing to do.
"""

from alembic import op

from engine.runtime.models import STATE_LZ4

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(STATE_LZ4)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE process_instance ALTER COLUMN state SET COMPRESSION pglz")
