"""Signing in with "Entrar com gov.br" in a real Chromium, through a real OpenID provider
(tests/oidc_provider on loopback), and signing out there too; a tampered answer (wrong state)
and an expired ID token shown as a clear page. axe-core finds no serious or critical
violation and no script fails."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from sqlalchemy import select

from engine.access.actor import SYSTEM
from engine.accounts import lifecycle, oidc
from engine.accounts.models import User, WebSession
from engine.audit.models import AuditEvent
from tests.support.live import (
    _front_end_assets,  # noqa: F401 (autouse fixture)
    axe_violations,
    chromium,
    screenshot,
    serve,
)
from tests.support.oidc import TestProvider, _alive

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def op():
    provider = TestProvider()
    provider.start()
    yield provider
    pid = provider.pid
    provider.stop()
    assert pid is not None and not _alive(pid)


@pytest.fixture
def settings(settings, op):
    oidc.forget_cached()
    return dataclasses.replace(settings, oidc_providers=(op.govbr(min_level="prata"),))


def _provider_login(page: Any, login: str) -> None:
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "qualquer")
    page.click("button[type=submit]")
    page.wait_for_load_state("domcontentloaded")


def test_entrar_com_govbr_and_sign_out_there_too(make, db, app, op) -> None:
    problems: list[str] = []

    def check(page: Any, kind: str) -> None:
        page.wait_for_load_state("load")
        screenshot(page, kind)
        for v in axe_violations(page):
            problems.append(f"{kind}: {v['id']} ({v['impact']}) {v['help']} at {v['nodes']}")

    make.org()
    person = make.user("sesa-pr", "gestor", email="servidora@exemplo.gov.br")
    with db.write() as s:
        user = s.scalar(select(User).where(User.email == person.email))
        lifecycle.set_cpf(s, SYSTEM, user, "52998224725")
        uid = user.id
    with serve(app) as base, chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
        page.goto(f"{base}/entrar")
        button = page.locator("a.br-sign-in")
        assert " ".join(button.inner_text().split()) == "Entrar com gov.br"
        check(page, "login-govbr")
        button.click()
        assert page.url.startswith(op.issuer)  # at the provider
        _provider_login(page, "52998224725")
        page.wait_for_url(f"{base}/**")
        assert person.email in page.inner_text("header")
        with db.read() as s:
            assert s.scalar(select(WebSession.id).where(WebSession.user_id == uid))

        page.click("button:has-text('Sair')")
        page.wait_for_url(op.issuer + "/session/end**")  # gov.br's logout, mandatory
        page.click("button:has-text('Yes, sign me out')")
        page.wait_for_url(f"{base}/entrar**")
        assert "Você saiu do Credencia e do provedor de identidade" in page.inner_text("main")
        with db.read() as s:
            assert s.scalar(select(WebSession.id).where(WebSession.user_id == uid)) is None
        # Signed out at the provider too: it asks for the login again.
        page.click("a.br-sign-in")
        page.wait_for_selector("input[name=login]")
        assert page.url.startswith(op.issuer)

        # A tampered answer: the state does not match this browser's request.
        _provider_login(page, "52998224725")
        page.wait_for_url(f"{base}/**")
        page.click("button:has-text('Sair')")
        page.click("button:has-text('Yes, sign me out')")
        page.wait_for_url(f"{base}/entrar**")

        def tamper(route: Any) -> None:
            # The provider is sent another state than the one this browser keeps.
            response = route.fetch(max_redirects=0)
            url = urlsplit(response.headers["location"])
            query = dict(parse_qsl(url.query), state="adulterado")
            headers = {
                **response.headers,
                "location": urlunsplit(url._replace(query=urlencode(query))),
            }
            route.fulfill(response=response, headers=headers)

        start = re.compile(r"/entrar/oidc/govbr(\?.*)?$")
        page.route(start, tamper)
        page.click("a.br-sign-in")
        _provider_login(page, "52998224725")
        page.wait_for_selector("#oidc-refused")
        assert "não corresponde a um pedido de entrada" in page.inner_text("main")
        check(page, "login-refused-state")
        page.unroute(start)

        # An expired ID token (the provider's clock two hours behind when it issues it).
        page.goto(f"{base}/entrar")
        op.next_token("expired")
        page.click("a.br-sign-in")
        page.wait_for_selector("#oidc-refused")
        assert "está vencido" in page.inner_text("main")
        assert person.email not in page.inner_text("header")
        ctx.close()
    with db.read() as s:
        reasons = [
            e.data.get("reason")
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "auth.oidc_refused"))
        ]
    assert "state" in reasons and "expired" in reasons
    assert not problems, "\n".join(problems)
