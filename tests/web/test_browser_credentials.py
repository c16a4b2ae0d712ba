"""A credential's life through the pages, in a real Chromium, as its people would live it.

An establishment is carried to production (every credenciamento task filled in its page); its
credential appears under "Credenciais" in "Produção"; from the credential's page the gestor asks
for a new IP range (DATASUS approves, the integrator applies it), hands the credential to
another gestor (who accepts; DATASUS approves), renews its certificate and finally withdraws
it — each time the credential's page shows what changed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.certificates.models import Certificate
from engine.credentials.models import Credential
from engine.demo import samples
from tests.support.builders import cast
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    login,
    logout,
    screenshot,
    serve,
)
from tests.support.pages import fill_homologation, open_task, radio, send_task_form, tick, upload

pytestmark = pytest.mark.browser

NEW_GESTOR = "novo.gestor@exemplo.gov.br"


class Person:
    """Signs a person in on the one browser page, for a few steps."""

    def __init__(self, page: Any, base: str):
        self.page, self.base = page, base

    def __call__(self, user: Any) -> Person:
        login(self.page, self.base, user.email, user.password)
        assert "Sair" in self.page.inner_text("header"), self.page.inner_text("main")[:500]
        return self

    def __enter__(self) -> Any:
        return self.page

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            logout(self.page)


def _done(page: Any) -> None:
    """A task sent: on its process's page, or — when the instance's next task is this
    person's — straight on that task's form, announced; no field in error either way."""
    main = page.inner_text("main")
    if "/tarefas/" in page.url:
        assert "concluída" in main and "Próxima tarefa" in main, main[:2000]
    else:
        assert "/processos/" in page.url, main[:2000]
    assert page.locator("[aria-invalid=true]").count() == 0, main[:2000]


def _to_production(page: Any, base: str, people: Any, as_: Person) -> None:
    """The credenciamento, every task through its page, the quickest honest way."""
    est, users = people.est, people.users
    with as_(users["admin"]):
        page.goto(f"{base}/estabelecimentos/{est.cnes}")
        page.select_option("#start-portfolio", "RIRA")
        page.click("button:has-text('Iniciar credenciamento')")
        page.wait_for_selector("h1")
    with as_(users["gestor"]):
        open_task(page, base, "Obter certificado digital")
        upload(page, "#f-certificado", [("ecnpj.cer", "application/pkix-cert",
                                          samples.demo_certificate(est.cnpj))])  # fmt: skip
        send_task_form(page)
        _done(page)
        open_task(page, base, "Criar conta gov.br")
        page.type("#f-cpf_responsavel", "39053344705")
        radio(page, "nivel_conta", "prata")
        tick(page, "#f-conta_confirmada")
        send_task_form(page)
        _done(page)
        open_task(page, base, "Solicitar acesso (homologação)")
        page.click("[data-repeat='periodos_maior_acesso'] [data-add-row]")
        page.select_option("select[name='periodos_maior_acesso.0.periodo']", "Manhã")
        page.fill("input[name='periodos_maior_acesso.0.inicio']", "07:00")
        page.fill("input[name='periodos_maior_acesso.0.fim']", "11:30")
        fill_homologation(page, mistakes=False)
        page.click("button[value='addall:servicos']")
        page.wait_for_selector("select[name='servicos.0.operacao']")
        tick(page, "#f-aceite_termo")
        send_task_form(page)
        _done(page)
    with as_(users["datasus"]):
        open_task(page, base, "Avaliar solicitação de acesso")
        radio(page, "decision", "aprovada")
        page.fill("#f-numero_solicitacao", "3804/2024")
        page.fill("#f-identificador_solicitante", "40111")
        page.click("button[value='addall:operacoes_aprovadas']")
        page.wait_for_selector("select[name='operacoes_aprovadas.0.operacao']")
        send_task_form(page)
        _done(page)
    with as_(users["integrador"]):
        open_task(page, base, "Ambientar com serviços")
        page.fill("#f-observacoes", "Serviços revisados.")
        send_task_form(page)
        open_task(page, base, "Desenvolver conector")
        page.fill("#f-conector_nome", "conector-rnds")
        page.fill("#f-conector_versao", "1.0.0")
        page.fill("#f-fornecedor_ou_repositorio", "Equipe própria")
        send_task_form(page)
        _done(page)
    with as_(users["gestor"]):
        open_task(page, base, "Obter dados para acesso")
        tick(page, "#f-confirmacao")
        send_task_form(page)
        _done(page)
    with as_(users["integrador"]):
        open_task(page, base, "Verificar conformidade")
        page.click("button[value='addall:verificacoes']")
        page.wait_for_selector("select[name='verificacoes.0.operacao']")
        for index in range(page.locator("input[type=radio][value='ok']").count()):
            tick(page, f"input[type=radio][name='verificacoes.{index}.resultado'][value='ok']")
        radio(page, "decision", "pronto")
        send_task_form(page)
        _done(page)
        open_task(page, base, "Registrar evidências")
        upload(page, "#f-evidencias-upload",
                [("validador.pdf", "application/pdf", samples.tiny_pdf())])  # fmt: skip
        page.fill("#f-descricao", "Validador e Bundle.")
        send_task_form(page)
        _done(page)
    with as_(users["gestor"]):
        open_task(page, base, "Solicitar acesso (produção)")
        tick(page, "#f-evidencias_revisadas")
        send_task_form(page)
        _done(page)
    with as_(users["datasus"]):
        open_task(page, base, "Avaliar solicitação para produção")
        radio(page, "decision", "aprovada")
        send_task_form(page)
        _done(page)
    with as_(users["integrador"]):
        open_task(page, base, "Colocar em produção")
        page.fill("#f-data_entrada_producao", "20/11/2026")
        page.select_option("#f-uf_endpoint", "PR")
        page.fill("#f-data_primeiro_envio", "21/11/2026")
        page.fill("#f-rnds_id_primeiro_envio", "c0ffee00-1234-4abc-9def-000000000001")
        send_task_form(page)
        _done(page)
        assert "Produção" in page.inner_text(".app-facts")


def _start(page: Any, credential_url: str, button: str) -> None:
    """Start a process from the credential's page: on to the new process's page."""
    page.goto(credential_url)
    page.click(f"main form button:has-text('{button}')")
    page.wait_for_load_state("domcontentloaded")
    assert "Processo iniciado:" in page.inner_text("main"), page.inner_text("main")[:1000]


def _facts(page: Any, credential_url: str, selector: str) -> str:
    page.goto(credential_url)
    return page.inner_text(selector)


def _local_date(value: datetime, zone: str) -> str:
    return value.astimezone(ZoneInfo(zone)).strftime("%d/%m/%Y")


def test_a_credential_lives_through_the_pages(make, app, db, settings):  # noqa: PLR0915
    people = cast(make, uf="PR", municipio="Curitiba")
    users = people.users
    new_gestor = make.user("sesa-pr", "gestor", people.est.cnes, email=NEW_GESTOR)
    problems: list[str] = []
    with serve(app) as base, chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
        as_ = Person(page, base)
        _to_production(page, base, people, as_)

        # The gestor finds the credential under "Credenciais", in production.
        with as_(users["gestor"]):
            page.click("nav.app-nav a:has-text('Credenciais')")
            page.wait_for_selector("h1:has-text('Credenciais')")
            assert "Produção" in page.inner_text("table")
            problems += [f"list: {v['id']} {v['help']}" for v in axe_violations(page)]
            screenshot(page, "credentials-list")
            page.click(f"table a:has-text('{people.est.cnes}')")
            page.wait_for_selector("#credencial-situacao")
            credential_url = page.url
            assert "Produção" in page.inner_text("#credencial-situacao")
            assert "40111" in page.inner_text("#credencial-situacao")
            assert "200.17.0.1" in page.inner_text("#credencial-ips")
            problems += [f"credential: {v['id']} {v['help']}" for v in axe_violations(page)]
            screenshot(page, "credential")

            # A new IP range, asked from the credential's page.
            _start(page, credential_url, "Solicitar alteração")
            open_task(page, base, "Solicitar alteração da credencial")
            page.fill("#f-ip_inicial", "200.130.20.1")
            page.fill("#f-ip_final", "200.130.20.30")
            page.fill("#f-sistema_nome", "LIS Exemplo")
            page.fill("#f-sistema_versao", "4.3")
            if not page.locator("select[name='operacoes.0.operacao']").count():
                page.click("button[value='addall:operacoes']")
                page.wait_for_selector("select[name='operacoes.0.operacao']")
            page.fill("#f-justificativa", "Novo provedor de internet.")
            tick(page, "#f-confirmacao")
            send_task_form(page)
            _done(page)
            assert "Alteração em análise" in page.inner_text(".app-facts")
        with as_(users["datasus"]):
            open_task(page, base, "Avaliar alteração da credencial")
            assert "200.130.20.1" in page.input_value("#f-resumo_alteracao")
            radio(page, "decision", "aprovada")
            page.fill("#f-numero_solicitacao", "4836/2024")
            if not page.locator("select[name='operacoes_aprovadas.0.operacao']").count():
                page.click("button[value='addall:operacoes_aprovadas']")
                page.wait_for_selector("select[name='operacoes_aprovadas.0.operacao']")
            send_task_form(page)
            _done(page)
        with as_(users["integrador"]):
            open_task(page, base, "Aplicar alteração no conector")
            page.fill("#f-data_aplicacao", "20/03/2027")
            tick(page, "#f-confirmacao")
            send_task_form(page)
            _done(page)
            ips = _facts(page, credential_url, "#credencial-ips")
            assert "200.130.20.1" in ips and "200.130.20.30" in ips, ips
            history = page.inner_text("#credencial-historico")
            assert "IP inicial: 200.17.0.1 → 200.130.20.1" in history, history

        # The credential handed to another gestor of the organization.
        with as_(users["gestor"]):
            _start(page, credential_url, "Transferir titularidade")
            open_task(page, base, "Indicar novo titular")
            radio(page, "destino", "membro")
            page.fill("#f-novo_gestor_nome", "João Souza")
            page.type("#f-novo_gestor_cpf", "39053344705")
            page.fill("#f-novo_gestor_email", NEW_GESTOR)
            page.fill("#f-justificativa", "Troca de gestão.")
            tick(page, "#f-confirmacao")
            send_task_form(page)
            _done(page)
        with as_(new_gestor):
            open_task(page, base, "Aceitar titularidade da credencial")
            radio(page, "decision", "aceita")
            page.fill("#f-novo_gestor_telefone", "41999990000")
            tick(page, "#f-declaracao")
            send_task_form(page)
            _done(page)
        with as_(users["datasus"]):
            open_task(page, base, "Avaliar transferência de titularidade")
            radio(page, "decision", "aprovada")
            send_task_form(page)
            _done(page)
            gestor = _facts(page, credential_url, "#credencial-gestor")
            assert "João Souza" in gestor and NEW_GESTOR in gestor, gestor

        # A new certificate, longer than the current one, installed in the connector.
        renewal = samples.demo_certificate(people.est.cnpj, days=730)
        with as_(new_gestor):
            before = _facts(page, credential_url, "#credencial-certificado")
            _start(page, credential_url, "Renovar certificado")
            open_task(page, base, "Obter novo certificado digital")
            upload(page, "#f-novo_certificado",
                    [("novo.cer", "application/pkix-cert", renewal)])  # fmt: skip
            send_task_form(page)
            _done(page)
        with as_(users["integrador"]):
            open_task(page, base, "Atualizar certificado no conector")
            page.fill("#f-data_atualizacao", "21/03/2027")
            tick(page, "#f-confirmacao")
            send_task_form(page)
            _done(page)
            certificate = _facts(page, credential_url, "#credencial-certificado")
        fingerprint = hashlib.sha256(renewal).hexdigest()
        with db.read() as s:
            not_after = s.scalar(
                select(Certificate.not_after).where(Certificate.sha256 == fingerprint)
            )
        assert not_after is not None
        assert fingerprint in certificate and fingerprint not in before, certificate
        assert _local_date(not_after, settings.timezone) in certificate, certificate

        # Withdrawn: the gestor asks, DATASUS approves, the integrator switches the connector off.
        with as_(new_gestor):
            _start(page, credential_url, "Encerrar credencial")
            open_task(page, base, "Solicitar encerramento da credencial")
            radio(page, "motivo_encerramento", "Troca de sistema")
            page.fill("#f-descricao", "O estabelecimento passa ao sistema estadual.")
            page.fill("#f-data_encerramento", "01/04/2027")
            tick(page, "#f-ciencia")
            send_task_form(page)
            _done(page)
        with as_(users["datasus"]):
            open_task(page, base, "Avaliar pedido de encerramento")
            radio(page, "decision", "aprovada")
            if not page.input_value("#f-data_encerramento_efetiva"):
                page.fill("#f-data_encerramento_efetiva", "01/04/2027")
            send_task_form(page)
            _done(page)
        with as_(users["integrador"]):
            open_task(page, base, "Desativar integração no conector")
            page.fill("#f-data_desativacao", "01/04/2027")
            tick(page, "#f-conector_desativado")
            radio(page, "certificado_removido", "true")
            send_task_form(page)
            _done(page)
        with as_(users["auditor"]):
            status = _facts(page, credential_url, "#credencial-situacao")
            assert "Encerrada" in status and "01/04/2027" in status, status
            history = page.inner_text("#credencial-historico")
            for title in ("Alteração de credencial", "Transferência de titularidade",
                          "Renovação de certificado digital", "Encerramento de credencial"):  # fmt: skip
                assert title in history, (title, history)
            assert page.query_selector_all("main form") == []  # nothing to start now
            screenshot(page, "credential-ended")
            page.goto(f"{base}/credenciais?situacao=encerrada")
            assert people.est.cnes in page.inner_text("table")
        ctx.close()
    with db.read() as s:
        credential = s.scalar(select(Credential))
        assert credential.status == "encerrada" and credential.gestor_email == NEW_GESTOR
        assert credential.ip_start == "200.130.20.1"
    assert not problems, "\n".join(problems)
