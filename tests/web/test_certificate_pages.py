"""The establishment's certificate shown as a bank would: facts, coloured status, checklist,
history — on the establishment page, on task pages that take a certificate, and in the API."""

from __future__ import annotations

import re
from datetime import timedelta

import jsonschema
from sqlalchemy import update

from engine import identifiers
from engine.certificates import service as certificates
from engine.certificates.models import Certificate
from engine.db import utcnow
from engine.demo import samples
from tests.support.pages import SETTINGS, advance, ready_task
from web.api.contract import document

DATE = r"[0-3][0-9]/[01][0-9]/20[0-9]{2}"


def _register(db, world, days: int = 365, name: str = "LABORATORIO EXEMPLO") -> Certificate:
    data = samples.demo_certificate(world.est.cnpj, name=name, days=days)
    with db.write() as s:
        return certificates.register(
            s,
            world.users["admin"].actor,
            world.est.id,
            data,
            filename="ecnpj.cer",
            settings=SETTINGS,
        )


def test_establishment_page_shows_the_current_certificate_and_checklist(world, db, pages):
    cert = _register(db, world)
    html = (
        pages(world.users["gestor"])
        .get(f"/estabelecimentos/{world.est.cnes}")
        .get_data(as_text=True)
    )
    assert f"LABORATORIO EXEMPLO:{world.est.cnpj}" in html  # the subject's CN
    assert cert.serial in html and cert.sha256 in html
    assert re.search(rf"de {DATE} a {DATE}", html)
    assert 'class="app-cert-status app-cert-success"' in html and "válido" in html
    assert identifiers.format_cnpj(world.est.cnpj) in html
    assert "Autenticação de cliente TLS" in html and "ICP-Brasil" in html
    assert "não identificado" in html  # the demo certificate has no A1/A3 policy
    # The checklist: ✓ for what passed, ✗ with the reason for what did not (not ICP-Brasil).
    assert "Conferência do certificado" in html
    assert html.count('class="app-check-mark" aria-hidden="true">✓<') >= 3
    assert "app-check app-check-error" in html and "✗" in html
    assert f"/arquivos/{cert.file_id}" in html
    assert "Certificados anteriores" not in html


def test_expiring_and_expired_and_history(world, db, pages):
    first = _register(db, world, days=400, name="PRIMEIRO")
    second = _register(db, world, days=10, name="SEGUNDO")
    admin = pages(world.users["admin"])
    html = admin.get(f"/estabelecimentos/{world.est.cnes}").get_data(as_text=True)
    assert re.search(r"vence em (9|10) dias", html) and "app-cert-warning" in html
    assert "Certificados anteriores" in html and first.serial in html
    assert (
        html.index(second.serial) < html.index("Certificados anteriores") < html.index(first.serial)
    )
    with db.write() as s:
        s.execute(
            update(Certificate)
            .where(Certificate.id == second.id)
            .values(not_after=utcnow() - timedelta(days=2))
        )
    html = admin.get(f"/estabelecimentos/{world.est.cnes}").get_data(as_text=True)
    assert "app-cert-status app-cert-danger" in html and "vencido" in html
    assert "Vencido em" in html  # the checklist's validity line is recomputed today


def test_without_a_certificate(world, db, pages):
    html = (
        pages(world.users["admin"])
        .get(f"/estabelecimentos/{world.est.cnes}")
        .get_data(as_text=True)
    )
    assert "Nenhum certificado registrado." in html and "Conferência do certificado" not in html
    # how many ICP-Brasil roots are recognized and how old the list is (issue 12 #20)
    assert re.search(
        rf"Raízes ICP-Brasil reconhecidas: 3 raízes e 159 ACs; a raiz mais recente foi emitida "
        rf"em {DATE}; lista de {DATE} \(a que acompanha o Credencia\)",
        html,
    )


