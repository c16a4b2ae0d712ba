"""Conditional fields and the review step on the task pages, without JavaScript: the
"Atualizar formulário" round trip, hidden values dropped, a required dependent shown with its
message, and "Resumo da solicitação" → "Anterior" → "Confirmar"."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.demo import samples
from engine.runtime.models import ProcessInstance, Task
from tests.support.pages import advance, ready_task

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _block(html: str, name: str) -> str:
    """The opening tag of a conditional field's block."""
    found = re.search(rf'<div class="app-conditional" id="f-{name}-bloco"[^>]*>', html)
    assert found, name
    return found.group(0)


def _hidden(html: str, name: str) -> bool:
    return " hidden" in _block(html, name)


def _as_posted(answer: dict[str, Any]) -> dict[str, str]:
    """The engine-shaped answer as the task form posts it."""
    data: dict[str, str] = {"aceite_termo.present": "1"}
    for key, value in answer.items():
        if isinstance(value, bool):
            data[key] = "true" if value else "false"
        elif isinstance(value, list):
            data[key + ".present"] = "1"
            for i, row in enumerate(value):
                for k, v in row.items():
                    data[f"{key}.{i}.{k}"] = v
        elif key.startswith("data_"):
            y, m, d = value.split("-")
            data[key] = f"{d}/{m}/{y}"
        else:
            data[key] = str(value)
    return data


def _homologation(world, db) -> tuple[Task, dict[str, str]]:
    ctx = advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    task = ready_task(db, world.instance_id, "solicitar_acesso_homologacao")
    return task, _as_posted(samples.answer("solicitar_acesso_homologacao", ctx))


def _summary(html: str) -> str:
    start = html.index("data-review")
    return html[start : html.index("<form", start)]


def _review_inputs(html: str) -> dict[str, str]:
    return {unescape(n): unescape(v) for n, v in HIDDEN_INPUT.findall(html)}


def test_no_js_round_trip_shows_and_hides_the_dependents(world, db, pages):
    task, data = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    url = f"/tarefas/{task.id}"
    html = gestor.get(url).get_data(as_text=True)
    # Nothing answered yet: the dependents are hidden; each question offers the round trip.
    # (The IP range is asked whatever the kind of system — seed 003 marks both "*".)
    for name in ("filhos", "integracoes"):
        assert _hidden(html, name), name
    assert 'id="f-ip_inicial-bloco"' not in html
    assert html.count('value="refresh"') == 2 and "Atualizar formulário" in html
    assert "js/form-conditions.js" in html
    # "Sim" to each question, then "Atualizar formulário": the dependents appear, required.
    answers = {"possui_filhos": "true", "integra_outros_sistemas": "true",
               "gestor_nome": "Maria da Silva"}  # fmt: skip
    res = gestor.post(url, {"action": "refresh", **answers})
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    for name in ("filhos", "integracoes"):
        assert not _hidden(html, name), name
    assert 'value="Maria da Silva"' in html  # what was typed stays
    shown = html[html.index('id="f-integracoes-bloco"') :][:2000]
    assert 'class="app-req"' in shown  # now required
    # "Não" again hides them.
    res = gestor.post(url, {"action": "refresh", **answers, "possui_filhos": "false"})
    html = res.get_data(as_text=True)
    assert _hidden(html, "filhos") and not _hidden(html, "integracoes")
    # A draft remembers the answer: the page opens with the list shown.
    assert gestor.post(url, {"action": "save", "possui_filhos": "true"}).status_code == 302
    assert not _hidden(gestor.get(url).get_data(as_text=True), "filhos")


def test_a_required_dependent_left_empty_is_shown_with_its_message(world, db, pages):
    task, data = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    data.update({"action": "submit", "integra_outros_sistemas": "true", "integracoes.present": "1"})
    res = gestor.post(f"/tarefas/{task.id}", data)
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert not _hidden(html, "integracoes")
    assert 'id="f-integracoes-erro"' in html and 'href="#f-integracoes"' in html
    with db.read() as s:
        assert s.get(Task, task.id).state == "ready"


