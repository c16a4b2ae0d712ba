"""The hash chain detects edits, deletions, reordering and a removed tail."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from engine import settings as settings_mod
from engine.audit import service as audit
from engine.audit.models import AuditEvent
from tests.integration.test_api_process import flow


@pytest.fixture
def chain(make, client, db):  # type: ignore[no-untyped-def]
    org = make.org()
    est = make.establishment(org)
    users = {
        "admin": make.user("sesa-pr", "admin"),
        "Gestor": make.user("sesa-pr", "gestor", est.cnes),
        "Integrador": make.user("sesa-pr", "integrador", est.cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
    }
    f = flow(client, {"est": est, "users": users})
    f.complete("ambientar_servicos")
    f.complete("desenvolver_conector")
    with db.read() as s:
        assert audit.verify(s)[1] is None
        return [
            e.id
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.chain == f"org:{org}").order_by(AuditEvent.seq)
            )
        ]


def _verify(db):  # type: ignore[no-untyped-def]
    with db.read() as s:
        return audit.verify(s)[1]


def _sql(db, statement: str, **params: object) -> None:  # type: ignore[no-untyped-def]
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_edit_is_detected(db, chain):  # type: ignore[no-untyped-def]
    _sql(db, "UPDATE audit_event SET actor = 'alguem@else' WHERE id = :id", id=chain[3])
    broken = _verify(db)
    assert broken is not None and broken.event_id == chain[3] and "alterado" in broken.problem


def test_edited_data_is_detected(db, chain):  # type: ignore[no-untyped-def]
    _sql(db, "UPDATE audit_event SET action = 'task.claimed' WHERE id = :id", id=chain[-2])
    assert _verify(db).event_id == chain[-2]


def test_deletion_is_detected(db, chain):  # type: ignore[no-untyped-def]
    _sql(db, "DELETE FROM audit_event WHERE id = :id", id=chain[2])
    broken = _verify(db)
    assert broken is not None and broken.event_id == chain[3]


def test_reorder_is_detected(db, chain):  # type: ignore[no-untyped-def]
    a, b = chain[1], chain[2]
    _sql(db, "UPDATE audit_event SET seq = -seq WHERE id IN (:a, :b)", a=a, b=b)
    _sql(
        db,
        "UPDATE audit_event SET seq = CASE WHEN id = :a THEN -seq + 1 ELSE -seq - 1 END WHERE id IN (:a, :b)",
        a=a,
        b=b,
    )
    assert _verify(db) is not None


def test_removed_tail_is_detected(db, chain):  # type: ignore[no-untyped-def]
    _sql(db, "DELETE FROM audit_event WHERE id = :id", id=chain[-1])
    broken = _verify(db)
    assert broken is not None and "cabeça" in broken.problem


def test_cli_verify_reports_first_broken_link(db, chain, db_url, monkeypatch):  # type: ignore[no-untyped-def]
    from web.cli import main

    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    ok = CliRunner().invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "íntegra" in ok.output
    _sql(db, "UPDATE audit_event SET data = :d WHERE id = :id", d='{"x": 1}', id=chain[4])
    bad = CliRunner().invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1 and f"evento {chain[4]}" in bad.output
