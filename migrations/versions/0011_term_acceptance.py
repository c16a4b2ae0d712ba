"""Who accepted which version of a process's term of use, when

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 23:50:00
"""

from alembic import op
import sqlalchemy as sa

import engine.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "term_acceptance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("term_id", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("file", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("accepted_by_id", sa.Integer(), nullable=True),
        sa.Column("accepted_by", sa.String(length=254), nullable=False),
        sa.Column("accepted_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["accepted_by_id"], ["user_account.id"],
                                name=op.f("fk_term_acceptance_accepted_by_id_user_account")),
        sa.ForeignKeyConstraint(["definition_id"], ["process_definition.id"],
                                name=op.f("fk_term_acceptance_definition_id_process_definition")),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instance.id"],
                                name=op.f("fk_term_acceptance_instance_id_process_instance"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"],
                                name=op.f("fk_term_acceptance_org_id_organization"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_term_acceptance")),
    )  # fmt: skip
    with op.batch_alter_table("term_acceptance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_term_acceptance_instance", ["instance_id", "accepted_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("term_acceptance", schema=None) as batch_op:
        batch_op.drop_index("ix_term_acceptance_instance")
    op.drop_table("term_acceptance")
