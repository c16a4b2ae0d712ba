"""The Alembic migrations build exactly the models' schema, and downgrade cleanly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

import engine.models  # noqa: F401
from engine.audit.models import AuditEvent
from engine.db import Base, make_engine
from web.cli import alembic_config, upgrade_database


def test_upgrade_matches_models_and_downgrade_is_clean(empty_url):
    from alembic import command

    upgrade_database(empty_url)
    eng = make_engine(empty_url)
    try:
        with eng.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], diff
        command.downgrade(alembic_config(empty_url), "base")
        left = set(inspect(eng).get_table_names()) - {"alembic_version"}
        assert left == set()
        upgrade_database(empty_url)  # and up again
        assert set(Base.metadata.tables) <= set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def test_0004_flags_the_latest_instance_of_existing_data(empty_url):
    """Upgrading a populated 0003 database marks only the newest instance of each
    (establishment, process, portfolio) as the latest."""
    from alembic import command

    command.upgrade(alembic_config(empty_url), "0003")
    eng = make_engine(empty_url)
    now = "2026-01-01 00:00:00+00:00"
    try:
        with eng.begin() as conn:
            conn.execute(text(
                "INSERT INTO organization (id, slug, name, created_at) VALUES (1, 'o', 'O', :now)"
            ), {"now": now})  # fmt: skip
            conn.execute(text(
                "INSERT INTO process_definition (id, key, version, title, content_hash, bpmn_xml, "
                "files, manifest, source_path, deployed_at) "
                "VALUES (1, 'p', 1, 'P', 'h', '<x/>', '{}', '{}', 'p.bpmn', :now)"
            ), {"now": now})  # fmt: skip
            for est in (1, 2):
                conn.execute(text(
                    "INSERT INTO establishment (id, org_id, cnes, cnpj, razao_social, nome_fantasia,"
                    " uf, municipio, cep, endereco, telefone, email, created_at, updated_at) VALUES"
                    " (:id, 1, :cnes, '', 'E', '', 'PE', 'Recife', '', '', '', '', :now, :now)"
                ), {"id": est, "cnes": f"000000{est}", "now": now})  # fmt: skip
            # (id, establishment, portfolio, status)
            rows = [(1, 1, "REL", "completed"), (2, 1, "REL", "cancelled"), (3, 1, "REL", "running"),
                    (4, 1, "RIA", "completed"), (5, 2, "REL", "running")]  # fmt: skip
            for iid, est, code, status in rows:
                conn.execute(text(
                    "INSERT INTO process_instance (id, org_id, definition_id, process_key,"
                    " establishment_id, portfolio_code, status, stage, stage_since,"
                    " numero_solicitacao, identificador_solicitante, last_rejection_reason, state,"
                    " version, started_at, cancel_reason) VALUES (:id, 1, 1, 'p', :est, :code,"
                    " :status, '', :now, '', '', '', '{}', 1, :now, '')"
                ), {"id": iid, "est": est, "code": code, "status": status, "now": now})  # fmt: skip
        upgrade_database(empty_url)
        with eng.connect() as conn:
            latest = set(conn.scalars(text(
                "SELECT id FROM process_instance WHERE is_latest ORDER BY id"
            )))  # fmt: skip
            counted = set(conn.execute(text(
                "SELECT uf, stage, portfolio_code, status, n FROM stage_count"
            )).all())  # fmt: skip
        assert latest == {3, 4, 5}
        # Establishment 1: its running REL and its completed RIA; establishment 2: running REL.
        assert counted == {("PE", "", "REL", "running", 2), ("PE", "", "RIA", "completed", 1)}
    finally:
        eng.dispose()


def test_0005_keeps_older_events_verifiable(empty_url):
    """Upgrading a 0004 database rewrites each event's JSON data as the canonical text the
    chain hashes, so the events hashed before still verify (and their values are the same)."""
    import hashlib
    import json
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import Integer, String, column, table

    from engine.audit import verify as verification
    from engine.db import Database, JSONType, UTCDateTime

    command.upgrade(alembic_config(empty_url), "0004")
    events = table(
        "audit_event", column("chain", String), column("seq", Integer),
        column("at", UTCDateTime()), column("org_id", Integer), column("actor_id", Integer),
        column("actor", String), column("action", String), column("entity_type", String),
        column("entity_id", String), column("data", JSONType), column("prev_hash", String),
        column("hash", String),
    )  # fmt: skip
    datas = [{"b": [1, 2.5, None], "a": "ção 😀"}, {}, {"z": {"y": True, "x": '"aspas"'}}]
    prev, start, rows = "0" * 64, datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC), []
    for seq, data in enumerate(datas, 1):
        fields = {"chain": "system", "seq": seq, "at": start + timedelta(seconds=seq),
                  "org_id": None, "actor_id": None, "actor": "system", "action": "test.old",
                  "entity_type": "", "entity_id": "", "prev_hash": prev}  # fmt: skip
        body = json.dumps({**fields, "at": fields["at"].isoformat(timespec="microseconds"),
                           "data": data}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)  # fmt: skip
        prev = hashlib.sha256(body.encode()).hexdigest()
        rows.append({**fields, "data": data, "hash": prev})
    eng = make_engine(empty_url)
    try:
        with eng.begin() as conn:
            conn.execute(events.insert(), rows)
            conn.execute(text(
                "INSERT INTO audit_chain (key, last_seq, last_hash) VALUES ('system', 3, :h)"
            ), {"h": prev})  # fmt: skip
    finally:
        eng.dispose()
    upgrade_database(empty_url)
    db = Database(empty_url)
    try:
        with db.read() as s:
            report = verification.verify(s)
            kept = [e.data for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        assert report.ok and report.checked == 3, [str(b) for b in report.breaks]
        assert kept == datas
    finally:
        db.dispose()


def test_the_saved_state_is_compressed_with_lz4_on_postgresql(empty_url):
    """Migrated and created databases alike (0016 and the model's DDL): every change of an
    instance rewrites its state, and LZ4 costs the server about half of pglz's CPU."""
    if not empty_url.startswith("postgresql"):
        pytest.skip("SQLite has no column compression")
    upgrade_database(empty_url)
    eng = make_engine(empty_url)
    query = text(
        "SELECT attcompression FROM pg_attribute "
        "WHERE attrelid = 'process_instance'::regclass AND attname = 'state'"
    )
    try:
        with eng.connect() as conn:
            assert conn.scalar(query) == "l"
        with eng.begin() as conn:
            conn.execute(text("DROP TABLE process_instance CASCADE"))
            Base.metadata.tables["process_instance"].create(conn)
            assert conn.scalar(query) == "l"
    finally:
        eng.dispose()


def test_0017_and_0018_give_sqlite_the_triggers_the_models_create(empty_url, tmp_path):
    """Migrated databases get the triggers created ones get from the models' DDL (0017: the
    audit head; 0018: the dashboard's counters), with the same text; a downgrade takes each
    away (the code before it does their work itself)."""
    if not empty_url.startswith("sqlite"):
        pytest.skip("PostgreSQL does this work in its own statements")
    from alembic import command

    query = text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
    upgrade_database(empty_url)
    created_url = f"sqlite:///{tmp_path / 'created.db'}"
    created = make_engine(created_url)
    eng = make_engine(empty_url)
    try:
        Base.metadata.create_all(created)
        with created.connect() as conn:
            from_models = conn.execute(query).all()
        with eng.connect() as conn:
            assert conn.execute(query).all() == from_models
        assert [name for name, _sql in from_models] == [
            "audit_event_moves_head",
            "stage_count_follows_instance",
        ]
        command.downgrade(alembic_config(empty_url), "0017")
        with eng.connect() as conn:
            assert conn.scalars(query).all() == ["audit_event_moves_head"]
        command.downgrade(alembic_config(empty_url), "0016")
        with eng.connect() as conn:
            assert conn.scalars(query).all() == []
    finally:
        eng.dispose()
        created.dispose()
