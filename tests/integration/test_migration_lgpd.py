"""0015 moves the personal values of existing audit events into the vault and re-hashes the
chain so it still verifies, recording where it was re-anchored; a broken chain is left
alone (re-hashing it would hide the tampering)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import Integer, String, column, select, table, text

from engine.audit import service as audit
from engine.audit import vault
from engine.audit import verify as verification
from engine.audit.canonical import canonical_json
from engine.audit.models import AuditEvent
from engine.db import Database, UTCDateTime, make_engine
from web.cli import alembic_config, upgrade_database

EVENTS = table(
    "audit_event", column("chain", String), column("seq", Integer), column("at", UTCDateTime()),
    column("org_id", Integer), column("actor_id", Integer), column("actor", String),
    column("action", String), column("entity_type", String), column("entity_id", String),
    column("data", String), column("prev_hash", String), column("hash", String),
)  # fmt: skip


def _chain(conn, key: str, datas: list[dict], *, tamper: bool = False) -> str:
    prev, start = audit.GENESIS, datetime(2026, 1, 1, 12, tzinfo=UTC)
    for seq, data in enumerate(datas, 1):
        fields = {"chain": key, "seq": seq, "at": start + timedelta(seconds=seq), "org_id": None,
                  "actor_id": None, "actor": "system", "action": "test.old", "entity_type": "",
                  "entity_id": "", "data": canonical_json(data), "prev_hash": prev}  # fmt: skip
        fields["hash"] = prev = audit.event_hash(**fields)
        if tamper and seq == 1:
            fields["data"] = canonical_json({**data, "x": 1})
        conn.execute(EVENTS.insert(), [fields])
    conn.execute(
        text("INSERT INTO audit_chain (key, last_seq, last_hash) VALUES (:k, :n, :h)"),
        {"k": key, "n": len(datas), "h": prev},
    )
    return prev


def test_0015_seals_personal_values_and_keeps_chains_verifiable(empty_url):
    command.upgrade(alembic_config(empty_url), "0012")
    datas = [
        {"note": "sem dados pessoais"},
        {
            "data": {
                "gestor_cpf": "39053344705",
                "gestor_nome": "Maria da Silva",
                "gestor_email": "maria@exemplo.gov.br",
                "sistema_nome": "Lab",
            }
        },  # fmt: skip
        {"reason": "CPF 390.533.447-05 divergente"},
    ]
    eng = make_engine(empty_url)
    try:
        with eng.begin() as conn:
            old_head = _chain(conn, "system", datas)
            _chain(
                conn, "broken", [{"gestor_cpf": "39053344705", "gestor_nome": "Ana"}], tamper=True
            )
    finally:
        eng.dispose()
    upgrade_database(empty_url)
    db = Database(empty_url)
    try:
        with db.read() as s:
            system = verification.verify_chain(s, "system")
            assert not system.broken and system.checked == 4
            rows = list(s.scalars(select(AuditEvent).where(AuditEvent.chain == "system")
                                  .order_by(AuditEvent.seq)))  # fmt: skip
            stored = json.dumps([r.data for r in rows])
            assert "39053344705" not in stored and "Maria" not in stored and "447-05" not in stored
            assert rows[0].data == datas[0]  # untouched
            assert rows[1].data["data"]["sistema_nome"] == "Lab"
            assert vault.reveal_all(s, [r.data for r in rows[:3]]) == datas
            anchor = rows[3]
            assert anchor.action == "audit.rehashed"
            assert anchor.data["old_head_hash"] == old_head and anchor.data["old_head_seq"] == 3
            broken = list(s.scalars(select(AuditEvent).where(AuditEvent.chain == "broken")))
            assert broken[0].data["gestor_cpf"] == "39053344705"  # left for the investigation
            assert verification.verify_chain(s, "broken").broken == 1
    finally:
        db.dispose()
