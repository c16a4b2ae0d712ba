""" "Importar CNES filhos" and "Consultar" in a real Chromium: a pasted list fills the child
rows in place and shows each refused row with its reason; a CNPJ lookup adds a child; a CNS
lookup fills the gestor."""

from __future__ import annotations

import pytest

from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    chromium,
    login,
    serve,
)
from tests.support.pages import advance, radio, ready_task

pytestmark = pytest.mark.browser


def test_paste_a_list_and_look_up(world, db, app, make):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr",
                        "solicitar_acesso_homologacao", "!avaliar_solicitacao_acesso"])  # fmt: skip
    task = ready_task(db, world.instance_id, "ajustar_solicitacao_acesso")
    cascavel = make.establishment(world.org, uf="PR", municipio="Cascavel")
    gestor = world.users["gestor"]
    errors: list[str] = []
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(locale="pt-BR").new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, base, gestor.email, gestor.password)
        page.goto(f"{base}/tarefas/{task.id}")
        radio(page, "decision", "ajustar")
        radio(page, "possui_filhos", "true")
        page.fill("#f-gestor_nome", "")
        page.fill("#f-filhos-importar", f"{world.est2.cnes}\n{world.other_est.cnes}; 12")
        page.click("[data-children-import]")
        page.wait_for_selector("[data-children-result] table")
        result = page.inner_text("[data-children-result]")
        assert "1 adicionado(s), 2 recusado(s)." in result
        assert "Recusado: CNES não cadastrado na organização." in result
        assert "Recusado: CNES deve ter 7 dígitos." in result
        assert page.input_value("input[name='filhos.0.cnes']") == world.est2.cnes
        assert f"/tarefas/{task.id}" in page.url  # no page load: the form is as it was

        page.fill("#f-filhos-consulta", cascavel.cnpj)
        page.click("[data-child-lookup]")
        page.click(f"[data-child-add='{cascavel.cnes}']")
        page.wait_for_selector("[data-children-result] :text('1 adicionado(s), 0 recusado(s).')")
        rows = page.locator("[data-repeat='filhos'] [data-rows] input[name$='.cnes']")
        assert [rows.nth(i).input_value() for i in range(rows.count())] == [
            world.est2.cnes,
            cascavel.cnes,
        ]

        page.fill("#f-gestor-consulta", "207 2848 0160 0008")
        page.click("[data-gestor-find]")
        page.wait_for_selector("[data-gestor-result] :text('Dados do gestor preenchidos.')")
        assert page.input_value("#f-gestor_nome") == "Maria da Silva"
        assert page.input_value("#f-gestor_email") == "maria.silva@exemplo.gov.br"
    assert errors == []
