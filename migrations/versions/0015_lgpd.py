"""LGPD: personal values of audit events moved to a per-subject vault; subject requests; the
access log of reads

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 03:55:00

Existing events are converted chain by chain (engine/audit/vault.py): each personal value of
an event's data is replaced by a salted commitment and stored encrypted under its subject's
key. Changing the data changes the event's hash and so every later hash of the chain: the
chain is therefore re-hashed from its first changed event, ONLY if it verified intact before
(a broken chain is left as it is, with its personal values, and named in the output: an
investigation must come first). At the end of each re-hashed chain an ``audit.rehashed``
event records the old head (seq and hash) and the migration, so anyone holding an old hash
can see where the chain was re-anchored; the chain's checkpoint is dropped, so the next
verification walks it from the start. docs/lgpd.md describes it.

Needs the master key (CREDENCIA_SECRET_KEY) the application uses: outside production the
local key file is used as by the app. Downgrading drops the vault: converted events keep
their commitments and lose the values (as if every subject had been erased).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _convert_events() -> None:
    from sqlalchemy import select, update
    from sqlalchemy.orm import Session

    from engine.audit import service as audit
    from engine.audit import verify as verification
    from engine.audit.canonical import canonical_json
    from engine.audit.models import AuditChain, AuditCheckpoint, AuditEvent
    from engine.audit import vault

    session = Session(bind=op.get_bind())
    if session.scalar(select(AuditEvent.id).limit(1)) is None:
        return
    for key in verification.chains(session):
        result = verification.verify_chain(session, key)
        if result.broken:
            print(f"0015: chain {key} is broken; its events were left unconverted")
            continue
        head = session.get(AuditChain, key)
        if head is None:
            continue
        old_seq, old_hash = head.last_seq, head.last_hash
        prev, changed, last = audit.GENESIS, 0, 0
        while True:
            rows = list(
                session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.chain == key, AuditEvent.seq > last)
                    .order_by(AuditEvent.seq)
                    .limit(1000)
                )
            )
            if not rows:
                break
            places = []
            for ev in rows:
                sealed, personal = vault.seal(ev.data)
                if personal:
                    places.append(vault.Placed(key, ev.seq, ev.entity_type, ev.entity_id, personal))
                if personal or changed or ev.prev_hash != prev:
                    text = canonical_json(sealed)
                    new_hash = audit.event_hash(
                        chain=key,
                        seq=ev.seq,
                        at=ev.at,
                        org_id=ev.org_id,
                        actor_id=ev.actor_id,
                        actor=ev.actor,
                        action=ev.action,
                        entity_type=ev.entity_type,
                        entity_id=ev.entity_id,
                        data=text,
                        prev_hash=prev,
                    )
                    session.execute(
                        update(AuditEvent)
                        .where(AuditEvent.id == ev.id)
                        .values(data=sealed, prev_hash=prev, hash=new_hash)
                    )
                    changed += 1
                    prev = new_hash
                else:
                    prev = ev.hash
                last = ev.seq
            vault.store(session, rows[0].org_id, places)
            session.expunge_all()
        if not changed:
            continue
        head = session.get(AuditChain, key)
        head.last_hash = prev
        session.flush()
        org_id = None if key == audit.SYSTEM_CHAIN else int(key.split(":", 1)[1])
        rehashed = audit.record(
            session,
            None,
            "audit.rehashed",
            org_id=org_id,
            entity_type="audit_chain",
            entity_id=key,
            data={
                "migration": "0015_lgpd",
                "old_head_seq": old_seq,
                "old_head_hash": old_hash,
                "events_rehashed": changed,
            },
        )
        audit.write_pending(session)  # (this session is never committed: append it now)
        # On SQLite the head follows an insert by a trigger, which comes with 0017: here the
        # head is moved by hand (on PostgreSQL the append moved it already).
        session.execute(
            update(AuditChain)
            .where(AuditChain.key == key)
            .values(last_seq=rehashed.seq, last_hash=rehashed.hash)
        )
        session.query(AuditCheckpoint).filter(AuditCheckpoint.chain == key).delete()
        session.flush()
    session.flush()


def upgrade() -> None:
    op.create_table(
        "access_chain",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_access_chain")),
    )
    op.create_table(
        "access_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("view", sa.String(length=60), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("chain", sa.String(length=40), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    op.create_index(
        "ix_access_log_entity", "access_log", ["entity_type", "entity_id"], unique=False
    )
    op.create_index("ix_access_log_org_at", "access_log", ["org_id", "at"], unique=False)
    op.create_index("ix_access_log_unsealed", "access_log", ["hash"], unique=False)
    op.create_table(
        "lgpd_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ident_kind", sa.String(length=16), nullable=False),
        sa.Column("ident_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("by", sa.String(length=254), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["by_id"],
            ["user_account.id"],
            name=op.f("fk_lgpd_request_by_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lgpd_request")),
    )
    op.create_index("ix_lgpd_request_ident", "lgpd_request", ["ident_hash"], unique=False)
    op.create_table(
        "lgpd_subject",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ident_hash", sa.String(length=64), nullable=True),
        sa.Column("wrapped_key", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erase_request_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["erase_request_id"],
            ["lgpd_request.id"],
            name=op.f("fk_lgpd_subject_erase_request_id_lgpd_request"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_lgpd_subject_org_id_organization"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lgpd_subject")),
        sa.UniqueConstraint("org_id", "ident_hash", name=op.f("uq_lgpd_subject_org_id")),
    )
    op.create_table(
        "lgpd_value",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("chain", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ident_hash", sa.String(length=64), nullable=True),
        sa.Column("ciphertext", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["lgpd_subject.id"], name=op.f("fk_lgpd_value_subject_id_lgpd_subject")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lgpd_value")),
    )
    op.create_index(
        "ix_lgpd_value_entity", "lgpd_value", ["entity_type", "entity_id"], unique=False
    )
    op.create_index("ix_lgpd_value_ident", "lgpd_value", ["ident_hash"], unique=False)
    op.create_index("ix_lgpd_value_subject", "lgpd_value", ["subject_id"], unique=False)
    op.create_table(
        "lgpd_anonymized",
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["process_instance.id"],
            name=op.f("fk_lgpd_anonymized_instance_id_process_instance"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_lgpd_anonymized")),
    )  # fmt: skip
    _convert_events()


def downgrade() -> None:
    op.drop_table("lgpd_anonymized")
    op.drop_index("ix_lgpd_value_subject", table_name="lgpd_value")
    op.drop_index("ix_lgpd_value_ident", table_name="lgpd_value")
    op.drop_index("ix_lgpd_value_entity", table_name="lgpd_value")
    op.drop_table("lgpd_value")
    op.drop_table("lgpd_subject")
    op.drop_index("ix_lgpd_request_ident", table_name="lgpd_request")
    op.drop_table("lgpd_request")
    op.drop_index("ix_access_log_unsealed", table_name="access_log")
    op.drop_index("ix_access_log_org_at", table_name="access_log")
    op.drop_index("ix_access_log_entity", table_name="access_log")
    op.drop_table("access_log")
    op.drop_table("access_chain")
