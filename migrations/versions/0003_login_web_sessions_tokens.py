"""login limits, web sessions, org-bound tokens, indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:36:44.569324
"""

from alembic import op
import sqlalchemy as sa
import engine.db
from sqlalchemy.dialects import sqlite

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "login_attempt",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("window_start", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "key_hash", name=op.f("pk_login_attempt")),
    )
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempt_last_attempt_at", ["last_attempt_at"], unique=False)

    op.create_table(
        "web_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential", sa.String(length=64), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_web_session_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_session")),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index("ix_web_session_expires_at", ["expires_at"], unique=False)
        batch_op.create_index("ix_web_session_user", ["user_id"], unique=False)

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("org_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_api_token_org_id_organization"),
            "organization",
            ["org_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_org_lane", ["org_id", "lane"], unique=False)
        batch_op.create_index(
            "ix_task_org_state_role_due", ["org_id", "state", "role", "due_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_org_state_role_due")
        batch_op.drop_index("ix_task_org_lane")

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_token_org_id_organization"), type_="foreignkey")
        batch_op.drop_column("org_id")

    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index("ix_web_session_user")
        batch_op.drop_index("ix_web_session_expires_at")

    op.drop_table("web_session")
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempt_last_attempt_at")

    op.drop_table("login_attempt")
