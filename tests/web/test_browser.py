"""The whole credentialing process through the pages, in a real Chromium, as new users would.

The admin starts it from the establishment's page; the gestor submits the homologation
request with mistakes, sees them at the fields and fixes them; DATASUS rejects; the gestor
adjusts and resubmits; DATASUS approves; integrator and gestor go on to production. Every
page type is checked with axe-core and photographed under tests/artifacts/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.demo import samples
from tests.support.builders import cast
from tests.support.live import (
    ARTIFACTS,
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    login,
    logout,
    screenshot,
    serve,
)
from tests.support.pages import (
    fill_homologation,
    open_task,
    radio,
    send_task_form,
    tick,
    upload,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def people(make):
    people = cast(
        make, uf="PR", municipio="Curitiba", others=({"uf": "PR", "municipio": "Londrina"},)
    )
    return {"org": people.org, "est": people.est, "users": people.users}


class Checker:
    """Axe and a screenshot for each page type, once."""

    def __init__(self, name: str):
        self.name = name
        self.seen: set[str] = set()
        self.problems: list[str] = []

    def __call__(self, page: Any, kind: str) -> None:
        if kind in self.seen:
            return
        self.seen.add(kind)
        page.wait_for_load_state("load")
        screenshot(page, f"{kind}-{self.name}")
        for v in axe_violations(page):
            self.problems.append(f"{kind}: {v['id']} ({v['impact']}) {v['help']} at {v['nodes']}")


def _flow(base: str, people: dict, browser: Any, tag: str) -> None:  # noqa: PLR0915
    users = people["users"]
    est = people["est"]
    check = Checker(tag)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
    page = ctx.new_page()
    page.on("pageerror", lambda exc: check.problems.append(f"javascript error: {exc}"))

    # Sign-in page; a wrong password gets one message.
    page.goto(base + "/")
    check(page, "login")
    login(page, base, users["admin"].email, "senha-errada")
    assert "E-mail ou senha incorretos." in page.inner_text("main")

    # The admin starts the credentialing from the establishment's page.
    login(page, base, users["admin"].email, users["admin"].password)
    check(page, "inbox-admin")
    page.click("nav.app-nav a:has-text('Estabelecimentos')")
    check(page, "establishments")
    page.click(f"a:has-text('{est.cnes}')")
    check(page, "establishment")
    page.select_option("#start-portfolio", "RIRA")
    page.click("button:has-text('Iniciar credenciamento')")
    page.wait_for_selector("#diagrama[data-ready]")
    instance_url = page.url
    assert "Preparação" in page.inner_text(".app-facts")
    check(page, "instance")
    page.click("nav.app-nav a:has-text('Painel')")
    check(page, "dashboard")
    page.goto(base + "/estabelecimentos/novo")
    page.click("button:has-text('Salvar')")
    check(page, "establishment-form-errors")
    page.goto(base + "/estabelecimentos/importar")
    check(page, "import")
    page.goto(base + "/administracao")
    check(page, "admin")
    page.goto(base + "/administracao/processos")
    page.click("table a")
    page.wait_for_selector("#diagrama[data-ready]")
    check(page, "admin-process")
    page.goto(base + "/nao-existe")
    check(page, "error-404")
    logout(page)

    # Gestor: certificate, gov.br account.
    login(page, base, users["gestor"].email, users["gestor"].password)
    check(page, "inbox")
    open_task(page, base, "Obter certificado digital")
    check(page, "task")
    upload(
        page,
        "#f-certificado",
        [("ecnpj.cer", "application/pkix-cert", samples.demo_certificate(est.cnpj))],
    )
    send_task_form(page)
    # The gestor's next task of the instance opens by itself, announced.
    assert "/tarefas/" in page.url, page.inner_text("main")[:2000]
    assert "Próxima tarefa: “Criar conta gov.br”" in page.inner_text("main")
    check(page, "task-next")
    page.goto(instance_url)
    open_task(page, base, "Criar conta gov.br")
    page.type("#f-cpf_responsavel", "39053344705")
    assert page.input_value("#f-cpf_responsavel") == "390.533.447-05"  # masked as typed
    radio(page, "nivel_conta", "prata")
    tick(page, "#f-conta_confirmada")
    send_task_form(page)

    # The homologation request, first with mistakes.
    open_task(page, base, "Solicitar acesso (homologação)")
    assert page.input_value("#f-estabelecimento_cnes") == est.cnes  # prefilled from the register
    fill_homologation(page, mistakes=True)
    page.click("[data-repeat='periodos_maior_acesso'] [data-add-row]")  # JavaScript adds the row
    page.select_option("select[name='periodos_maior_acesso.0.periodo']", "Manhã")
    page.fill("input[name='periodos_maior_acesso.0.inicio']", "07:00")
    page.fill("input[name='periodos_maior_acesso.0.fim']", "11:30")
    page.fill("#f-resumo", "x" * 10)
    assert "10/400" in page.inner_text("[data-counter-for='f-resumo']")
    page.fill("#f-resumo", "")
    send_task_form(page)
    assert page.is_visible("#erros")
    for field in ("gestor_cpf", "resumo", "ip_inicial", "servicos", "aceite_termo"):
        assert page.is_visible(f"#f-{field}-erro"), field
    assert page.input_value("#f-gestor_cpf") == "123.456.789-00"  # kept as typed
    assert page.input_value("input[name='periodos_maior_acesso.0.fim']") == "11:30"
    check(page, "task-errors")
    # Fix them.
    page.fill("#f-gestor_cpf", "")
    page.type("#f-gestor_cpf", "39053344705")
    page.fill("#f-ip_inicial", "200.17.0.1")
    page.fill("#f-resumo", "Envio de resultados de exames laboratoriais para a RNDS.")
    page.click("button[value='addall:servicos']")  # server-side: fills every operation
    page.wait_for_selector("select[name='servicos.0.operacao']")
    tick(page, "#f-aceite_termo")
    send_task_form(page)
    assert page.url == instance_url, page.inner_text("main")[:2000]
    assert "Solicitação em análise" in page.inner_text(".app-facts")
    logout(page)

    # DATASUS rejects with a reason.
    login(page, base, users["datasus"].email, users["datasus"].password)
    open_task(page, base, "Avaliar solicitação de acesso")
    radio(page, "decision", "reprovada")
    page.fill("#f-motivo", "Faixa de IPs não corresponde ao servidor informado.")
    send_task_form(page)
    logout(page)

    # The gestor sees the reason, adjusts and resubmits.
    login(page, base, users["gestor"].email, users["gestor"].password)
    open_task(page, base, "Ajustar e submeter nova solicitação")
    assert "Faixa de IPs não corresponde" in page.inner_text(".app-context")
    radio(page, "decision", "ajustar")
    page.fill("#f-ip_final", "200.17.0.20")
    send_task_form(page)
    assert page.url == instance_url, page.inner_text("main")[:2000]
    logout(page)

    # DATASUS approves.
    login(page, base, users["datasus"].email, users["datasus"].password)
    open_task(page, base, "Avaliar solicitação de acesso")
    radio(page, "decision", "aprovada")
    page.fill("#f-numero_solicitacao", "3804/2024")
    page.fill("#f-identificador_solicitante", "40111")
    page.click("button[value='addall:operacoes_aprovadas']")
    page.wait_for_selector("select[name='operacoes_aprovadas.0.operacao']")
    send_task_form(page)
    assert "Homologação" in page.inner_text(".app-facts")
    logout(page)

    # The integrator's branch.
    login(page, base, users["integrador"].email, users["integrador"].password)
    open_task(page, base, "Ambientar com serviços")
    page.fill("#f-observacoes", "Serviços revisados.")
    send_task_form(page)
    open_task(page, base, "Desenvolver conector")
    page.fill("#f-conector_nome", "conector-rnds")
    page.fill("#f-conector_versao", "1.0.0")
    page.fill("#f-fornecedor_ou_repositorio", "Equipe própria")
    send_task_form(page)
    logout(page)

    # The gestor confirms the access data.
    login(page, base, users["gestor"].email, users["gestor"].password)
    open_task(page, base, "Obter dados para acesso")
    assert page.input_value("#f-identificador_solicitante") == "40111"
    tick(page, "#f-confirmacao")
    send_task_form(page)
    logout(page)

    # Conformance and evidence.
    login(page, base, users["integrador"].email, users["integrador"].password)
    open_task(page, base, "Verificar conformidade")
    page.click("button[value='addall:verificacoes']")
    page.wait_for_selector("select[name='verificacoes.0.operacao']")
    for index in range(page.locator("input[type=radio][value='ok']").count()):
        tick(page, f"input[type=radio][name='verificacoes.{index}.resultado'][value='ok']")
    radio(page, "decision", "pronto")
    send_task_form(page)
    # The integrador's next task opens by itself.
    assert "/tarefas/" in page.url, page.inner_text("main")[:2000]
    assert "Próxima tarefa: “Registrar evidências”" in page.inner_text("main")
    open_task(page, base, "Registrar evidências")
    upload(page, "#f-evidencias-upload", [("validador.pdf", "application/pdf", samples.tiny_pdf()),
                                           ("bundle.png", "image/png", samples.tiny_png())])  # fmt: skip
    page.fill("#f-descricao", "Validador e Bundle.")
    send_task_form(page)
    assert page.url == instance_url, page.inner_text("main")[:2000]
    logout(page)

    login(page, base, users["gestor"].email, users["gestor"].password)
    open_task(page, base, "Solicitar acesso (produção)")
    assert "validador.pdf" in page.inner_text("main")
    tick(page, "#f-evidencias_revisadas")
    send_task_form(page)
    logout(page)

    login(page, base, users["datasus"].email, users["datasus"].password)
    open_task(page, base, "Avaliar solicitação para produção")
    radio(page, "decision", "aprovada")
    send_task_form(page)
    logout(page)

    # The diagram shows the one active task: going live.
    login(page, base, users["integrador"].email, users["integrador"].password)
    page.goto(instance_url)
    page.wait_for_selector("#diagrama[data-ready]")
    assert page.get_attribute("#diagrama", "data-active") == "colocar_em_producao"
    assert page.query_selector(".djs-element.app-active[data-element-id='colocar_em_producao']")
    assert page.query_selector(
        ".djs-element.app-done[data-element-id='avaliar_solicitacao_producao']"
    )
    assert page.query_selector(".djs-connection.app-flow")
    screenshot(page, f"instance-production-{tag}")
    open_task(page, base, "Colocar em produção")
    page.fill("#f-data_entrada_producao", "20/11/2026")
    page.select_option("#f-uf_endpoint", "PR")
    page.fill("#f-data_primeiro_envio", "21/11/2026")
    page.fill("#f-rnds_id_primeiro_envio", "c0ffee00-1234-4abc-9def-000000000001")
    send_task_form(page)
    assert "Produção" in page.inner_text(".app-facts") and "Concluído" in page.inner_text(
        ".app-facts"
    )
    logout(page)

    # The auditor sees everything and can change nothing.
    login(page, base, users["auditor"].email, users["auditor"].password)
    page.goto(instance_url)
    page.wait_for_selector("#diagrama[data-ready]")
    timeline = page.inner_text(".app-timeline")
    assert timeline.count("Tarefa concluída") >= 14 and "reprovada" in timeline
    main_forms = page.query_selector_all("main form")
    assert main_forms == [], "auditors get no action forms"
    page.click("nav.app-nav a:has-text('Auditoria')")
    assert "Cadeia de hashes íntegra" in page.inner_text("main")
    # Nothing to change, only the chain to verify.
    forms = page.query_selector_all("main form[method=post]")
    assert [f.get_attribute("action") for f in forms] == ["/auditoria/verificar"]
    check(page, "audit")
    page.click("table a:has-text('Detalhes')")
    check(page, "audit-event")
    # English, remembered.
    page.click("button[value=en]")
    assert page.get_attribute("html", "lang") == "en" and "Audit" in page.inner_text("nav.app-nav")
    page.goto(base + "/")
    assert "My tasks" in page.inner_text("main")
    check(page, "inbox-en")

    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, locale="pt-BR"
    ).new_page()
    login(phone, base, users["admin"].email, users["admin"].password)
    phone.goto(base + "/painel")
    screenshot(phone, f"dashboard-phone-{tag}")
    phone.goto(instance_url)
    screenshot(phone, f"instance-phone-{tag}")
    ctx.close()
    assert not check.problems, "\n".join(check.problems)


def test_whole_process_through_the_pages(people, app, db):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve(app) as base, chromium() as browser:
        _flow(base, people, browser, db.dialect)


def test_pages_work_without_javascript(people, app, db):
    """Rows are added and the form sent with JavaScript off (server-side buttons)."""
    users = people["users"]
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(java_script_enabled=False, locale="pt-BR").new_page()
        login(page, base, users["admin"].email, users["admin"].password)
        page.goto(f"{base}/estabelecimentos/{people['est'].cnes}")
        page.click("button:has-text('Iniciar credenciamento')")
        logout(page)
        login(page, base, users["gestor"].email, users["gestor"].password)
        open_task(page, base, "Obter certificado digital")
        upload(
            page,
            "#f-certificado",
            [("e.cer", "application/pkix-cert", samples.demo_certificate(people["est"].cnpj))],
        )
        send_task_form(page)
        open_task(page, base, "Criar conta gov.br")
        page.fill("#f-cpf_responsavel", "390.533.447-05")
        radio(page, "nivel_conta", "ouro")
        tick(page, "#f-conta_confirmada")
        send_task_form(page)
        open_task(page, base, "Solicitar acesso (homologação)")
        page.click("[data-repeat='periodos_maior_acesso'] [data-add-row]")  # a server round trip
        page.wait_for_selector("select[name='periodos_maior_acesso.0.periodo']")
        fill_homologation(page, mistakes=False)
        page.fill("#f-data_levantamento", "20/10/2026")
        page.fill("#f-gestor_cpf", "390.533.447-05")
        page.select_option("select[name='periodos_maior_acesso.0.periodo']", "Tarde")
        page.fill("input[name='periodos_maior_acesso.0.inicio']", "13:00")
        page.fill("input[name='periodos_maior_acesso.0.fim']", "17:00")
        page.click("button[value='addall:servicos']")
        page.wait_for_selector("select[name='servicos.0.operacao']")
        tick(page, "#f-aceite_termo")
        page.click("button[value=save]")
        assert "Rascunho salvo" in page.inner_text("main")
        send_task_form(page)
        assert re.search(r"/processos/\d+$", page.url), page.inner_text("main")[:2000]
        assert "Solicitação em análise" in page.inner_text(".app-facts")
