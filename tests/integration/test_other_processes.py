"""The PEC e-SUS APS enablement and the certificate renewal, end to end through the API."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select, text

from engine.access.actor import SYSTEM
from engine.certificates import service as certificates
from engine.credentials.models import Credential
from engine.db import Base
from engine.demo import samples
from engine.reminders import service as reminders
from engine.runtime import timers
from engine.runtime.models import ProcessInstance
from tests.support.builders import cast

SP = ZoneInfo("America/Sao_Paulo")


class Driver:
    def __init__(self, client, users, instance_id):
        self.client, self.users, self.instance_id = client, users, instance_id

    def ready(self) -> dict[str, dict]:
        items = self.client.get(
            f"/api/v1/tasks?instance={self.instance_id}&state=ready",
            headers=self.users["admin"].headers,
        ).json["items"]
        return {t["element"]: t for t in items}

    def detail(self, element: str, who: str) -> dict:
        return self.client.get(
            f"/api/v1/tasks/{self.ready()[element]['id']}", headers=self.users[who].headers
        ).json

    def complete(self, element: str, data: dict, who: str | None = None, expect: int = 200):
        task = self.ready()[element]
        user = self.users[who or task["lane"]]
        res = self.client.post(
            f"/api/v1/tasks/{task['id']}/complete", json={"data": data}, headers=user.headers
        )
        assert res.status_code == expect, (element, res.json)
        return res

    def upload(self, content: bytes, name: str, who: str, password: str | None = None) -> str:
        form = {"file": (io.BytesIO(content), name)} | ({"password": password} if password else {})
        res = self.client.post("/api/v1/files", headers=self.users[who].headers,
                               data=form, content_type="multipart/form-data")  # fmt: skip
        assert res.status_code == 201, res.json
        return res.json["id"]

    def instance(self) -> dict:
        return self.client.get(
            f"/api/v1/instances/{self.instance_id}", headers=self.users["admin"].headers
        ).json


@pytest.fixture
def pec(make, client):
    org = make.org()
    fms = make.establishment(
        org, razao_social="Fundo Municipal de Saúde de Londrina", municipio="Londrina"
    )
    users = {
        "admin": make.user("sesa-pr", "admin"),
        "Gestor Municipal": make.user("sesa-pr", "gestor_municipal", fms.cnes),
        "Administrador Municipal": make.user("sesa-pr", "admin_municipal", fms.cnes),
        "Administrador da Instalação": make.user("sesa-pr", "admin_instalacao", fms.cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
    }
    res = client.post("/api/v1/instances", json={"process": "habilitacao-pec-esus-aps", "establishment": fms.cnes},
                      headers=users["Gestor Municipal"].headers)  # fmt: skip
    assert res.status_code == 201, res.json
    return Driver(client, users, res.json["id"]), fms


def _token(day: str) -> dict:
    return {
        "token": "TKN-SEGREDO-9",
        "token_cpf": "39053344705",
        "token_nome": "Maria da Silva",
        "token_gerado_em": day,
    }


REQUEST = {"gerar_certificado_egestor": True, "estabelecimento_telefone": "4333334444",
           "estabelecimento_email": "fms@londrina.pr.gov.br", "ubs": [{"cnes": "2345678"}],
           "gestor_nome": "Maria da Silva", "gestor_cpf": "39053344705", "gestor_cns": "207284801600008",
           "gestor_email": "maria@londrina.pr.gov.br", "sistema_versao": "5.2.30", "aceite_termo": True}  # fmt: skip


def test_pec_end_to_end_with_secrets_same_cpf_and_rejection(pec, db, make):
    d, fms = pec
    today = datetime.now(SP).date().isoformat()
    d.complete("informar_situacao_certificado", {"possui_certificado_a1": False})
    assert set(d.ready()) == {"gerar_contra_chave", "gerar_token"}
    d.complete("gerar_token", _token(today), who="Administrador Municipal", expect=403)
    d.complete("gerar_contra_chave", {"contra_chave": "CC-SEGREDO-7"})
    d.complete("gerar_token", _token(today))
    shown = d.detail("solicitar_novo_credenciamento", "Gestor Municipal")["data"]
    assert shown["token"] == "TKN-SEGREDO-9" and shown["contra_chave"] == "CC-SEGREDO-7"
    masked = d.detail("solicitar_novo_credenciamento", "DATASUS")["data"]
    assert "SEGREDO" not in str(masked) and masked["token"]
    # Another CPF than the token's: back to the request, with the warning.
    d.complete(
        "solicitar_novo_credenciamento",
        {**REQUEST, "cpf_solicitante": "02474347100", "token": "FORJADO"},
    )
    again = d.detail("solicitar_novo_credenciamento", "Gestor Municipal")["data"]
    assert again.get("aviso_cpf_divergente") and again["token"] == "TKN-SEGREDO-9"
    d.complete("solicitar_novo_credenciamento", {**REQUEST, "cpf_solicitante": "39053344705"})
    d.complete(
        "registrar_credencial_gerada", {"decision": "reprovada", "motivo": "UBS de outra UF."}
    )
    assert d.instance()["stage"] == "Reprovada — ajuste pendente"
    d.complete("ajustar_solicitacao", {"decision": "ajustar"})
    d.complete("solicitar_novo_credenciamento", {**REQUEST, "cpf_solicitante": "39053344705"})
    cert = d.upload(samples.demo_certificate(fms.cnpj), "gerado.cer", "DATASUS")
    d.complete("registrar_credencial_gerada", {"decision": "aprovada", "identificador_solicitante": "50222",
                                               "certificado_gerado": cert})  # fmt: skip
    # The Chaves folder needs the .pfx with its key: a .cer is refused at the field, saying why.
    public = d.upload(
        samples.demo_certificate(fms.cnpj), "instalado.cer", "Administrador da Instalação"
    )
    refused = d.complete("instalar_certificado", {"sistema_operacional": "Linux", "certificado_instalado": public,
                                                  "pasta_chaves_linux": "/opt/e-SUS/webserver/Chaves",
                                                  "pasta_chaves_criada": True}, expect=422)  # fmt: skip
    assert "chave" in refused.json["errors"]["certificado_instalado"]
    installed = d.upload(samples.demo_pfx(fms.cnpj, "s3nha"), "instalado.pfx",
                         "Administrador da Instalação", password="s3nha")  # fmt: skip
    d.complete("instalar_certificado", {"sistema_operacional": "Linux", "certificado_instalado": installed,
                                        "pasta_chaves_linux": "/opt/e-SUS/webserver/Chaves",
                                        "pasta_chaves_criada": True})  # fmt: skip
    d.complete("habilitar_rnds_pec", {"identificador_solicitante": "50222", "data_inclusao": today,
                                      "validade_certificado": "2027-11-20", "senha_digitada_no_pec": True})  # fmt: skip
    inst = d.instance()
    assert inst["status"] == "completed" and inst["stage"] == "PEC habilitado"
    assert inst["identificador_solicitante"] == "50222"
    with db.read() as s:
        current = certificates.current(s, fms.id)
        assert current is not None
        # The PEC's credential: in production, identificador and the installed certificate.
        credential = s.get(Credential, s.get(ProcessInstance, d.instance_id).credential_id)
        assert (credential.status, credential.is_pec, credential.requester_id) == (
            "producao",
            True,
            "50222",
        )
        assert credential.production_on.isoformat() == today
        assert credential.certificate_sha256 == current.sha256
        assert [h["status"] for h in credential.history] == [
            "em_solicitacao",
            "homologacao",
            "producao",
        ]
        # No plaintext secret anywhere in the database.
        for table in Base.metadata.sorted_tables:
            for row in s.execute(text(f'SELECT * FROM "{table.name}"')):  # noqa: S608 (our table names)
                assert "SEGREDO" not in str(row), table.name


def test_pec_token_expires_at_2359_and_is_regenerated(pec, db, settings):
    d, _ = pec
    today = datetime.now(SP).date()
    d.complete("informar_situacao_certificado", {"possui_certificado_a1": True})
    d.complete("gerar_contra_chave", {"contra_chave": "CC-1"})
    d.complete("gerar_token", _token(today.isoformat()))
    assert "solicitar_novo_credenciamento" in d.ready()
    with db.read() as s:
        due = s.get(ProcessInstance, d.instance_id).next_timer_due_at
    assert due is not None and due.astimezone(SP).strftime("%H:%M") == "23:59"
    with time_machine.travel(due - timedelta(minutes=5)):
        assert timers.fire_due_timers(db).fired == 0
    with time_machine.travel(due + timedelta(minutes=1)):
        assert timers.fire_due_timers(db).fired == 1
        assert set(d.ready()) == {"gerar_novo_token"}
        assert timers.fire_due_timers(db).fired == 0  # once
    d.complete("gerar_novo_token", _token(today.isoformat()))
    assert "solicitar_novo_credenciamento" in d.ready()


def test_renewal_started_once_by_the_scheduler_and_new_certificate_becomes_current(
    make, client, db, settings
):
    people = cast(make, roles=("admin", "gestor", "integrador"))
    est, users = people.est, people.lanes
    d = Driver(client, users, 0)
    old_file = d.upload(samples.demo_certificate(est.cnpj, days=20), "atual.cer", "Gestor")
    with db.write() as s:
        old = certificates.register_stored(s, SYSTEM, est.id, old_file, settings=settings)
    for _ in range(2):  # a scheduler that runs twice starts one renewal
        reminders.remind_certificates(db, settings, now=datetime.now(UTC))
    with db.read() as s:
        started = s.scalars(
            select(ProcessInstance).where(ProcessInstance.process_key == "renovacao-certificado")
        ).all()
    assert len(started) == 1
    d.instance_id = started[0].id
    sooner = d.upload(samples.demo_certificate(est.cnpj, days=10), "pior.cer", "Gestor")
    res = d.complete("obter_novo_certificado", {"novo_certificado": sooner}, expect=422)
    assert "vence antes" in res.json["errors"]["novo_certificado"]
    other = d.upload(samples.demo_certificate("16727230000197", days=400), "outro.cer", "Gestor")
    res = d.complete("obter_novo_certificado", {"novo_certificado": other}, expect=422)
    assert "CNPJ" in res.json["errors"]["novo_certificado"]
    new_file = d.upload(samples.demo_certificate(est.cnpj, days=365), "novo.cer", "Gestor")
    d.complete("obter_novo_certificado", {"novo_certificado": new_file})
    with db.read() as s:
        current = certificates.current(s, est.id)
        assert current is not None and current.id != old.id and current.not_after > old.not_after
    d.complete(
        "atualizar_certificado_conector", {"data_atualizacao": "2026-11-21", "confirmacao": True}
    )
    assert d.instance()["status"] == "completed"
    reminders.remind_certificates(db, settings, now=datetime.now(UTC))
    with db.read() as s:
        again = s.scalars(
            select(ProcessInstance).where(ProcessInstance.process_key == "renovacao-certificado")
        ).all()
    assert len(again) == 1  # the old certificate no longer reminds or renews
