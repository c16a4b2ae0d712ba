"""Credentials through the API, on both databases: the whole life of one — carried to
production, listed with its filters and counts, read with every field, its IP range changed,
transferred to another gestor, its certificate renewed, withdrawn, and a new credenciamento
for the same establishment starting fresh — and the refusals at the field (identificador,
child in another UF, non-member, certificate of another CNPJ, not in production), each
changing nothing; a gestor of another establishment is refused and audited; an auditor reads
but does not start."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.demo import samples
from engine.runtime.models import ProcessInstance
from tests.support.builders import Flow
from tests.support.flows import flow, to_production
from web.api import schemas

TOKEN = {"operacao": "/token", "metodo": "POST"}
API = "/api/v1"


class Api:
    """Calls as a named user of the world (``Gestor``, ``DATASUS``, ``admin``…)."""

    def __init__(self, client, users):
        self.client, self.users = client, users

    def get(self, url: str, who: str = "admin", expect: int = 200) -> Any:
        res = self.client.get(f"{API}{url}", headers=self.users[who].headers)
        assert res.status_code == expect, (url, res.status_code, res.json)
        return res.json

    def credential(self, cid: int, who: str = "admin") -> dict[str, Any]:
        return self.get(f"/credentials/{cid}", who)

    def start(self, process: str, cid: int, who: str = "Gestor", expect: int = 201, **extra):
        res = self.client.post(
            f"{API}/instances",
            json={"process": process, "credential": cid, **extra},
            headers=self.users[who].headers,
        )
        assert res.status_code == expect, (process, res.status_code, res.json)
        return res.json

    def walk(self, process: str, cid: int, who: str = "Gestor", **extra) -> Walk:
        return Walk(self, self.start(process, cid, who, **extra)["id"])


class Walk:
    def __init__(self, api: Api, instance_id: int):
        self.api, self.id = api, instance_id

    def ready(self) -> dict[str, dict]:
        items = self.api.get(f"/tasks?instance={self.id}&state=ready")["items"]
        return {t["element"]: t for t in items}

    def complete(self, element: str, data: dict, who: str | None = None, expect: int = 200):
        task = self.ready()[element]
        user = self.api.users[who or task["lane"]]
        res = self.api.client.post(
            f"{API}/tasks/{task['id']}/complete", json={"data": data}, headers=user.headers
        )
        assert res.status_code == expect, (element, res.status_code, res.json)
        return res.json

    def instance(self) -> dict:
        return self.api.get(f"/instances/{self.id}")


def _in_production(client, world) -> tuple[Flow, int]:
    f = flow(client, world)
    to_production(f)
    cid = f.instance()["credential"]
    assert cid is not None
    return f, cid


def _unchanged(before: dict, after: dict) -> None:
    for name in (
        "status",
        "ip_start",
        "ip_end",
        "gestor_name",
        "gestor_cpf",
        "gestor_email",
        "certificate",
        "request_numbers",
        "ended_on",
    ):
        assert after[name] == before[name], name


def _listed(api: Api, query: str, who: str = "admin") -> list[int]:
    return [c["id"] for c in api.get(f"/credentials?{query}", who)["items"]]


def test_the_whole_life_of_a_credential_through_the_api(client, world, make, db):
    users = world["users"]
    est = world["est"]
    users["novo gestor"] = make.user("sesa-pr", "gestor", est.cnes, email="novo@exemplo.gov.br")
    api = Api(client, users)
    f, cid = _in_production(client, world)
    assert f.instance()["status"] == "completed"

    # --- the list: filters and counts
    page = api.get("/credentials")
    assert page["total"] == 1 and page["next"] is None
    assert page["counts"]["producao"] == 1 and sum(page["counts"].values()) == 1
    assert set(page["counts"]) == set(schemas.CredentialStatus.__args__)
    item = page["items"][0]
    assert item["id"] == cid and item["status"] == "producao"
    assert item["status_label"] == "Produção" and item["in_progress"] == []
    assert item["establishment"] == {"cnes": est.cnes, "name": est.razao_social}
    requester = item["requester_id"]
    for query in (
        "status=producao",
        "portfolio=RIRA",
        "uf=PR",
        "uf=pr",
        "expiring_within_days=400",
        f"establishment={est.cnes[:4]}",
        f"establishment={est.razao_social.split()[0].lower()}",
        f"requester_id={requester}",
    ):
        assert _listed(api, query) == [cid], query
    for query in (
        "status=homologacao",
        "portfolio=REL",
        "uf=SC",
        "expiring_within_days=30",
        "establishment=Nenhum%20Lugar",
        "requester_id=99999",
    ):
        assert _listed(api, query) == [], query
    refused = client.get(
        f"{API}/credentials?expiring_within_days=4000", headers=users["admin"].headers
    )
    assert refused.status_code == 422 and "expiring_within_days" in refused.json["errors"]
    refused = client.get(f"{API}/credentials?status=ativa", headers=users["admin"].headers)
    assert refused.status_code == 422 and "status" in refused.json["errors"]
    refused = client.get(f"{API}/credentials?uf=Paraná", headers=users["admin"].headers)
    assert refused.status_code == 422 and "uf" in refused.json["errors"]

    # --- one credential, every field
    one = api.credential(cid)
    assert one["status"] == "producao" and one["status_label"] == "Produção"
    assert [h["status"] for h in one["history"]] == [
        "em_solicitacao",
        "homologacao",
        "em_analise_producao",
        "producao",
    ]
    assert one["history"][-1]["instance"] == f.instance_id
    assert one["homologation_on"] and one["production_on"] and one["status_since"]
    assert one["requester_id"] == requester and one["request_numbers"] == ["3804/2024"]
    assert one["operations"] and one["ip_start"] and one["ip_end"]
    assert one["system_name"] and one["system_version"]
    assert one["gestor_name"] and one["gestor_cpf"] and one["gestor_email"]
    assert (one["uf"], one["portfolio"], one["origin"]) == ("PR", "RIRA", "process")
    assert one["certificate"]["cnpj"] == est.cnpj and len(one["certificate"]["sha256"]) == 64
    assert one["certificate"]["not_after"]
    assert one["is_pec"] is False and one["ended_on"] is None and one["end_reason"] is None
    assert one["children"] == [] and one["children_count"] == 0
    assert [(i["id"], i["process"], i["kind"], i["status"]) for i in one["instances"]] == [
        (f.instance_id, "credenciamento-rnds", "request", "completed")
    ]
    assert one["instances"][0]["href"] == f"{API}/instances/{f.instance_id}"
    assert one["instances"][0]["ended_at"]
    starts = {s["process"]: s for s in one["starts"]}
    assert {
        "alteracao-credencial",
        "encerramento-credencial",
        "transferencia-titularidade",
        "renovacao-certificado",
    } <= set(starts)
    assert not any(s["blocked"] for s in starts.values())

    # --- change of the IP range: rejected first, adjusted, approved by DATASUS
    change = api.walk("alteracao-credencial", cid)
    assert change.instance()["credential"] == cid
    assert change.instance()["establishment"] == est.cnes  # derived from the credential
    busy = api.credential(cid)
    assert busy["in_progress"][0]["instance"] == change.id
    assert {s["process"]: s["blocked"] for s in busy["starts"]}["encerramento-credencial"]
    api.start("encerramento-credencial", cid, expect=409)  # one change at a time
    request = {
        "ip_inicial": "200.130.20.1",
        "ip_final": "200.130.20.30",
        "sistema_nome": one["system_name"],
        "sistema_versao": one["system_version"],
        "operacoes": [TOKEN],
        "filhos": [],
        "justificativa": "Novo provedor de internet.",
        "confirmacao": True,
    }
    change.complete("solicitar_alteracao", request)
    change.complete("avaliar_alteracao", {"decision": "reprovada", "motivo": "IP final errado."})
    _unchanged(one, api.credential(cid))
    adjust = api.get(f"/tasks/{change.ready()['ajustar_alteracao']['id']}", "Gestor")["data"]
    change.complete(
        "ajustar_alteracao", {**adjust, "decision": "ajustar", "ip_final": "200.130.20.9"}
    )
    _unchanged(one, api.credential(cid))  # the credential changes only on approval
    change.complete(
        "avaliar_alteracao",
        {"decision": "aprovada", "numero_solicitacao": "4836/2024", "operacoes_aprovadas": [TOKEN]},
    )
    changed = api.credential(cid)
    assert (changed["ip_start"], changed["ip_end"]) == ("200.130.20.1", "200.130.20.9")
    assert changed["request_numbers"] == ["3804/2024", "4836/2024"]
    assert changed["operations"] == [TOKEN] and changed["status"] == "producao"
    change.complete(
        "aplicar_alteracao_conector", {"data_aplicacao": "2026-03-20", "confirmacao": True}
    )
    assert change.instance()["status"] == "completed"

    # --- transfer to a non-member: refused at the field, nothing changed
    transfer = api.walk("transferencia-titularidade", cid)
    who = {"destino": "membro", "novo_gestor_nome": "João Souza",
           "novo_gestor_cpf": "390.533.447-05", "justificativa": "Troca de gestão.",
           "confirmacao": True}  # fmt: skip
    errors = transfer.complete(
        "indicar_novo_titular", {**who, "novo_gestor_email": "ninguem@exemplo.gov.br"}, expect=422
    )["errors"]
    assert set(errors) == {"novo_gestor_email"} and "membro" in errors["novo_gestor_email"]
    _unchanged(changed, api.credential(cid))
    # ... and to another gestor who is a member
    transfer.complete("indicar_novo_titular", {**who, "novo_gestor_email": "novo@exemplo.gov.br"})
    accept = transfer.ready()["aceitar_titularidade"]
    assert accept["assignee"] == "novo@exemplo.gov.br"
    transfer.complete(
        "aceitar_titularidade",
        {"decision": "aceita", "novo_gestor_telefone": "41999990000", "declaracao": True},
        who="novo gestor",
    )
    _unchanged(changed, api.credential(cid))
    transfer.complete("avaliar_transferencia", {"decision": "aprovada"})
    transferred = api.credential(cid)
    assert (
        transferred["gestor_name"],
        transferred["gestor_cpf"],
        transferred["gestor_email"],
    ) == ("João Souza", "39053344705", "novo@exemplo.gov.br")
    assert transferred["status"] == "producao" and transferred["ip_start"] == "200.130.20.1"

    # --- renewal of its certificate: another CNPJ refused at the field; one that outlasts
    renewal = api.walk("renovacao-certificado", cid)
    assert renewal.instance()["credential"] == cid
    other = f.upload(samples.demo_certificate("16727230000197", days=700), "outro.cer", "Gestor")
    errors = renewal.complete("obter_novo_certificado", {"novo_certificado": other}, expect=422)[
        "errors"
    ]
    assert set(errors) == {"novo_certificado"} and "CNPJ" in errors["novo_certificado"]
    _unchanged(transferred, api.credential(cid))
    new_file = f.upload(samples.demo_certificate(est.cnpj, days=700), "novo.cer", "Gestor")
    renewal.complete("obter_novo_certificado", {"novo_certificado": new_file})
    _unchanged(transferred, api.credential(cid))  # bound once the connector uses it
    renewal.complete(
        "atualizar_certificado_conector", {"data_atualizacao": "2026-11-21", "confirmacao": True}
    )
    assert renewal.instance()["status"] == "completed"
    renewed = api.credential(cid)
    new_sha = api.get(f"/establishments/{est.cnes}/certificates")["current"]["sha256"]
    assert renewed["certificate"]["sha256"] == new_sha != transferred["certificate"]["sha256"]
    assert renewed["certificate"]["not_after"] > transferred["certificate"]["not_after"]
    assert renewed["certificate"]["cnpj"] == est.cnpj
    assert _listed(api, "expiring_within_days=400") == []
    assert _listed(api, "expiring_within_days=800") == [cid]

    # --- withdrawal: asked by the gestor, approved by DATASUS, the integration switched off
    withdrawal = api.walk("encerramento-credencial", cid)
    withdrawal.complete(
        "solicitar_encerramento",
        {"motivo_encerramento": "Troca de sistema", "descricao": "Sistema estadual.",
         "data_encerramento": "2026-04-01", "ciencia": True},
    )  # fmt: skip
    withdrawal.complete(
        "avaliar_encerramento", {"decision": "aprovada", "data_encerramento_efetiva": "2026-04-01"}
    )
    withdrawal.complete(
        "desativar_integracao",
        {"data_desativacao": "2026-04-01", "conector_desativado": True,
         "certificado_removido": False},
    )  # fmt: skip
    assert withdrawal.instance()["status"] == "completed"
    ended = api.credential(cid)
    assert ended["status"] == "encerrada" and ended["status_label"] == "Encerrada"
    assert ended["ended_on"] == "2026-04-01" and ended["end_reason"] == "Troca de sistema"
    assert ended["starts"] == []
    assert [i["process"] for i in ended["instances"]] == [
        "credenciamento-rnds",
        "alteracao-credencial",
        "transferencia-titularidade",
        "renovacao-certificado",
        "encerramento-credencial",
    ]
    counts = api.get("/credentials")["counts"]
    assert counts["encerrada"] == 1 and counts["producao"] == 0

    # --- a change on it: not in production
    res = client.post(
        f"{API}/instances",
        json={"process": "alteracao-credencial", "credential": cid},
        headers=users["Gestor"].headers,
    )
    assert res.status_code == 422 and set(res.json["errors"]) == {"credential"}
    assert "Encerrada" in res.json["errors"]["credential"]
    assert api.credential(cid)["status"] == "encerrada"

    # --- a new credenciamento for the same CNES and portfolio starts fresh
    again = flow(client, world)
    assert again.instance()["credential"] is None
    for element in (
        "obter_certificado_digital",  # skipped: the establishment has a current certificate
        "criar_conta_govbr",
        "ambientar_servicos",
        "solicitar_acesso_homologacao",
    ):
        if element in again.ready_elements():
            again.complete(element)
    fresh_id = again.instance()["credential"]
    assert fresh_id not in (None, cid)
    fresh = api.credential(fresh_id)
    assert fresh["status"] == "em_solicitacao" and fresh["requester_id"] is None
    assert [i["id"] for i in fresh["instances"]] == [again.instance_id]
    assert api.credential(cid)["status"] == "encerrada"
    assert api.get("/credentials")["total"] == 2


def test_starting_on_a_credential_needs_an_establishment_or_the_credential(client, world):
    api = Api(client, world["users"])
    res = client.post(
        f"{API}/instances",
        json={"process": "credenciamento-rnds", "portfolio": "RIRA"},
        headers=world["users"]["admin"].headers,
    )
    assert res.status_code == 422 and res.json["errors"] == {"establishment": "Campo obrigatório."}
    # a credential that does not exist
    res = client.post(
        f"{API}/instances",
        json={"process": "alteracao-credencial", "credential": 999999},
        headers=world["users"]["admin"].headers,
    )
    assert res.status_code == 404
    api.get("/credentials/999999", expect=404)
    # a credenciamento does not take a credential
    _f, cid = _in_production(client, world)
    res = client.post(
        f"{API}/instances",
        json={"process": "credenciamento-rnds", "credential": cid},
        headers=world["users"]["admin"].headers,
    )
    assert res.status_code == 422 and set(res.json["errors"]) == {"credential"}
    # naming another establishment than the credential's
    other = client.post(
        f"{API}/instances",
        json={"process": "alteracao-credencial", "credential": cid, "establishment": "1234567"},
        headers=world["users"]["Gestor"].headers,
    )
    assert other.status_code == 422 and set(other.json["errors"]) == {"establishment"}


def test_a_duplicate_identificador_is_refused_at_the_field(client, cast, make, db):
    second = make.establishment(cast.org)
    users = cast.lanes
    both = {**users}
    first = {"est": cast.est, "users": users}
    f = flow(client, first)
    for element in (
        "obter_certificado_digital",
        "criar_conta_govbr",
        "ambientar_servicos",
        "solicitar_acesso_homologacao",
        "desenvolver_conector",
        "avaliar_solicitacao_acesso",
    ):
        f.complete(element)
    taken = Api(client, users).credential(f.instance()["credential"])
    assert taken["status"] == "homologacao"
    both["Gestor"] = make.user("sesa-pr", "gestor", second.cnes)
    both["Integrador"] = make.user("sesa-pr", "integrador", second.cnes)
    g = flow(client, {"est": second, "users": both})
    for element in (
        "obter_certificado_digital",
        "criar_conta_govbr",
        "ambientar_servicos",
        "solicitar_acesso_homologacao",
        "desenvolver_conector",
    ):
        g.complete(element)
    res = g.complete("avaliar_solicitacao_acesso", expect=422)
    errors = res.json["errors"]
    assert set(errors) == {"identificador_solicitante"}
    assert f"credencial nº {taken['id']}" in errors["identificador_solicitante"]
    mine = Api(client, both).credential(g.instance()["credential"])
    assert mine["status"] == "em_solicitacao" and mine["requester_id"] is None
    assert "avaliar_solicitacao_acesso" in g.ready_elements()


def test_a_child_in_another_uf_is_refused_at_the_field(client, world, make, db):
    far = make.establishment(world["org"], uf="SC", municipio="Florianópolis")
    near = make.establishment(world["org"])
    api = Api(client, world["users"])
    _f, cid = _in_production(client, world)
    before = api.credential(cid)
    change = api.walk("alteracao-credencial", cid)
    request = {
        "ip_inicial": before["ip_start"],
        "ip_final": before["ip_end"],
        "sistema_nome": before["system_name"],
        "sistema_versao": before["system_version"],
        "operacoes": [TOKEN],
        "justificativa": "Nova unidade.",
        "confirmacao": True,
    }
    errors = change.complete(
        "solicitar_alteracao", {**request, "filhos": [{"cnes": far.cnes}]}, expect=422
    )["errors"]
    assert set(errors) == {"filhos.0.cnes"} and "UF" in errors["filhos.0.cnes"]
    assert api.credential(cid)["children"] == []
    change.complete("solicitar_alteracao", {**request, "filhos": [{"cnes": near.cnes}]})
    assert api.credential(cid)["children"] == []
    change.complete(
        "avaliar_alteracao",
        {"decision": "aprovada", "numero_solicitacao": "4836/2024", "operacoes_aprovadas": [TOKEN]},
    )
    after = api.credential(cid)
    assert after["children"] == [{"cnes": near.cnes, "establishment_name": near.razao_social}]
    assert after["children_count"] == 1
    assert api.get("/credentials")["items"][0]["children_count"] == 1


def test_who_sees_and_who_starts(client, world, make, db):
    users = world["users"]
    other = make.establishment(world["org"])
    users["outro gestor"] = make.user("sesa-pr", "gestor", other.cnes)
    api = Api(client, users)
    _f, cid = _in_production(client, world)
    # a gestor of another establishment: refused, and the refusal is audited
    res = client.get(f"{API}/credentials/{cid}", headers=users["outro gestor"].headers)
    assert res.status_code == 403
    assert api.get("/credentials", "outro gestor")["items"] == []
    assert sum(api.get("/credentials", "outro gestor")["counts"].values()) == 0
    api.start("alteracao-credencial", cid, who="outro gestor", expect=403)
    with db.read() as s:
        denied = list(
            s.scalars(
                select(AuditEvent).where(
                    AuditEvent.entity_type == "credential", AuditEvent.entity_id == str(cid)
                )
            )
        )
    actions = [(e.action, e.actor) for e in denied]
    assert ("denied.credential.read", users["outro gestor"].email) in actions
    assert ("denied.instance.start", users["outro gestor"].email) in actions
    # the auditor reads everything, starts nothing
    assert _listed(api, "", "auditor") == [cid]
    read = api.credential(cid, "auditor")
    assert read["status"] == "producao" and read["starts"] == []
    api.start("alteracao-credencial", cid, who="auditor", expect=403)
    with db.read() as s:
        assert (
            s.scalar(
                select(ProcessInstance.id).where(
                    ProcessInstance.process_key == "alteracao-credencial"
                )
            )
            is None
        )
    # the gestor of the establishment sees it and what may start on it
    mine = api.credential(cid, "Gestor")
    assert {"alteracao-credencial", "encerramento-credencial"} <= {
        s["process"] for s in mine["starts"]
    }


@pytest.mark.parametrize("path", ["/credentials", "/credentials/1"])
def test_the_credentials_need_a_token(client, path):
    res = client.get(f"{API}{path}")
    assert res.status_code == 401 and res.headers["WWW-Authenticate"]
