"""A portfolio may set the largest evidence file its forms take

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 23:50:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("portfolio", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_max_mb", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("portfolio", schema=None) as batch_op:
        batch_op.drop_column("evidence_max_mb")
