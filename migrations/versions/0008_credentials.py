"""Credentials: the record of what each establishment holds with the RNDS

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03 20:30:00

Creates ``credential`` and ``credential_child``, links every process instance to the
credential it worked on (``process_instance.credential_id``), and creates the credentials of
the credenciamentos that already reached homologation or production (``backfill``).
"""

from alembic import op
import sqlalchemy as sa
import engine.db
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("establishment_id", sa.Integer(), nullable=False),
        sa.Column("portfolio_code", sa.String(length=40), nullable=False),
        sa.Column("uf", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("status_since", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("history", JSON, nullable=False),
        sa.Column("homologation_on", sa.Date(), nullable=True),
        sa.Column("production_on", sa.Date(), nullable=True),
        sa.Column("requester_id", sa.String(length=40), nullable=False),
        sa.Column("request_numbers", JSON, nullable=False),
        sa.Column("operations", JSON, nullable=False),
        sa.Column("ip_start", sa.String(length=45), nullable=False),
        sa.Column("ip_end", sa.String(length=45), nullable=False),
        sa.Column("system_name", sa.String(length=200), nullable=False),
        sa.Column("system_version", sa.String(length=60), nullable=False),
        sa.Column("gestor_name", sa.String(length=200), nullable=False),
        sa.Column("gestor_cpf", sa.String(length=11), nullable=False),
        sa.Column("gestor_email", sa.String(length=254), nullable=False),
        sa.Column("certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("certificate_cnpj", sa.String(length=14), nullable=False),
        sa.Column("certificate_not_after", engine.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_pec", sa.Boolean(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["establishment_id"], ["establishment.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("credential", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credential_establishment_id", ["establishment_id"], unique=False
        )
        batch_op.create_index("ix_credential_org_status", ["org_id", "status"], unique=False)
        batch_op.create_index(
            "ix_credential_org_requester",
            ["org_id", "portfolio_code", "uf", "requester_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_credential_org_cert_until", ["org_id", "certificate_not_after"], unique=False
        )
        batch_op.create_index(
            "uq_credential_open",
            ["org_id", "establishment_id", "portfolio_code"],
            unique=True,
            sqlite_where=sa.text("status <> 'encerrada'"),
            postgresql_where=sa.text("status <> 'encerrada'"),
        )
    op.create_table(
        "credential_child",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("cnes", sa.String(length=7), nullable=False),
        sa.Column("establishment_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["credential_id"], ["credential.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["establishment_id"], ["establishment.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("credential_child", schema=None) as batch_op:
        batch_op.create_index("uq_credential_child", ["credential_id", "cnes"], unique=True)
        batch_op.create_index("ix_credential_child_org_cnes", ["org_id", "cnes"], unique=False)
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_process_instance_credential_id", ["credential_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_process_instance_credential_id_credential", "credential", ["credential_id"], ["id"]
        )
    backfill()


def backfill() -> None:
    """The credentials of the credenciamentos that already reached homologation or
    production (filled in by the data migration below)."""


def downgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.drop_constraint("fk_process_instance_credential_id_credential", type_="foreignkey")
        batch_op.drop_index("ix_process_instance_credential_id")
        batch_op.drop_column("credential_id")
    with op.batch_alter_table("credential_child", schema=None) as batch_op:
        batch_op.drop_index("ix_credential_child_org_cnes")
        batch_op.drop_index("uq_credential_child")
    op.drop_table("credential_child")
    with op.batch_alter_table("credential", schema=None) as batch_op:
        batch_op.drop_index("uq_credential_open")
        batch_op.drop_index("ix_credential_org_cert_until")
        batch_op.drop_index("ix_credential_org_requester")
        batch_op.drop_index("ix_credential_org_status")
        batch_op.drop_index("ix_credential_establishment_id")
    op.drop_table("credential")
