"""The term of use in a real Chromium: the gestor reads it beside the checkbox on the
homologation request, accepts it, is told on the review which version "Confirmar" accepts,
and sends; the instance page then says who accepted which
version, when, and opens the accepted text (a <details>, so without JavaScript too)."""

from __future__ import annotations

import re

import pytest

from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    login,
    screenshot,
    serve,
)
from tests.support.pages import advance, fill_homologation, ready_task, tick

pytestmark = pytest.mark.browser

CLAUSE = "CLÁUSULA PRIMEIRA – DO OBJETO."
FORUM = "Foro da Justiça Federal-Seção Judiciária do Distrito Federal"


def test_the_term_is_read_accepted_and_shown_on_the_instance(world, db, app):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    task = ready_task(db, world.instance_id, "solicitar_acesso_homologacao")
    gestor = world.users["gestor"]
    errors: list[str] = []
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="pt-BR"
        ).new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, base, gestor.email, gestor.password)
        page.goto(f"{base}/tarefas/{task.id}")
        term = page.locator("#termo-aceite_termo")
        assert term.is_visible() and "versão 2024-1" in term.locator("summary").inner_text()
        text = term.locator(".app-term-text")
        assert CLAUSE in text.inner_text() and FORUM in text.inner_text()
        # A block of its own that scrolls, not a page-long wall of text.
        assert text.evaluate("e => e.scrollHeight > e.clientHeight")
        text.scroll_into_view_if_needed()
        screenshot(page, "term-on-request")
        assert [v["id"] for v in axe_violations(page)] == []

        fill_homologation(page, mistakes=False)
        page.click("[data-repeat='periodos_maior_acesso'] [data-add-row]")
        page.select_option("select[name='periodos_maior_acesso.0.periodo']", "Manhã")
        page.fill("input[name='periodos_maior_acesso.0.inicio']", "07:00")
        page.fill("input[name='periodos_maior_acesso.0.fim']", "11:30")
        page.click("button[value='addall:servicos']")
        page.wait_for_selector("select[name='servicos.0.operacao']")
        tick(page, "#f-aceite_termo")
        page.click(".app-form-actions button[value=submit]")
        page.wait_for_selector("[data-review]")
        assert page.inner_text("[data-term-accepting]") == (
            "Ao confirmar, você aceita o Termo de uso, versão 2024-1."
        )
        page.click("button[value=confirm]")
        page.wait_for_load_state("domcontentloaded")
        assert f"/processos/{world.instance_id}" in page.url, page.inner_text("main")[:2000]

        accepted = page.locator("#termos")
        line = accepted.locator("li").first.locator("p").first.inner_text()
        assert re.search(
            rf"Termo de uso v2024-1 aceito por {re.escape(gestor.actor.label)} em "
            r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}",
            line,
        ), line
        assert not accepted.locator(".app-term-text").is_visible()  # closed until asked
        accepted.locator("summary").click()
        assert CLAUSE in accepted.locator(".app-term-text").inner_text()
        screenshot(page, "term-on-instance")

        # Without JavaScript the <details> opens all the same.
        plain = browser.new_context(java_script_enabled=False, locale="pt-BR").new_page()
        login(plain, base, gestor.email, gestor.password)
        plain.goto(f"{base}/processos/{world.instance_id}")
        plain.click("#termos summary")
        assert FORUM in plain.inner_text("#termos .app-term-text")
    assert not errors, errors
