"""Invitations and tokens in a real Chromium, as people use them: the admin invites someone
through the form, the person opens the e-mailed link, creates their account and signs in;
the admin page lists pending invitations and tokens of every kind. axe-core finds no serious
or critical violation and no script fails."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.accounts.models import ApiToken
from engine.db import utcnow
from engine.notifications.models import OutboxMessage
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    login,
    screenshot,
    serve,
)

pytestmark = pytest.mark.browser


def test_inviting_accepting_and_the_admin_page(world, db, app) -> None:
    problems: list[str] = []

    def check(page: Any, kind: str) -> None:
        page.wait_for_load_state("load")
        screenshot(page, kind)
        for v in axe_violations(page):
            problems.append(f"{kind}: {v['id']} ({v['impact']}) {v['help']} at {v['nodes']}")

    with db.write() as s:  # tokens in each state
        rows = s.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        rows[1].expires_at = utcnow() - timedelta(days=1)
        rows[2].revoked_at = utcnow()
        s.execute(update(ApiToken).where(ApiToken.id == rows[3].id).values(org_id=world.org))
    with serve(app) as base, chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
        admin = world.users["admin"]
        login(page, base, admin.email, admin.password)
        page.goto(f"{base}/administracao")
        page.fill("#f-email", "convidada@exemplo.gov.br")
        page.fill("#f-name", "Convidada")
        page.select_option("#f-role", "auditor")
        page.click("button:has-text('Conceder')")
        page.wait_for_load_state("domcontentloaded")
        assert "Convite enviado para convidada@exemplo.gov.br" in page.inner_text("main")
        assert "convidada@exemplo.gov.br" in page.inner_text("#convites")
        tokens = page.inner_text("#tokens")
        assert "expirado" in tokens and "revogado em" in tokens and "esta organização" in tokens
        check(page, "admin-invitations-tokens")
        ctx.close()

        with db.read() as s:
            body = s.scalar(
                select(OutboxMessage.body_text).where(OutboxMessage.kind == "invitation")
            )
        link = re.search(r"/convites/[A-Za-z0-9_-]+", body).group(0)
        ctx = browser.new_context(viewport={"width": 390, "height": 900}, locale="pt-BR")
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
        page.goto(base + link)
        check(page, "invitation-new-account-phone")
        page.fill("#f-password", "senha-da-convidada")
        page.fill("#f-password2", "outra-senha-qualquer")
        page.click("button:has-text('Criar conta e aceitar')")
        page.wait_for_load_state("domcontentloaded")
        assert "As senhas não conferem" in page.inner_text("main")
        check(page, "invitation-error-phone")
        page.fill("#f-password", "senha-da-convidada")
        page.fill("#f-password2", "senha-da-convidada")
        page.click("button:has-text('Criar conta e aceitar')")
        page.wait_for_load_state("domcontentloaded")
        assert "Conta criada" in page.inner_text("main")
        login(page, base, "convidada@exemplo.gov.br", "senha-da-convidada")
        page.goto(f"{base}/auditoria")
        assert page.url.endswith("/auditoria")
        page.goto(base + link)
        assert "expirou, foi cancelado ou já foi usado" in page.inner_text("main")
        check(page, "invitation-gone-phone")
        ctx.close()
    assert not problems, "\n".join(problems)
