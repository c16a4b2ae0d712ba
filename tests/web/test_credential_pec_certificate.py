"""The PEC's "Desabilitar certificado" (seed 004), recorded on the municipality's credential
from its page: produção → suspensa with date and reason, and back; refused at the field,
for the wrong people, for a credential that is not the PEC's; every refusal changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.credentials import pec
from engine.credentials import service as credentials
from engine.credentials.models import Credential
from engine.errors import Forbidden, Invalid
from tests.support.builders import SYSTEM


@pytest.fixture
def municipio(make, db):
    org = make.org("sms-londrina", "Secretaria Municipal de Saúde de Londrina")
    fms = make.establishment(org, uf="PR", municipio="Londrina")
    other = make.establishment(org, uf="PR", municipio="Londrina")
    admin = make.user("sms-londrina", "admin")
    with db.write() as s:
        ids = {}
        for est, is_pec in ((fms, True), (other, False)):
            ids[is_pec] = credentials.register(
                s, admin.actor, org_id=org, establishment_cnes=est.cnes,
                portfolio_code="RIRA", status="producao", requester_id=f"4011{int(is_pec)}",
                production_on=date(2026, 3, 20), values={"is_pec": is_pec},
            ).id  # fmt: skip
    return {
        "org": org,
        "pec": ids[True],
        "not_pec": ids[False],
        "admin": admin,
        "admin_municipal": make.user("sms-londrina", "admin_municipal", fms.cnes),
        "integrador": make.user("sms-londrina", "integrador", fms.cnes),
        "outsider": make.user(make_other_org(make), "admin"),
    }


def make_other_org(make) -> str:
    make.org("sesa-sp", "Secretaria da Saúde de São Paulo")
    return "sesa-sp"


def status_of(db, credential_id: int) -> str:
    with db.read() as s:
        return s.get(Credential, credential_id).status


def events(db, credential_id: int) -> list[str]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(
                    AuditEvent.entity_type == "credential",
                    AuditEvent.entity_id == str(credential_id),
                )
                .order_by(AuditEvent.id)
            )
        )


def test_disable_and_enable_again_from_the_page(pages, municipio, db):
    cid = municipio["pec"]
    page = pages(municipio["admin_municipal"])
    shown = page.get(f"/credenciais/{cid}").get_data(as_text=True)
    assert "Desabilitar certificado" in shown and 'name="motivo"' in shown
    yesterday = (date.today() - timedelta(days=1)).isoformat()

    # refused at the field: no reason, a date in the future; nothing changes
    res = page.post(f"/credenciais/{cid}/pec/desabilitar", {"data": "2999-01-01", "motivo": ""})
    body = res.get_data(as_text=True)
    assert res.status_code == 422
    assert "Informe o motivo" in body and "não pode estar no futuro" in body
    assert status_of(db, cid) == "producao"
    res = page.post(f"/credenciais/{cid}/pec/desabilitar", {"data": "31/02/2026", "motivo": "x"})
    assert res.status_code == 422 and "Data inválida" in res.get_data(as_text=True)
    assert status_of(db, cid) == "producao"

    res = page.post(
        f"/credenciais/{cid}/pec/desabilitar",
        {"data": yesterday, "motivo": "Troca do servidor do PEC <b>já</b>"},
    )
    assert res.status_code == 302
    shown = page.get(f"/credenciais/{cid}").get_data(as_text=True)
    assert status_of(db, cid) == "suspensa"
    assert "Certificado desabilitado no PEC" in shown
    assert "&lt;b&gt;já&lt;/b&gt;" in shown and "<b>já</b>" not in shown  # escaped
    with db.read() as s:
        credential = s.get(Credential, cid)
        last = credential.history[-1]
    assert last["status"] == "suspensa" and last["on"] == yesterday
    assert last["reason"] == "Troca do servidor do PEC <b>já</b>"

    # disabling twice is refused; enabling brings it back to production
    res = page.post(f"/credenciais/{cid}/pec/desabilitar", {"data": yesterday, "motivo": "de novo"})
    assert res.status_code == 422
    res = page.post(f"/credenciais/{cid}/pec/habilitar", {"data": date.today().isoformat()})
    assert res.status_code == 302 and status_of(db, cid) == "producao"
    assert events(db, cid)[-2:] == [
        "credential.pec_certificate_disabled",
        "credential.pec_certificate_enabled",
    ]


def test_only_the_pec_people_and_only_the_pec_credential(pages, municipio, db):
    cid = municipio["pec"]
    # an integrador sees the credential but not the form, and a post is refused and audited
    page = pages(municipio["integrador"])
    assert "Desabilitar certificado" not in page.get(f"/credenciais/{cid}").get_data(as_text=True)
    res = page.post(f"/credenciais/{cid}/pec/desabilitar", {"data": "2026-01-02", "motivo": "x"})
    assert res.status_code == 403 and status_of(db, cid) == "producao"
    with db.read() as s:
        denied = s.scalar(
            select(AuditEvent).where(AuditEvent.action == "denied.credential.pec_disable")
        )
    assert denied is not None and denied.entity_id == str(cid)
    # another organization's admin: refused
    outsider = pages(municipio["outsider"])
    res = outsider.post(
        f"/credenciais/{cid}/pec/desabilitar", {"data": "2026-01-02", "motivo": "x"}
    )
    assert res.status_code in (403, 404) and status_of(db, cid) == "producao"
    # a credential that is not the PEC's has no such record
    with db.write() as s, pytest.raises(Invalid) as refused:
        pec.disable_certificate(
            s, municipio["admin"].actor, municipio["not_pec"], on=date(2026, 1, 2), reason="x"
        )
    assert "PEC" in refused.value.errors["status"]
    # the system actor is no PEC person either
    with db.write() as s, pytest.raises(Forbidden):
        pec.disable_certificate(s, SYSTEM, cid, on=date(2026, 1, 2), reason="x")
    assert status_of(db, cid) == "producao"


def test_the_same_through_the_api(client, municipio, db):
    cid = municipio["pec"]
    url = f"/api/v1/credentials/{cid}/pec-certificate"
    who = municipio["admin_municipal"].headers
    res = client.post(url, json={"action": "disable", "on": "2026-01-02"}, headers=who)
    assert res.status_code == 422 and "motivo" in res.json["errors"]["reason"]
    res = client.post(
        url, json={"action": "disable", "on": "2999-01-02", "reason": "x"}, headers=who
    )
    assert res.status_code == 422 and "futuro" in res.json["errors"]["on"]
    assert status_of(db, cid) == "producao"
    res = client.post(
        url, json={"action": "disable", "on": "2026-01-02", "reason": "Novo servidor"}, headers=who
    )
    assert res.status_code == 200 and res.json["status"] == "suspensa"
    integrador = municipio["integrador"].headers
    res = client.post(url, json={"action": "enable", "on": "2026-01-03"}, headers=integrador)
    assert res.status_code == 403 and status_of(db, cid) == "suspensa"
    res = client.post(url, json={"action": "enable", "on": "2026-01-03"}, headers=who)
    assert res.status_code == 200 and res.json["status"] == "producao"
