"""stored_file indexes for the unattached-upload quota and expiry

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-28 10:00:00
"""

from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stored_file", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stored_file_uploader_unattached", ["uploaded_by_id", "instance_id"], unique=False
        )
        batch_op.create_index(
            "ix_stored_file_instance_created", ["instance_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("stored_file", schema=None) as batch_op:
        batch_op.drop_index("ix_stored_file_instance_created")
        batch_op.drop_index("ix_stored_file_uploader_unattached")
