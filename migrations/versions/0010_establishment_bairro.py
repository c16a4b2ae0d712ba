"""The establishment register carries the bairro

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 21:05:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("establishment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bairro", sa.String(length=100), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("establishment", schema=None) as batch_op:
        batch_op.drop_column("bairro")
