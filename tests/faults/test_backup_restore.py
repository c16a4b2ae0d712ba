"""Backup and restore as docs/operations.md says: ``pg_dump -Fc``, ``pg_restore`` into a fresh
database, ``credencia audit verify`` on the copy — and an instance continues there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.faults.consistency import check
from bench.load import harness
from engine.audit import service as audit
from engine.db import Database
from engine.establishments.service import get_portfolio
from engine.workflow import spiff
from tests.support.builders import LANE_ROLES, Flow, cast
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]


def _verify_cli(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "web.cli", "audit", "verify"],
        cwd=ROOT,
        env=harness.app_env(url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def restored_url():
    url = harness.create_database("credencia_test_restore")
    yield url
    harness.drop_database(url)


def test_a_dump_restored_into_a_fresh_database_verifies_and_its_instance_continues(
    make, db, client, settings, db_url, restored_url, tmp_path
) -> None:
    pg_dump, pg_restore = require_tool("pg_dump"), require_tool("pg_restore")
    people = cast(make, roles=LANE_ROLES)
    est, users = people.est, people.lanes
    res = client.post(
        "/api/v1/instances",
        json={"process": "credenciamento-rnds", "establishment": est.cnes, "portfolio": "RIRA"},
        headers=users["admin"].headers,
    )
    assert res.status_code == 201, res.json
    with db.read() as s:
        portfolio = get_portfolio(s, "RIRA").as_data()
    flow = Flow(client, users, res.json["id"], est, portfolio)
    for element in ("obter_certificado_digital", "criar_conta_govbr"):
        flow.complete(element)  # a certificate file and an encrypted-field-free step
    with db.read() as s:
        events, broken = audit.verify(s)
    assert broken is None

    dump = tmp_path / "credencia.dump"
    subprocess.run([pg_dump, "-Fc", "-d", db_url, "-f", str(dump)], check=True, timeout=120)
    subprocess.run(
        [pg_restore, "--no-owner", "-d", restored_url, str(dump)], check=True, timeout=120
    )

    verified = _verify_cli(restored_url)
    assert verified.returncode == 0, verified.stderr
    assert f"íntegra: {events} evento(s)" in verified.stdout

    # The restored copy serves the same tokens, files and instance; the next step completes.
    from web import create_app

    restored = Database(restored_url)
    restored.on_denied = audit.record_denial
    spiff.clear_cache()
    try:
        app = create_app(settings, restored)
        app.config["TESTING"] = True
        copy = Flow(app.test_client(), users, flow.instance_id, est, portfolio)
        copy.ctx.update(flow.ctx)  # the uploaded certificate's id is the same in the copy
        assert copy.ready_elements() == {"solicitar_acesso_homologacao", "ambientar_servicos"}
        copy.complete("solicitar_acesso_homologacao")
        assert "avaliar_solicitacao_acesso" in copy.ready_elements()
        report = check(restored)
        assert report.ok, report.lines()
        # the completion, the credential the access request brought into being, and the
        # acceptance of the term of use
        assert report.audit_events == events + 3
    finally:
        restored.dispose()
    assert _verify_cli(restored_url).returncode == 0
