"""The processes after go-live (Alteração de credencial, Encerramento de credencial,
Transferência de titularidade) deployed by the engine and walked through the API, as a person
would, on both databases. Their paths are pinned in tests/unit/test_bpmn_after_golive.py; here
the deployed versions, the forms as the server validates them, the lanes, the stages and the
scheduler's timer column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.credentials import service as credentials
from engine.definitions import service as definitions
from engine.definitions.check import check_paths
from engine.runtime.models import ProcessInstance

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
NEW = {
    "alteracao-credencial": "change",
    "encerramento-credencial": "withdrawal",
    "transferencia-titularidade": "transfer",
}


def test_deployed_on_a_fresh_database(db):
    assert check_paths([PROCESSES]) == []
    deployed = {d.key: (d, created) for d, created in definitions.deploy_all(db, PROCESSES)}
    assert set(NEW) | {"renovacao-certificado"} <= set(deployed)
    for key, kind in NEW.items():
        definition, created = deployed[key]
        assert created and definition.version == 1
        assert definition.manifest["credential"]["kind"] == kind
        assert definition.manifest["per_portfolio"] is True
    assert deployed["renovacao-certificado"][0].manifest["credential"]["kind"] == "renewal"
    # unchanged content is not deployed again
    assert not any(created for _, created in definitions.deploy_all(db, PROCESSES))


class Walk:
    def __init__(self, client, users, process, cnes, credential):
        self.client, self.users = client, users
        res = client.post(
            "/api/v1/instances",
            json={
                "process": process,
                "establishment": cnes,
                "portfolio": "RIRA",
                "credential": credential,
            },  # fmt: skip
            headers=users["Gestor"].headers,
        )
        assert res.status_code == 201, res.json
        self.id = res.json["id"]
        assert res.json["portfolio"] == "RIRA"

    def ready(self) -> dict:
        items = self.client.get(
            f"/api/v1/tasks?instance={self.id}&state=ready", headers=self.users["admin"].headers
        ).json["items"]
        return {t["element"]: t for t in items}

    def detail(self, element: str) -> dict:
        task = self.ready()[element]
        return self.client.get(
            f"/api/v1/tasks/{task['id']}", headers=self.users[task["lane"]].headers
        ).json

    def complete(self, element, data, expect=200, who=None):
        task = self.ready()[element]
        res = self.client.post(
            f"/api/v1/tasks/{task['id']}/complete",
            json={"data": data},
            headers=self.users[who or task["lane"]].headers,
        )
        assert res.status_code == expect, (element, res.json)
        return res

    def instance(self) -> dict:
        return self.client.get(
            f"/api/v1/instances/{self.id}", headers=self.users["admin"].headers
        ).json

    def credential(self) -> dict:
        cid = self.instance()["credential"]
        res = self.client.get(f"/api/v1/credentials/{cid}", headers=self.users["admin"].headers)
        assert res.status_code == 200, res.json
        return res.json


def _world(make, db):
    """An establishment holding a production credential for RIRA (brought by a CSV import
    line: engine/credentials/service.register), its people, a child and one in another UF."""
    org = make.org()
    est = make.establishment(org)
    child = make.establishment(org)
    elsewhere = make.establishment(org, uf="SC", municipio="Florianópolis")
    users = {
        "admin": make.user("sesa-pr", "admin"),
        "Gestor": make.user("sesa-pr", "gestor", est.cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
        "Integrador": make.user("sesa-pr", "integrador", est.cnes),
        "novo gestor": make.user("sesa-pr", "gestor", est.cnes, email="novo@exemplo.gov.br"),
    }
    with db.write() as s:
        credential = credentials.register(
            s, users["admin"].actor, org_id=org, establishment_cnes=est.cnes,
            portfolio_code="RIRA", status="producao", requester_id="40111",
        )  # fmt: skip
        est.credential_id = credential.id
    return est, child, elsewhere, users


TOKEN = {"operacao": "/token", "metodo": "POST"}
BUNDLE = {"operacao": "/Bundle", "metodo": "POST"}


def test_change_through_the_api(make, client, db):
    est, child, elsewhere, users = _world(make, db)
    walk = Walk(client, users, "alteracao-credencial", est.cnes, est.credential_id)
    assert walk.instance()["stage"] == "Pedido de alteração"
    request = {
        "ip_inicial": "200.130.20.1",
        "ip_final": "200.130.20.30",
        "sistema_nome": "ProntoHosp",
        "sistema_versao": "5.0",
        "operacoes": [TOKEN, BUNDLE],
        "filhos": [{"cnes": child.cnes}],
        "justificativa": "Novo provedor de internet.",
        "confirmacao": True,
    }
    # refused at the field, nothing changed: a private IP, a child in another UF
    errors = walk.complete(
        "solicitar_alteracao",
        {**request, "ip_inicial": "192.168.0.1", "filhos": [{"cnes": elsewhere.cnes}]},
        expect=422,
    ).json["errors"]
    assert set(errors) == {"ip_inicial", "filhos.0.cnes"}
    # an operation the portfolio does not have
    other = {"operacao": "/fhir/r4/Nada", "metodo": "GET"}
    errors = walk.complete(
        "solicitar_alteracao", {**request, "operacoes": [other]}, expect=422
    ).json["errors"]
    assert set(errors) == {"operacoes.0"}
    # only the gestor's lane may file it
    walk.complete("solicitar_alteracao", request, who="Integrador", expect=403)
    walk.complete("solicitar_alteracao", request)
    assert walk.instance()["stage"] == "Alteração em análise"
    avaliar = walk.detail("avaliar_alteracao")
    assert avaliar["lane"] == "DATASUS"
    assert avaliar["data"]["operacoes_aprovadas"] == [TOKEN, BUNDLE]
    assert (
        "Faixa de IPs: nenhuma → 200.130.20.1 a 200.130.20.30"
        in avaliar["data"]["resumo_alteracao"]
    )
    walk.complete("avaliar_alteracao", {"decision": "reprovada"}, expect=422)
    walk.complete("avaliar_alteracao", {"decision": "reprovada", "motivo": "IP final errado."})
    assert walk.instance()["stage"] == "Reprovada — ajuste pendente"
    with db.read() as s:  # the 30-day timer is in the scheduler's column
        due = s.get(ProcessInstance, walk.id).next_timer_due_at
    assert due is not None
    assert abs(due - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    ajustar = walk.detail("ajustar_alteracao")
    assert ajustar["data"]["motivo_reprovacao"] == "IP final errado."
    assert ajustar["data"]["ip_final"] == "200.130.20.30"
    walk.complete("ajustar_alteracao", {**ajustar["data"], "decision": "ajustar",
                                         "ip_final": "200.130.20.9"})  # fmt: skip
    with db.read() as s:
        assert s.get(ProcessInstance, walk.id).next_timer_due_at is None
    walk.complete(
        "avaliar_alteracao",
        {"decision": "aprovada", "numero_solicitacao": "4836/2024", "operacoes_aprovadas": [TOKEN]},
    )
    assert walk.instance()["stage"] == "Aplicação no conector"
    walk.complete(
        "aplicar_alteracao_conector", {"data_aplicacao": "2026-03-20", "confirmacao": True}
    )
    inst = walk.instance()
    assert inst["status"] == "completed" and inst["stage"] == "Alteração aprovada"
    credential = walk.credential()
    assert inst["credential"] == est.credential_id and credential["status"] == "producao"
    assert (credential["ip_start"], credential["ip_end"]) == ("200.130.20.1", "200.130.20.9")
    assert (credential["system_name"], credential["system_version"]) == ("ProntoHosp", "5.0")
    assert credential["operations"] == [TOKEN] and credential["request_numbers"] == ["4836/2024"]
    assert [c["cnes"] for c in credential["children"]] == [child.cnes]


def test_change_given_up_through_the_api(make, client, db):
    est, _child, _elsewhere, users = _world(make, db)
    walk = Walk(client, users, "alteracao-credencial", est.cnes, est.credential_id)
    walk.complete(
        "solicitar_alteracao",
        {"sistema_nome": "ProntoHosp", "sistema_versao": "5.1", "operacoes": [TOKEN],
         "ip_inicial": "200.130.20.1", "ip_final": "200.130.20.30",  # always asked (issue 14.6)
         "justificativa": "Nova versão.", "confirmacao": True},
    )  # fmt: skip
    walk.complete(
        "avaliar_alteracao", {"decision": "reprovada", "motivo": "Versão sem homologação."}
    )
    walk.complete("ajustar_alteracao", {"decision": "desistir", "motivo": "Fica a versão atual."})
    inst = walk.instance()
    assert inst["status"] == "completed" and inst["stage"] == "Alteração abandonada"
    assert walk.credential()["system_version"] is None  # given up: nothing changed


def test_withdrawal_through_the_api(make, client, db):
    est, _child, _elsewhere, users = _world(make, db)
    walk = Walk(client, users, "encerramento-credencial", est.cnes, est.credential_id)
    assert set(walk.ready()) == {"solicitar_encerramento"}  # the establishment asks
    walk.complete(
        "solicitar_encerramento",
        {"motivo_encerramento": "Troca de sistema", "descricao": "Sistema estadual.",
         "data_encerramento": "2026-04-01", "ciencia": True},
    )  # fmt: skip
    assert walk.instance()["stage"] == "Encerramento em análise"
    assert walk.detail("avaliar_encerramento")["data"]["data_encerramento_efetiva"] == "2026-04-01"
    walk.complete(
        "avaliar_encerramento", {"decision": "aprovada", "data_encerramento_efetiva": "2026-04-01"}
    )
    walk.complete(
        "desativar_integracao",
        {"data_desativacao": "2026-04-01", "conector_desativado": True,
         "certificado_removido": False},
    )  # fmt: skip
    inst = walk.instance()
    assert inst["status"] == "completed" and inst["stage"] == "Credencial encerrada"
    credential = walk.credential()
    assert credential["status"] == "encerrada" and credential["ended_on"] == "2026-04-01"
    assert credential["end_reason"] == "Troca de sistema"


def test_transfer_through_the_api(make, client, db):
    est, _child, _elsewhere, users = _world(make, db)
    walk = Walk(client, users, "transferencia-titularidade", est.cnes, est.credential_id)
    bad = walk.complete(
        "indicar_novo_titular",
        {"destino": "outra_organizacao", "novo_gestor_nome": "João Souza",
         "novo_gestor_cpf": "123", "novo_gestor_email": "novo@exemplo.gov.br",
         "justificativa": "Troca de gestão.", "confirmacao": True},
        expect=422,
    ).json["errors"]  # fmt: skip
    assert set(bad) == {"novo_gestor_cpf", "organizacao_destino"}
    walk.complete(
        "indicar_novo_titular",
        {"destino": "membro", "novo_gestor_nome": "João Souza",
         "novo_gestor_cpf": "390.533.447-05", "novo_gestor_email": "novo@exemplo.gov.br",
         "justificativa": "Troca de gestão.", "confirmacao": True},
    )  # fmt: skip
    assert walk.instance()["stage"] == "Aguardando aceite"
    walk.complete(
        "aceitar_titularidade",
        {"decision": "aceita", "novo_gestor_telefone": "41999990000", "declaracao": True},
        who="novo gestor",
    )
    assert walk.instance()["stage"] == "Transferência em análise"
    avaliar = walk.detail("avaliar_transferencia")
    assert avaliar["data"]["novo_gestor_cpf"] == "39053344705"
    walk.complete("avaliar_transferencia", {"decision": "aprovada"})
    inst = walk.instance()
    assert inst["status"] == "completed" and inst["stage"] == "Titularidade transferida"
    credential = walk.credential()
    assert (credential["gestor_name"], credential["gestor_cpf"], credential["gestor_email"]) == (
        "João Souza",
        "39053344705",
        "novo@exemplo.gov.br",
    )
    assert credential["status"] == "producao"
