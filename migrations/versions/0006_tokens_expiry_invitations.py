"""API tokens with an expiry; invitations to an organization

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-03 16:19:06
"""

from alembic import op
import sqlalchemy as sa
import engine.db
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column(
            "establishments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_by_id", sa.Integer(), nullable=True),
        sa.Column("cancelled_at", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["accepted_by_id"],
            ["user_account.id"],
            name=op.f("fk_invitation_accepted_by_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["user_account.id"],
            name=op.f("fk_invitation_invited_by_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_invitation_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitation_token_hash")),
    )
    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.create_index("ix_invitation_email", ["email"], unique=False)
        batch_op.create_index(
            "ix_invitation_org_pending", ["org_id", "accepted_at", "cancelled_at"], unique=False
        )

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expires_at", engine.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("expires_at")

    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.drop_index("ix_invitation_org_pending")
        batch_op.drop_index("ix_invitation_email")

    op.drop_table("invitation")
