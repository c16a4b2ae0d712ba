"""A credenciamento's first human steps in a real Chromium, in English: the browser asks for
English, the person picks it, and every word of the process (task names, instructions, form
labels, options, validation messages, stage names) reads in English."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.demo import samples
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    chromium,
    screenshot,
    serve,
)
from tests.support.pages import (
    advance,
    open_task,
    radio,
    ready_task,
    send_task_form,
    tick,
    upload,
)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def test_first_steps_of_a_credenciamento_in_english(world, app) -> None:
    gestor = world.users["gestor"]
    errors: list[str] = []
    with serve(app) as base, chromium() as browser:
        page = browser.new_context(locale="en-US").new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Nobody signed in yet: the browser's Accept-Language decides.
        page.goto(base + "/entrar")
        assert page.get_attribute("html", "lang") == "en"
        assert page.inner_text("h1") == "Sign in to Credencia"
        page.click("button[value=en]")  # the person's choice, kept after signing in
        page.fill("#email", gestor.email)
        page.fill("#password", gestor.password)
        page.click("button[type=submit]:has-text('Sign in')")
        page.wait_for_load_state("domcontentloaded")

        inbox = page.inner_text("main")
        assert "Obtain digital certificate" in inbox and "Preparation" in inbox
        assert "Obter certificado digital" not in inbox

        open_task(page, base, "Obtain digital certificate")
        assert page.inner_text("h1") == "Obtain digital certificate"
        assert "Obtain an ICP-Brasil digital certificate" in page.inner_text(".app-instructions")
        assert page.inner_text("label[for='f-certificado']").startswith(
            "ICP-Brasil digital certificate (.cer or .pfx)"
        )
        certificate = samples.demo_certificate(world.est.cnpj)
        upload(page, "#f-certificado", [("e.cer", "application/pkix-cert", certificate)])
        send_task_form(page)

        open_task(page, base, "Create gov.br account")
        main = page.inner_text("main")
        assert "Responsible person's CPF" in main and "gov.br account level" in main
        assert "Silver" in page.inner_text("fieldset:has(input[name='nivel_conta'])")
        assert "Preparation" in main
        page.fill("#f-cpf_responsavel", "111.444.777-00")
        radio(page, "nivel_conta", "prata")
        send_task_form(page)  # the box left unticked, the CPF's digits wrong
        assert page.inner_text("#f-cpf_responsavel-erro") == "The CPF's check digits do not match."
        assert "This option must be ticked." in page.inner_text("main")
        screenshot(page, "task-errors-en")
        page.fill("#f-cpf_responsavel", "390.533.447-05")
        tick(page, "#f-conta_confirmada")
        send_task_form(page)

        page.goto(base + f"/processos/{world.instance_id}")
        facts = page.inner_text("main")
        assert "RNDS credentialing" in facts and "Preparation" in facts
        assert "Request access (homologation)" in facts

        open_task(page, base, "Request access (homologation)")
        main = page.inner_text("main")
        assert "Origin of the request" in main and "Ministry of Health" in main
        assert "Child establishments" in main and "Terms of use" in main
        screenshot(page, "homologation-form-en")
    assert errors == []


def test_every_step_of_a_whole_credenciamento_reads_in_english(world, app, db) -> None:
    """Each task page of the credenciamento, from the first step to production, as its lane's
    person sees it in English (the steps are completed through the engine in between)."""
    words = json.loads(
        (ROOT / "processes" / "credenciamento-rnds" / "i18n" / "en.json").read_text("utf-8")
    )
    roles = {"Gestor": "gestor", "Integrador": "integrador", "DATASUS": "datasus"}
    seen: list[str] = []
    with serve(app) as base, chromium() as browser:
        pages = {}
        for lane, role in roles.items():
            page = browser.new_context(locale="en-US").new_page()
            page.goto(base + "/entrar")
            page.click("button[value=en]")  # the person's choice of language
            page.fill("#email", world.users[role].email)
            page.fill("#password", world.users[role].password)
            page.click("button[type=submit]:has-text('Sign in')")
            page.wait_for_load_state("domcontentloaded")
            pages[lane] = page
        for element in samples.PRODUCTION_PATH:
            task = ready_task(db, world.instance_id, element)
            page = pages[task.lane]
            page.goto(f"{base}/tarefas/{task.id}")
            heading = page.inner_text("h1")
            assert heading == words[task.name] != task.name, element
            assert page.get_attribute("html", "lang") == "en"
            labels = [
                text.splitlines()[0].removesuffix(" *").strip()
                for text in page.locator("main label, main legend").all_inner_texts()
                if text.strip()
            ]
            portuguese = [t for t in labels if t in words and words[t] != t]
            assert labels and not portuguese, (element, portuguese)
            seen.append(heading)
            advance(db, world, [element])
        page = pages["Gestor"]
        page.goto(f"{base}/processos/{world.instance_id}")
        # the stage as the instance page shows it (the diagram's own labels stay as drawn)
        stages = page.locator("main .app-stage").all_inner_texts()
        assert "Production" in stages and "Produção" not in stages
        screenshot(page, "instance-in-production-en")
    assert len(seen) == len(samples.PRODUCTION_PATH)
