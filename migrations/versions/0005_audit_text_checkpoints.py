"""audit data kept as the canonical text it was hashed over; verification checkpoints;
counters of unauthenticated API calls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00
"""

import json
import math
import re

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 5000
_SURROGATE = re.compile("[\ud800-\udfff]")


# engine/audit/canonical.py as of this revision (a migration must not change with the code).
def _key(key):  # type: ignore[no-untyped-def]
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return next(iter(json.loads(json.dumps({key: None}))))
    return str(key)


def _plain(value):  # type: ignore[no-untyped-def]
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
    if isinstance(value, dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _canonical(value) -> str:  # type: ignore[no-untyped-def]
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)  # fmt: skip
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _rewrite_data_as_canonical_text() -> None:
    """Each event's data becomes the text its hash is computed over: the same value, written
    as the chain writes it (the hashes of older events were computed over exactly that)."""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.text("SELECT id, data FROM audit_event WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            return
        changed = []
        for event_id, data in rows:
            text = _canonical(json.loads(data))
            if text != data:
                changed.append({"id": event_id, "data": text})
        if changed:
            conn.execute(sa.text("UPDATE audit_event SET data = :data WHERE id = :id"), changed)
        last = rows[-1][0]


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("chain", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_by", sa.String(length=254), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.Column("reached_seq", sa.BigInteger(), nullable=False),
        sa.Column("broken", sa.BigInteger(), nullable=False),
        sa.Column(
            "problems",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_checkpoint")),
    )
    op.create_table(
        "auth_failure_count",
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "window_start", "address_hash", "reason", name=op.f("pk_auth_failure_count")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "audit_event",
            "data",
            type_=sa.Text(),
            existing_type=postgresql.JSONB(astext_type=sa.Text()),
            existing_nullable=False,
            postgresql_using="data::text",
        )
    else:
        with op.batch_alter_table("audit_event", schema=None) as batch_op:
            batch_op.alter_column(
                "data", type_=sa.Text(), existing_type=sa.JSON(), existing_nullable=False
            )
    _rewrite_data_as_canonical_text()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "audit_event",
            "data",
            type_=postgresql.JSONB(astext_type=sa.Text()),
            existing_type=sa.Text(),
            existing_nullable=False,
            postgresql_using="data::jsonb",
        )
    else:
        with op.batch_alter_table("audit_event", schema=None) as batch_op:
            batch_op.alter_column(
                "data", type_=sa.JSON(), existing_type=sa.Text(), existing_nullable=False
            )
    op.drop_table("auth_failure_count")
    op.drop_table("audit_checkpoint")