def test_task_with_a_certificate_field_shows_the_current_one(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    html = gestor.get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "Certificado atual do estabelecimento" in html
    assert "Nenhum certificado registrado ainda." in html
    cert = _register(db, world, days=20)
    html = gestor.get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert f"LABORATORIO EXEMPLO:{world.est.cnpj}" in html and "app-cert-warning" in html
    assert re.search(r"Conferência do certificado \(\d+ de \d+ itens atendidos\)", html)
    assert "app-checklist" in html and cert.sha256 not in html  # the compact summary
    # A step without a certificate field does not show it.
    advance(db, world, ["obter_certificado_digital"])
    other = ready_task(db, world.instance_id, "criar_conta_govbr")
    assert "Certificado atual" not in gestor.get(f"/tarefas/{other.id}").get_data(as_text=True)


def test_in_english(world, db, pages):
    _register(db, world, days=20)
    p = pages(world.users["admin"])
    p.post("/idioma", {"locale": "en", "next": "/"})
    html = p.get(f"/estabelecimentos/{world.est.cnes}").get_data(as_text=True)
    assert "Digital certificate" in html and "Certificate check" in html
    assert re.search(r"expires in (19|20) days", html) and "Serial number" in html
    assert "TLS client authentication" in html
    assert "ICP-Brasil roots recognized: 3 roots and 159 CAs" in html
    assert "the one shipped with Credencia" in html
    # The checklist's messages too, marked as English (the page's language) once translated.
    checklist = html[html.index('class="app-checklist"') :]
    checklist = checklist[: checklist.index("</ul>")]
    assert re.search(rf"Expires in (19|20) days \({DATE}\): arrange the renewal\.", checklist)
    assert "the certificate is self-signed (not issued by a certification authority)." in checklist
    assert "Type not identified" in checklist
    assert "Vence em" not in checklist and "autoassinado" not in checklist
    assert 'lang="pt-BR"' not in checklist


# ------------------------------------------------------------------ API


def _validate(body, name: str) -> None:
    doc = document()
    jsonschema.Draft202012Validator(
        {"components": doc["components"], "$ref": f"#/components/schemas/{name}"}
    ).validate(body)


def test_api_current_with_checklist_and_history(world, db, client):
    url = f"/api/v1/establishments/{world.est.cnes}/certificates"
    empty = client.get(url, headers=world.users["gestor"].headers)
    assert empty.status_code == 200 and empty.json == {"current": None, "history": []}
    _validate(empty.json, "EstablishmentCertificates")
    first = _register(db, world, days=400)
    second = _register(db, world, days=30)
    res = client.get(url, headers=world.users["gestor"].headers)
    assert res.status_code == 200
    body = res.json
    _validate(body, "EstablishmentCertificates")
    current = body["current"]
    assert current["id"] == second.id and current["is_current"] is True
    assert current["sha256"] == second.sha256 and current["cnpj"] == world.est.cnpj
    assert current["status"].startswith("vence em") and current["days_left"] in (29, 30)
    assert current["subject_cn"] == f"LABORATORIO EXEMPLO:{world.est.cnpj}"
    items = {c["item"]: c for c in current["checklist"]}
    assert items["icp_brasil"]["ok"] is False and items["client_auth"]["ok"] is True
    assert [h["id"] for h in body["history"]] == [first.id]
    assert body["history"][0]["is_current"] is False and body["history"][0]["replaced_at"]


def test_api_visibility_is_the_establishments(world, db, client):
    _register(db, world)
    url = "/api/v1/establishments/{}/certificates"
    assert client.get(url.format(world.est.cnes)).status_code == 401
    for role in ("admin", "datasus", "auditor", "integrador", "gestor"):
        assert (
            client.get(url.format(world.est.cnes), headers=world.users[role].headers).status_code
            == 200
        ), role
    # The gestor of another establishment is refused (and it is audited), like the
    # establishment itself; another organization's CNES is not found.
    assert (
        client.get(url.format(world.est2.cnes), headers=world.users["gestor"].headers).status_code
        == 403
    )
    assert (
        client.get(
            url.format(world.other_est.cnes), headers=world.users["admin"].headers
        ).status_code
        == 404
    )
    assert (
        client.get(
            url.format(world.est.cnes) + "?org=sesa-sp", headers=world.users["admin"].headers
        ).status_code
        == 403
    )
