"""latest-instance flag, dashboard counters (stage_count), dashboard order index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 02:40:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_latest", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    # Every instance that has a newer one of the same establishment, process and portfolio
    # stops being the latest.
    op.execute(
        "UPDATE process_instance SET is_latest = false WHERE EXISTS ("
        " SELECT 1 FROM process_instance newer"
        " WHERE newer.establishment_id = process_instance.establishment_id"
        " AND newer.process_key = process_instance.process_key"
        " AND newer.portfolio_code = process_instance.portfolio_code"
        " AND newer.id > process_instance.id)"
    )
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.create_index(
            "uq_process_instance_latest",
            ["establishment_id", "process_key", "portfolio_code"],
            unique=True,
            sqlite_where=sa.text("is_latest"),
            postgresql_where=sa.text("is_latest"),
        )

    with op.batch_alter_table("establishment", schema=None) as batch_op:
        batch_op.drop_index("ix_establishment_org_uf_municipio")
        batch_op.create_index(
            "ix_establishment_org_order",
            ["org_id", "uf", "municipio", "razao_social", "id"],
            unique=False,
        )
    op.create_table(
        "stage_count",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("uf", sa.String(length=2), nullable=False),
        sa.Column("stage", sa.String(length=60), nullable=False),
        sa.Column("portfolio_code", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_stage_count_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "uf", "stage", "portfolio_code", "status", name=op.f("pk_stage_count")
        ),
    )
    # The counters of the existing rows (engine/runtime/counts.py recompute, for every org).
    op.execute(
        "INSERT INTO stage_count (org_id, uf, stage, portfolio_code, status, n)"
        " SELECT e.org_id, e.uf, coalesce(p.stage, ''), coalesce(p.portfolio_code, ''),"
        " coalesce(p.status, 'none'), count(*)"
        " FROM establishment e LEFT JOIN process_instance p"
        " ON p.establishment_id = e.id AND p.is_latest"
        " GROUP BY e.org_id, e.uf, coalesce(p.stage, ''), coalesce(p.portfolio_code, ''),"
        " coalesce(p.status, 'none')"
    )


def downgrade() -> None:
    op.drop_table("stage_count")
    with op.batch_alter_table("establishment", schema=None) as batch_op:
        batch_op.drop_index("ix_establishment_org_order")
        batch_op.create_index(
            "ix_establishment_org_uf_municipio", ["org_id", "uf", "municipio"], unique=False
        )
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_process_instance_latest",
            sqlite_where=sa.text("is_latest"),
            postgresql_where=sa.text("is_latest"),
        )
        batch_op.drop_column("is_latest")