def test_hidden_values_are_dropped_and_never_validated(world, db, pages):
    task, data = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    url = f"/tarefas/{task.id}"
    # "Não" to children and integrations, with junk typed in the hidden fields before.
    data.update({
        "possui_filhos": "false", "filhos.present": "1", "filhos.0.cnes": "<script>",
        "integra_outros_sistemas": "false", "integracoes.present": "1",
        "integracoes.0.sistema": "", "integracoes.0.tipo_integracao": "x" * 5000,
    })  # fmt: skip
    res = gestor.post(url, {**data, "action": "submit"})
    assert res.status_code == 200, res.get_data(as_text=True)[:3000]
    review = res.get_data(as_text=True)
    summary = _summary(review)
    # The summary leaves out what the answers hide (the form behind it keeps it for "Anterior").
    assert "Possui estabelecimento filho?" in summary and "&lt;script&gt;" not in summary
    assert summary.count("Estabelecimentos filhos") == 1  # the group's title, not the list
    assert "Integrações com outros sistemas" not in summary
    res = gestor.post(url, {**_review_inputs(review), "action": "confirm"})
    assert res.status_code == 302, res.get_data(as_text=True)[:3000]
    with db.read() as s:
        assert s.get(Task, task.id).state == "completed"
        event = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "task.completed")
            .order_by(AuditEvent.id.desc())
        ).first()
    sent = event.data["data"]
    assert sent["possui_filhos"] is False and "filhos" not in sent and "integracoes" not in sent


def test_review_then_back_then_confirm_completes(world, db, app, pages):
    task, data = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    url = f"/tarefas/{task.id}"
    data["certificado_senha"] = "segredo-do-pfx"
    res = gestor.post(url, {**data, "action": "submit"})
    assert res.status_code == 200
    review = res.get_data(as_text=True)
    # A read-only summary: labels and values, lists as tables, secrets masked.
    assert "Resumo da solicitação" in review and "data-review" in review
    assert "Nome do gestor" in review and data["gestor_nome"] in review
    assert "<table>" in review and "/fhir/r4/Patient" in review
    assert "••••••••" in review and "segredo-do-pfx" not in review
    assert 'value="confirm"' in review and 'value="back"' in review
    with db.read() as s:
        assert s.get(Task, task.id).state == "ready"  # nothing sent yet
    posted = _review_inputs(review)
    assert "certificado_senha" not in posted
    # "Anterior": the filled form again, nothing lost.
    back = gestor.post(url, {**posted, "action": "back"})
    assert back.status_code == 200
    form = back.get_data(as_text=True)
    assert 'class="app-task-form"' in form and "data-review" not in form
    for kept in (data["gestor_nome"], data["sistema_nome"], data["ip_inicial"], "/fhir/r4/Patient"):
        assert f'value="{kept}"' in form, kept
    # "Confirmar" needs the CSRF token like every post.
    app.config["WTF_CSRF_ENABLED"] = True
    forged = {k: v for k, v in posted.items() if k != "csrf_token"}
    refused = gestor.post(url, {**forged, "action": "confirm"}, csrf=False)
    assert refused.status_code == 400
    with db.read() as s:
        assert s.get(Task, task.id).state == "ready"
    done = gestor.post(url, {**forged, "action": "confirm"})
    assert done.status_code == 302, done.get_data(as_text=True)[:3000]
    with db.read() as s:
        assert s.get(Task, task.id).state == "completed"
        assert s.get(ProcessInstance, world.instance_id).stage == "Solicitação em análise"


def test_review_shows_errors_on_the_form_not_on_the_summary(world, db, pages):
    task, data = _homologation(world, db)
    gestor = pages(world.users["gestor"])
    res = gestor.post(f"/tarefas/{task.id}", {**data, "action": "submit", "gestor_cpf": "123"})
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert 'id="f-gestor_cpf-erro"' in html and "data-review" not in html


def test_forms_without_review_complete_directly(world, db, pages):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    html = gestor.get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "Revisar e enviar" not in html and "Atualizar formulário" not in html
