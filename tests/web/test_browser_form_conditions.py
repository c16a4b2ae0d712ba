"""Conditional fields and the review step in a real Chromium: each pair of the homologation
request hides and shows its fields as the answer changes (with JavaScript, and on the
"Atualizar formulário" round trip without it), and the request ends in its summary with
"Anterior" and "Confirmar"."""

from __future__ import annotations

from typing import Any

import pytest

from engine.runtime.models import ProcessInstance
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    chromium,
    login,
    serve,
)
from tests.support.pages import advance, fill_homologation, radio, ready_task, tick

pytestmark = pytest.mark.browser

PAIRS = {
    "possui_filhos": ["filhos"],
    "integra_outros_sistemas": ["integracoes"],
}


def _shown(page: Any, name: str) -> bool:
    return page.is_visible(f"#f-{name}-bloco")


def test_conditional_pairs_and_the_review_step(world, db, app):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    task = ready_task(db, world.instance_id, "solicitar_acesso_homologacao")
    gestor = world.users["gestor"]
    errors: list[str] = []
    with serve(app) as base, chromium() as browser:
        # With JavaScript: each answer shows and hides its fields at once.
        page = browser.new_context(locale="pt-BR").new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, base, gestor.email, gestor.password)
        page.goto(f"{base}/tarefas/{task.id}")
        assert not page.is_visible("[data-refresh] button")  # the script decides
        for question, fields in PAIRS.items():
            assert not any(_shown(page, f) for f in fields), question
            radio(page, question, "true")
            assert all(_shown(page, f) for f in fields), question
            radio(page, question, "false")
            assert not any(_shown(page, f) for f in fields), question

        # The review step: summary, "Anterior" with nothing lost, "Confirmar" sends.
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
        summary = page.inner_text("[data-review]")
        assert "Resumo da solicitação" in page.inner_text("h1")
        assert "Maria da Silva" in summary and "200.17.0.1" in summary
        assert summary.count("Estabelecimentos filhos") == 1  # the group's title, not the list
        page.click("button[value=back]")
        page.wait_for_selector("#f-gestor_nome")
        assert page.input_value("#f-gestor_nome") == "Maria da Silva"
        # the IP range is asked whatever the kind of system (seed 003), not behind a condition
        assert (
            page.is_visible("#f-ip_inicial") and page.input_value("#f-ip_inicial") == "200.17.0.1"
        )
        assert not _shown(page, "filhos")
        page.click(".app-form-actions button[value=submit]")
        page.wait_for_selector("[data-review]")
        page.click("button[value=confirm]")
        page.wait_for_selector(".app-facts")
        assert f"/processos/{world.instance_id}" in page.url
        assert "Solicitação em análise" in page.inner_text(".app-facts")

        # Without JavaScript: "Atualizar formulário" shows and hides the same fields.
        ajustar = browser.new_context(java_script_enabled=False, locale="pt-BR").new_page()
        login(ajustar, base, gestor.email, gestor.password)
        advance(db, world, ["!avaliar_solicitacao_acesso"])
        adjust = ready_task(db, world.instance_id, "ajustar_solicitacao_acesso")
        ajustar.goto(f"{base}/tarefas/{adjust.id}")
        assert not _shown(ajustar, "sistema_nome")  # nothing to adjust until "ajustar"
        radio(ajustar, "decision", "ajustar")
        ajustar.locator("[data-refresh] button:visible").first.click()
        ajustar.wait_for_selector("#f-sistema_nome")
        assert _shown(ajustar, "sistema_nome") and _shown(ajustar, "ip_inicial")
        assert not _shown(ajustar, "filhos") and not _shown(ajustar, "motivo")
        radio(ajustar, "possui_filhos", "true")
        ajustar.locator("[data-refresh] button:visible").first.click()
        ajustar.wait_for_selector("#f-filhos")
        assert _shown(ajustar, "filhos")
    with db.read() as s:
        assert s.get(ProcessInstance, world.instance_id).stage
    assert not errors, errors
