"""The term of use on the pages: its text (escaped) beside the checkbox that accepts it, with
its version; after the request, the instance page says who accepted which version, when."""

from __future__ import annotations

import html as html_mod
import re
from pathlib import Path

from flask import render_template_string

from engine.terms.declared import Term
from tests.support.pages import advance, ready_task

TERM = (
    Path(__file__).resolve().parents[2] / "processes/credenciamento-rnds/terms/termo-de-uso.v1.md"
)
CLAUSE = "CLÁUSULA PRIMEIRA – DO OBJETO. O presente Termo tem por objeto a cessão de credenciais"


def _text(page: str) -> str:
    return html_mod.unescape(page)


def test_the_request_page_shows_the_term_beside_its_checkbox(world, db, pages):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    task = ready_task(db, world.instance_id, "solicitar_acesso_homologacao")
    page = pages(world.users["gestor"]).get(f"/tarefas/{task.id}").get_data(as_text=True)
    block = re.search(r'<details class="app-term" id="termo-aceite_termo" open>(.*?)</details>',
                      page, re.S)  # fmt: skip
    assert block, "the term's block"
    text = _text(block.group(1))
    assert "Termo de uso · versão 2024-1" in text and CLAUSE in text
    assert "Foro da Justiça Federal-Seção Judiciária do Distrito Federal" in text
    assert "**" not in text and "#" not in text  # markdown reduced to paragraphs
    # Right before the checkbox that accepts it.
    assert page.index("termo-aceite_termo") < page.index('id="f-aceite_termo"')
    between = page[page.index("termo-aceite_termo") : page.index('id="f-aceite_termo"')]
    assert 'name="' not in between.replace('name="aceite_termo.present"', "")


def test_the_instance_page_says_who_accepted_which_version_when(world, db, pages):
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr",
                        "solicitar_acesso_homologacao"])  # fmt: skip
    gestor = world.users["gestor"]
    page = pages(world.users["auditor"]).get(f"/processos/{world.instance_id}")
    assert page.status_code == 200
    text = _text(page.get_data(as_text=True))
    assert re.search(
        rf"Termo de uso v2024-1 aceito por {re.escape(gestor.actor.label)} em "
        r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}",
        text,
    ), text[text.find("Termos de uso") : text.find("Termos de uso") + 400]
    assert CLAUSE in text  # the accepted text, in a closed <details>
    assert "Termo de uso aceito: termo-de-uso-rnds v2024-1" in text  # the timeline
    # The completed task's page shows the version that was accepted there.
    task_id = re.search(r'href="/tarefas/([^"]+)">Solicitar acesso \(homologação\)', text)
    assert task_id
    done = _text(pages(gestor).get(f"/tarefas/{task_id.group(1)}").get_data(as_text=True))
    assert "Termo de uso · versão 2024-1" in done and CLAUSE in done


def test_the_term_is_escaped_and_reduced_to_paragraphs(app):
    term = Term("aceite", "t", "Termo <b>de</b> uso", "1<i>", "t.md",
                "# Título <script>x</script>\n\nLinha **um**\nsegue <img src=x onerror=1>\n")  # fmt: skip
    with app.test_request_context("/"):
        out = render_template_string(
            '{% from "macros.html" import term_text %}{{ term_text(term) }}', term=term
        )
    assert "<script>" not in out and "<img" not in out and "<b>" not in out and "<i>" not in out
    assert '<p class="app-term-heading">Título &lt;script&gt;x&lt;/script&gt;</p>' in out
    assert "<p>Linha um segue &lt;img src=x onerror=1&gt;</p>" in out
    assert "versão 1&lt;i&gt;" in out
