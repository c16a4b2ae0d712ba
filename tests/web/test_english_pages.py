"""The pages in English, process words included: task names, instructions, form labels,
help, options, validation messages, stage names and process titles."""

from __future__ import annotations

import html as htmlmod

from sqlalchemy import update

from engine.accounts.models import User
from tests.support.pages import advance, ready_task


def _english(db, user) -> None:
    """The user chose English in their account (the sign-in then sets the cookie)."""
    with db.write() as s:
        s.execute(update(User).where(User.email == user.email).values(locale="en"))


def _text(res) -> str:
    return htmlmod.unescape(res.get_data(as_text=True))


def test_task_page_and_its_errors_in_english(world, db, pages) -> None:
    advance(db, world, ["obter_certificado_digital"])
    task = ready_task(db, world.instance_id, "criar_conta_govbr")
    _english(db, world.users["gestor"])
    gestor = pages(world.users["gestor"])

    page = _text(gestor.get(f"/tarefas/{task.id}"))
    assert '<html lang="en"' in page
    assert "<h1>Create gov.br account</h1>" in page
    assert "Create the gov.br account of the person responsible" in page  # instructions
    assert "Responsible person&#39;s CPF" in page or "Responsible person's CPF" in page
    assert "gov.br account level" in page and ">Silver</label>" in page
    assert "I confirm that the gov.br account was created" in page
    assert "Preparation" in page  # the stage
    assert "Lane: <strong>Manager</strong>" in page
    assert "Criar conta gov.br" not in page and "Nível da conta" not in page

    res = gestor.post(
        f"/tarefas/{task.id}",
        {"action": "submit", "cpf_responsavel": "111.444.777-00", "nivel_conta": "prata"},
    )
    assert res.status_code == 422
    page = _text(res)
    assert "The CPF's check digits do not match." in page
    assert "This option must be ticked." in page
    assert "Dígitos verificadores" not in page

    inbox = _text(gestor.get("/"))
    assert "Create gov.br account" in inbox and "Preparation" in inbox
    instance = _text(gestor.get(f"/processos/{world.instance_id}"))
    assert "RNDS credentialing" in instance and "Create gov.br account" in instance
    assert "Task completed: Obtain digital certificate" in instance  # the timeline


def test_portuguese_stays_the_default(world, db, pages) -> None:
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    gestor = pages(world.users["gestor"])
    page = _text(gestor.get(f"/tarefas/{task.id}"))
    assert "<h1>Obter certificado digital</h1>" in page and "Preparação" in page


def test_the_browsers_language_is_honoured_before_anyone_signs_in(pages) -> None:
    anonymous = pages()
    english = anonymous.get("/entrar", headers={"Accept-Language": "en-US,en;q=0.8"})
    assert '<html lang="en"' in english.get_data(as_text=True)
    assert english.headers["Content-Language"] == "en"
    assert "Accept-Language" in english.headers["Vary"]
    other = anonymous.get("/entrar", headers={"Accept-Language": "fr-FR, pt;q=0.5"})
    assert '<html lang="pt-BR"' in other.get_data(as_text=True)


def test_a_long_form_and_the_dashboard_in_english(world, db, pages) -> None:
    advance(db, world, ["obter_certificado_digital", "criar_conta_govbr"])
    task = ready_task(db, world.instance_id, "solicitar_acesso_homologacao")
    _english(db, world.users["gestor"])
    gestor = pages(world.users["gestor"])
    page = _text(gestor.get(f"/tarefas/{task.id}"))
    assert "<h1>Request access (homologation)</h1>" in page
    assert "Origin of the request" in page  # a group's title
    assert ">Ministry of Health</label>" in page  # a plain enum option's label
    assert 'value="Ministério da Saúde"' in page  # its value does not change
    assert "At most 400 characters." in page  # help
    assert "Child establishments" in page
    _english(db, world.users["admin"])
    dashboard = _text(pages(world.users["admin"]).get("/painel"))
    # The stage names, each counted once per UF, and the process filter's titles.
    assert "Preparation" in dashboard and "Rejected — adjustment pending" in dashboard
    assert "RNDS credentialing" in dashboard
    assert ">Preparação<" not in dashboard  # (only as a filter value)
