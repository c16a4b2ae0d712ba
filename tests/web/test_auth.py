"""Signing in and out, cookies, session rotation, language switch."""

from __future__ import annotations

from sqlalchemy import select

from engine.accounts.models import User
from engine.audit.models import AuditEvent


def _cookie_header(res, name: str) -> str:
    return next(h for h in res.headers.getlist("Set-Cookie") if h.startswith(name + "="))


def test_wrong_password_and_unknown_user_get_the_same_message(world, pages, db):
    p = pages()
    wrong = p.post("/entrar", {"email": world.users["gestor"].email, "password": "errada"})
    unknown = p.post("/entrar", {"email": "ninguem@exemplo.gov.br", "password": "errada"})
    assert wrong.status_code == unknown.status_code == 401
    for res in (wrong, unknown):
        assert "E-mail ou senha incorretos." in res.get_data(as_text=True)
    assert world.users["gestor"].email in wrong.get_data(as_text=True)  # the e-mail typed is kept
    with db.read() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("auth.%"))).all()
    assert actions.count("auth.login_failed") == 2


def test_login_sets_a_fresh_http_only_lax_cookie_and_audits(world, pages, db):
    p = pages()
    before = p.csrf()
    res = p.post("/entrar", {"email": world.users["gestor"].email, "password": world.users["gestor"].password,
                             "csrf_token": before, "next": "/estabelecimentos"})  # fmt: skip
    assert res.status_code == 302 and res.headers["Location"] == "/estabelecimentos"
    cookie = _cookie_header(res, "credencia_session")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    # The session was rebuilt at sign-in: a token issued before it no longer works.
    assert p.post("/idioma", {"locale": "en", "csrf_token": before}, csrf=False).status_code == 400
    with db.read() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login")) is not None


def test_cookie_is_secure_over_https(world, pages):
    from tests.support.pages import CSRF_RE

    base = "https://credencia.exemplo.gov.br"
    client = pages().client
    token = CSRF_RE.search(client.get("/entrar", base_url=base).get_data(as_text=True)).group(1)
    res = client.post("/entrar", base_url=base, headers={"Referer": base + "/entrar"},
                      data={"email": world.users["gestor"].email, "password": world.users["gestor"].password,
                            "csrf_token": token})  # fmt: skip
    assert res.status_code == 302
    assert "Secure" in _cookie_header(res, "credencia_session")


def test_next_must_be_a_local_path(world, pages):
    p = pages()
    res = p.post("/entrar", {"email": world.users["gestor"].email, "password": world.users["gestor"].password,
                             "next": "https://malicioso.exemplo/"})  # fmt: skip
    assert res.headers["Location"] == "/"


def test_logout_ends_the_session(world, pages):
    p = pages(world.users["gestor"])
    assert p.get("/").status_code == 200
    assert p.post("/sair").status_code == 302
    assert p.get("/").status_code == 302


def test_language_switch_is_remembered(world, pages, db):
    p = pages(world.users["gestor"])
    assert "Minhas tarefas" in p.get("/").get_data(as_text=True)
    res = p.post("/idioma", {"locale": "en", "next": "/"})
    assert res.status_code == 302 and "credencia_locale=en" in _cookie_header(
        res, "credencia_locale"
    )
    html = p.get("/").get_data(as_text=True)
    assert "My tasks" in html and 'lang="en"' in html
    with db.read() as s:
        assert (
            s.scalar(select(User.locale).where(User.email == world.users["gestor"].email)) == "en"
        )
    # A new browser (no cookie) gets the user's saved choice after signing in.
    again = pages(world.users["gestor"])
    assert "My tasks" in again.get("/").get_data(as_text=True)


def test_dates_are_dd_mm_yyyy(world, pages):
    import re

    html = pages(world.users["gestor"]).get("/").get_data(as_text=True)
    assert re.search(r"\b[0-3][0-9]/[01][0-9]/20[0-9]{2}\b", html)
