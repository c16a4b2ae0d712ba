"""One's own account in a real Chromium: the TOTP set-up (the key shown, a code typed), the
next sign-in asking for the code, a refused password change at its field, and the admin
deactivating a person from the people list. axe-core finds no serious or critical violation
and no script fails."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from engine.accounts import totp
from engine.accounts.models import User
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    login,
    screenshot,
    serve,
)

pytestmark = pytest.mark.browser


def test_totp_password_and_deactivation_on_the_pages(world, db, app) -> None:
    problems: list[str] = []

    def check(page: Any, kind: str) -> None:
        page.wait_for_load_state("load")
        screenshot(page, kind)
        for v in axe_violations(page):
            problems.append(f"{kind}: {v['id']} ({v['impact']}) {v['help']} at {v['nodes']}")

    gestor, admin = world.users["gestor"], world.users["admin"]
    with serve(app) as base, chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
        login(page, base, gestor.email, gestor.password)
        page.click(f"a:has-text('{gestor.email}')")
        page.wait_for_load_state("domcontentloaded")
        assert page.url.endswith("/conta")
        check(page, "account")
        page.fill("#f-current", "errada-errada")
        page.fill("#f-password", "uma-senha-nova-boa")
        page.fill("#f-password2", "uma-senha-nova-boa")
        page.click("button:has-text('Trocar a senha')")
        page.wait_for_load_state("domcontentloaded")
        assert "Senha atual incorreta" in page.inner_text("#senha")
        page.click("a:has-text('Ativar a verificação em duas etapas')")
        page.wait_for_load_state("domcontentloaded")
        secret = page.inner_text("#totp-secret")
        check(page, "account-totp-setup")
        page.fill("#f-code", totp.code_at(secret, totp.now_step()))
        page.click("button:has-text('Ativar')")
        page.wait_for_load_state("domcontentloaded")
        assert "Verificação em duas etapas ativada" in page.inner_text("main")
        page.click("button:has-text('Sair')")
        page.wait_for_load_state("domcontentloaded")

        login(page, base, gestor.email, gestor.password)
        assert page.url.endswith("/entrar/codigo")
        check(page, "login-totp")
        with time_machine.travel(time.time() + totp.STEP, tick=True):
            page.fill("#f-code", totp.code_at(secret, totp.now_step()))
        page.click("button:has-text('Confirmar')")
        page.wait_for_load_state("domcontentloaded")
        assert gestor.email in page.inner_text("header")
        ctx.close()

        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
        page.on("dialog", lambda dialog: dialog.accept())
        login(page, base, admin.email, admin.password)
        page.goto(f"{base}/administracao")
        page.click(f"button:has-text('Desativar'):has(span:text-is(' {gestor.email}'))")
        page.wait_for_load_state("domcontentloaded")
        assert "Pessoa desativada" in page.inner_text("main")
        assert "desativada" in page.inner_text("#pessoas-titulo + div")
        check(page, "admin-deactivated")
        ctx.close()
    with db.read() as s:
        assert not s.scalar(select(User.active).where(User.email == gestor.email))
    assert re.match(r"^[A-Z2-7]{32}$", secret)
    assert not problems, "\n".join(problems)
