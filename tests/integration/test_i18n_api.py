"""The API in the language the client asks for (Accept-Language), Portuguese by default;
and the deploy's warnings for what a catalog lacks."""

from __future__ import annotations

import json
import shutil

from engine.runtime.install import install
from engine.settings import ROOT
from tests.support.flows import flow

EN = {"Accept-Language": "en-US,en;q=0.9"}


def _as(world, lane: str, **extra: str) -> dict[str, str]:
    return {**world["users"][lane].headers, **extra}


def test_a_task_in_english_name_form_and_validation_error(client, world) -> None:
    f = flow(client, world)
    f.complete("obter_certificado_digital")
    task = f.task("criar_conta_govbr")

    listed = client.get(
        f"/api/v1/tasks?instance={f.instance_id}&state=ready", headers=_as(world, "Gestor", **EN)
    )
    names = {t["element"]: (t["name"], t["stage"]) for t in listed.json["items"]}
    assert names["criar_conta_govbr"] == ("Create gov.br account", "Preparation")

    detail = client.get(f"/api/v1/tasks/{task['id']}", headers=_as(world, "Gestor", **EN))
    assert detail.status_code == 200 and detail.headers["Content-Language"] == "en"
    assert detail.json["name"] == "Create gov.br account"
    schema = detail.json["form"]["schema"]
    assert schema["title"] == "Create gov.br account"
    assert schema["description"] == (
        "A gov.br account is required to sign in to the DATASUS Services Portal."
    )
    level = schema["properties"]["nivel_conta"]
    assert level["title"] == "gov.br account level"
    assert level["enum"] == ["bronze", "prata", "ouro"]  # values do not change
    assert detail.json["form"]["ui"]["nivel_conta"]["ui:enumNames"] == ["Bronze", "Silver", "Gold"]

    refused = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {"cpf_responsavel": "111.444.777-00", "nivel_conta": "prata"}},
        headers=_as(world, "Gestor", **EN),
    )
    assert refused.status_code == 422
    errors = refused.json["errors"]
    assert errors["cpf_responsavel"] == "The CPF's check digits do not match."
    assert errors["conta_confirmada"] == "This option must be ticked."

    # Without Accept-Language (or asking for Portuguese) everything stays in Portuguese.
    same = client.get(f"/api/v1/tasks/{task['id']}", headers=_as(world, "Gestor"))
    assert same.json["name"] == "Criar conta gov.br"
    assert same.json["form"]["schema"]["properties"]["nivel_conta"]["title"] == (
        "Nível da conta gov.br"
    )
    again = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {"cpf_responsavel": "111.444.777-00", "nivel_conta": "prata"}},
        headers=_as(world, "Gestor", **{"Accept-Language": "pt-BR"}),
    )
    assert again.json["errors"]["cpf_responsavel"] == "Dígitos verificadores do CPF não conferem."


def test_the_instance_says_its_stage_in_english_with_the_same_etag(client, world) -> None:
    f = flow(client, world)
    url = f"/api/v1/instances/{f.instance_id}"
    english = client.get(url, headers=_as(world, "admin", **EN))
    portuguese = client.get(url, headers=_as(world, "admin"))
    assert english.json["stage"] == portuguese.json["stage"] == "Preparação"  # the filter value
    assert english.json["stage_label"] == "Preparation"
    assert portuguese.json["stage_label"] == "Preparação"
    assert {t["name"] for t in english.json["tasks"]} == {
        "Obtain digital certificate",
        "Get familiar with the services",
    }
    assert english.headers["ETag"] == portuguese.headers["ETag"]
    processes = client.get("/api/v1/processes", headers=_as(world, "admin", **EN)).json["items"]
    titles = {p["key"]: p["title"] for p in processes}
    assert titles["credenciamento-rnds"] == "RNDS credentialing"
    assert titles["habilitacao-pec-esus-aps"] == "Enabling the PEC e-SUS APS on the RNDS"
    listed = client.get("/api/v1/instances?org=sesa-pr", headers=_as(world, "admin", **EN))
    assert [i["stage_label"] for i in listed.json["items"]] == ["Preparation"]


def test_a_missing_translation_is_a_deploy_warning_and_the_deploy_goes_on(
    db, cli, tmp_path, monkeypatch
) -> None:
    from engine import settings as settings_mod

    procs = tmp_path / "processes"
    shutil.copytree(ROOT / "processes", procs)
    catalog = procs / "credenciamento-rnds" / "i18n" / "en.json"
    words = json.loads(catalog.read_text(encoding="utf-8"))
    del words["Criar conta gov.br"]
    catalog.write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    (procs / "encerramento-credencial" / "i18n" / "en.json").write_text("{", encoding="utf-8")

    done = install(db, procs)
    assert "credenciamento-rnds.bpmn: i18n/en.json: falta a tradução de “Criar conta gov.br”" in (
        done.warnings
    )
    assert any(
        w.startswith(
            "encerramento-credencial.bpmn: encerramento-credencial/i18n/en.json: "
            "catálogo ignorado, não é um JSON válido"
        )
        for w in done.warnings
    )
    deployed = {d.key: d for d in done.deployed}
    assert {"credenciamento-rnds", "encerramento-credencial"} <= set(deployed)
    assert "Criar conta gov.br" not in deployed["credenciamento-rnds"].files["i18n/en.json"]
    assert "i18n/en.json" not in deployed["encerramento-credencial"].files

    words["Criar conta gov.br"] = "Create a gov.br account"
    catalog.write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("CREDENCIA_PROCESSES_DIR", str(procs))
    monkeypatch.setattr(settings_mod, "_settings", None)
    out = cli("processes", "deploy")
    assert "credenciamento-rnds v3: nova versão" in out
    assert "aviso: encerramento-credencial.bpmn: encerramento-credencial/i18n/en.json" in out
    assert "falta a tradução" not in out
