"""Accounts: CPF (OpenID sign-in), deactivation time, TOTP second factor

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 03:20:00
"""

from alembic import op
import sqlalchemy as sa

import engine.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpf", sa.String(length=11), nullable=True))
        batch_op.add_column(
            sa.Column("deactivated_at", engine.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_user_account_cpf"), ["cpf"])


def downgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_user_account_cpf"), type_="unique")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("deactivated_at")
        batch_op.drop_column("cpf")
