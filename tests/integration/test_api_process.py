"""The credentialing process end to end through the API, as the right role at each step."""

from __future__ import annotations

import pytest

from engine.audit import service as audit
from tests.builders import Flow


@pytest.fixture
def world(make, client):  # type: ignore[no-untyped-def]
    org = make.org()
    est = make.establishment(org, uf="PR")
    users = {
        "admin": make.user("sesa-pr", "admin"),
        "Gestor": make.user("sesa-pr", "gestor", est.cnes),
        "Integrador": make.user("sesa-pr", "integrador", est.cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
        "auditor": make.user("sesa-pr", "auditor"),
    }
    return {"org": org, "est": est, "users": users}


def start(client, world, portfolio="RIRA", as_="admin", expect=201):  # type: ignore[no-untyped-def]
    res = client.post(
        "/api/v1/instances",
        json={"process": "credenciamento-rnds", "establishment": world["est"].cnes, "portfolio": portfolio},
        headers=world["users"][as_].headers,
    )
    assert res.status_code == expect, res.json
    return res


def flow(client, world) -> Flow:  # type: ignore[no-untyped-def]
    res = start(client, world)
    ops = client.get("/api/v1/portfolios", headers=world["users"]["admin"].headers).json["items"]
    portfolio = next(p for p in ops if p["code"] == "RIRA")
    return Flow(client, world["users"], res.json["id"], world["est"], portfolio)


def test_happy_path_reaches_production(client, world, db):  # type: ignore[no-untyped-def]
    f = flow(client, world)
    inst = f.instance()
    assert inst["status"] == "running" and inst["stage"] == "Preparação" and inst["version"] == 1
    assert f.ready_elements() == {"obter_certificado_digital", "ambientar_servicos"}
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    f.complete("ambientar_servicos")
    f.complete("solicitar_acesso_homologacao")
    assert f.instance()["stage"] == "Solicitação em análise"
    f.complete("desenvolver_conector")
    f.complete("avaliar_solicitacao_acesso")
    inst = f.instance()
    assert inst["stage"] == "Homologação"
    assert inst["numero_solicitacao"] == "3804/2024" and inst["identificador_solicitante"] == "40111"
    f.complete("obter_dados_acesso")
    f.complete("verificar_conformidade")
    f.complete("registrar_evidencias")
    f.complete("solicitar_acesso_producao")
    assert f.instance()["stage"] == "Em análise para produção"
    f.complete("avaliar_solicitacao_producao")
    assert f.instance()["stage"] == "Produção"
    f.complete("colocar_em_producao")
    inst = f.instance()
    assert inst["status"] == "completed" and inst["stage"] == "Produção" and inst["tasks"] == []

    history = client.get(f"/api/v1/instances/{f.instance_id}/history", headers=world["users"]["auditor"].headers)
    actions = [e["action"] for e in history.json["items"]]
    assert actions[0] == "instance.started" and actions.count("task.completed") == 12
    with db.read() as s:
        checked, broken = audit.verify(s)
    assert broken is None and checked > 20
