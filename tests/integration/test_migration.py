"""Migrating running instances between process versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.definitions import service as definitions
from engine.errors import Conflict, Forbidden
from engine.runtime import migration
from tests.support.builders import LANE_ROLES, cast
from tests.support.flows import flow


def _version(db, settings, tmp_path: Path, name: str, *edits: tuple[str, str]) -> int:
    folder = tmp_path / name
    shutil.copytree(settings.processes_dir, folder)
    bpmn = folder / "credenciamento-rnds.bpmn"
    text = bpmn.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    bpmn.write_text(text, encoding="utf-8")
    [(definition, created)] = [
        r for r in definitions.deploy_all(db, folder) if r[0].key == "credenciamento-rnds"
    ]
    assert created
    return definition.version


@pytest.fixture
def running(make, client):
    people = cast(make, roles=LANE_ROLES)
    est, users = people.est, people.lanes
    f = flow(client, {"est": est, "users": users})
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    f.complete("solicitar_acesso_homologacao")
    return f


def test_migrated_instance_continues_on_the_new_version(db, settings, tmp_path, running):
    v2 = _version(
        db,
        settings,
        tmp_path,
        "v2",
        ('name="Desenvolver conector"', 'name="Desenvolver o conector RNDS"'),
    )
    admin = running.users["admin"].actor
    before = {t["element"]: t["id"] for t in running.ready()}
    with db.write() as s:
        result = migration.migrate(s, admin, running.instance_id, v2)
    assert result.from_version == 1 and result.to_version == 2
    assert running.instance()["version"] == 2
    after = {t["element"]: t["id"] for t in running.ready()}
    assert after == before  # active tasks keep their ids (claims, due dates, links stay valid)
    running.complete("ambientar_servicos")
    assert "Desenvolver o conector RNDS" in {t["name"] for t in running.ready()}
    running.complete("avaliar_solicitacao_acesso")
    running.complete("desenvolver_conector")
    running.complete("obter_dados_acesso")
    assert "verificar_conformidade" in running.ready_elements()
    history = running.client.get(
        f"/api/v1/instances/{running.instance_id}/history", headers=running.users["admin"].headers
    )
    assert "instance.migrated" in [e["action"] for e in history.json["items"]]


def test_migration_refused_when_an_active_element_is_missing(db, settings, tmp_path, running):
    v2 = _version(db, settings, tmp_path, "v2", ("ambientar_servicos", "ambientar_servicos_novo"))
    admin = running.users["admin"].actor
    with db.read() as s:
        plan = migration.plan(s, admin, running.instance_id, v2)
    assert not plan.possible
    assert any(
        "'Ambientar com serviços' (ambientar_servicos) não existe na versão 2" in r
        for r in plan.reasons
    )
    with pytest.raises(Conflict, match="recusada"), db.write() as s:
        migration.migrate(s, admin, running.instance_id, v2)
    assert running.instance()["version"] == 1


def test_a_renamed_element_already_passed_is_aligned(db, settings, tmp_path, running):
    # Only the history went through it: SpiffWorkflow aligns it by its neighbours and the
    # instance keeps loading and running on the new version.
    v2 = _version(db, settings, tmp_path, "v2", ("criar_conta_govbr", "criar_conta_gov"))
    admin = running.users["admin"].actor
    with db.read() as s:
        assert migration.plan(s, admin, running.instance_id, v2).possible
    with db.write() as s:
        migration.migrate(s, admin, running.instance_id, v2)
    running.complete("avaliar_solicitacao_acesso")
    assert "obter_dados_acesso" in running.ready_elements()


def test_only_admins_migrate(db, settings, tmp_path, running):
    v2 = _version(
        db, settings, tmp_path, "v2", ('name="Desenvolver conector"', 'name="Outro nome"')
    )
    with pytest.raises(Forbidden), db.write() as s:
        migration.migrate(s, running.users["Gestor"].actor, running.instance_id, v2)


def test_api_plan_and_bulk_cli(db, settings, tmp_path, running, client, db_url, monkeypatch):
    from click.testing import CliRunner

    from engine import settings as settings_mod
    from web.cli import main

    v2 = _version(db, settings, tmp_path, "v2", ("ambientar_servicos", "ambientar_servicos_novo"))
    admin = running.users["admin"].headers
    url = f"/api/v1/instances/{running.instance_id}"
    plan = client.get(f"{url}/migration?version={v2}", headers=admin)
    assert plan.status_code == 200 and plan.json["possible"] is False and plan.json["reasons"]
    assert client.post(f"{url}/migrate", json={"version": v2}, headers=admin).status_code == 409
    assert client.post(f"{url}/migrate", json={"version": "x"}, headers=admin).status_code == 422
    assert client.post(f"{url}/migrate", json={"version": 99}, headers=admin).status_code == 422
    assert (
        client.post(
            f"{url}/migrate", json={"version": v2}, headers=running.users["Gestor"].headers
        ).status_code
        == 403
    )
    v3 = _version(
        db,
        settings,
        tmp_path,
        "v3",
        ('name="Desenvolver conector"', 'name="Desenvolver o conector"'),
    )
    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    out = CliRunner().invoke(
        main, ["instances", "migrate", "--process", "credenciamento-rnds", "--to", str(v3)]
    )
    assert out.exit_code == 0, out.output
    assert f"instância {running.instance_id}: migrada" in out.output
    assert running.instance()["version"] == v3
