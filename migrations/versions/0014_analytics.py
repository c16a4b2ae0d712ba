"""Process analytics: aggregates kept by the scheduler, watermark indexes on task

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 03:30:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import engine.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "analytics_bucket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("process_key", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("element_id", sa.String(length=100), nullable=False),
        sa.Column("lane", sa.String(length=100), nullable=False),
        sa.Column("uf", sa.String(length=2), nullable=False),
        sa.Column("municipio", sa.String(length=100), nullable=False),
        sa.Column("portfolio_code", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=60), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("sample", sa.Text(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("loops", sa.Integer(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("with_due", sa.Integer(), nullable=False),
        sa.Column("hist", JSON, nullable=False),
        sa.Column("claim_hist", JSON, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"],
                                name=op.f("fk_analytics_bucket_org_id_organization"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_bucket")),
        sa.UniqueConstraint("key", name=op.f("uq_analytics_bucket_key")),
    )  # fmt: skip
    with op.batch_alter_table("analytics_bucket", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analytics_bucket_read",
            ["org_id", "kind", "process_key", "municipio", "uf", "period"],
            unique=False,
        )
    op.create_table(
        "analytics_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("created_mark", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_mark", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analytics_state")),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_task_completed_at", ["completed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_completed_at")
        batch_op.drop_index("ix_task_created_at")
    op.drop_table("analytics_state")
    with op.batch_alter_table("analytics_bucket", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_bucket_read")
    op.drop_table("analytics_bucket")
