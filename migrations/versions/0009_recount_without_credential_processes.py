"""Dashboard counters without the processes that work on a credential

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 20:30:00

The dashboard's rows are establishments with their credenciamentos; since 0008 a process
that works on a credential (change, withdrawal, transfer, renewal) shows on the row of the
credential instead of a row of its own. The stored counters (``stage_count``) counted those
instances (renewals started by the scheduler, above all): rebuilt here as
``engine.dashboard.counts.recompute`` builds them, with SQLAlchemy Core only.
"""

import json

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ON_A_CREDENTIAL = ("change", "withdrawal", "transfer", "renewal")

definition = sa.table(
    "process_definition", sa.column("key", sa.String), sa.column("manifest", sa.JSON)
)
organization = sa.table("organization", sa.column("id", sa.Integer))
establishment = sa.table(
    "establishment",
    sa.column("id", sa.Integer),
    sa.column("org_id", sa.Integer),
    sa.column("uf", sa.String),
)
instance = sa.table(
    "process_instance",
    sa.column("establishment_id", sa.Integer),
    sa.column("process_key", sa.String),
    sa.column("portfolio_code", sa.String),
    sa.column("stage", sa.String),
    sa.column("status", sa.String),
    sa.column("is_latest", sa.Boolean),
)
stage_count = sa.table(
    "stage_count",
    sa.column("org_id", sa.Integer),
    sa.column("uf", sa.String),
    sa.column("stage", sa.String),
    sa.column("portfolio_code", sa.String),
    sa.column("status", sa.String),
    sa.column("n", sa.Integer),
)


def _hidden(bind) -> list[str]:
    keys = set()
    for key, manifest in bind.execute(sa.select(definition.c.key, definition.c.manifest)):
        if isinstance(manifest, str):
            manifest = json.loads(manifest)
        block = (manifest or {}).get("credential") or {}
        if isinstance(block, dict) and block.get("kind") in ON_A_CREDENTIAL:
            keys.add(key)
    return sorted(keys)


def recount(hidden: list[str]) -> None:
    bind = op.get_bind()
    joined = sa.and_(
        instance.c.establishment_id == establishment.c.id, instance.c.is_latest.is_(True)
    )
    if hidden:
        joined = sa.and_(joined, instance.c.process_key.not_in(hidden))
    stage = sa.func.coalesce(instance.c.stage, "")
    code = sa.func.coalesce(instance.c.portfolio_code, "")
    status = sa.func.coalesce(instance.c.status, "none")
    for (org_id,) in bind.execute(sa.select(organization.c.id)).all():
        bind.execute(sa.delete(stage_count).where(stage_count.c.org_id == org_id))
        live = (
            sa.select(sa.literal(org_id), establishment.c.uf, stage, code, status, sa.func.count())
            .select_from(establishment)
            .outerjoin(instance, joined)
            .where(establishment.c.org_id == org_id)
            .group_by(establishment.c.uf, stage, code, status)
        )
        bind.execute(
            sa.insert(stage_count).from_select(
                ["org_id", "uf", "stage", "portfolio_code", "status", "n"], live
            )
        )


def upgrade() -> None:
    recount(_hidden(op.get_bind()))


def downgrade() -> None:
    recount([])
