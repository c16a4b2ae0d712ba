"""Signing in through a real OpenID provider (tests/oidc_provider: panva/oidc-provider on
loopback): the authorization code flow with PKCE, the account found by verified e-mail or by
CPF (gov.br preset, minimum account level), and every bad answer refused with a clear page and
an audit event — wrong state, expired ID token, another audience, an unknown issuer, a bad
signature, a replayed nonce. A key rotation at the provider needs nothing on our side."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
from sqlalchemy import func, select

from engine.access.actor import SYSTEM
from engine.accounts import lifecycle, oidc
from engine.accounts.models import Membership, User
from engine.audit.models import AuditEvent
from tests.support.live import serve
from tests.support.oidc import TestProvider, _alive, sign_in_at_provider


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
    providers = (
        op.config(),
        op.govbr(min_level="prata"),
        # The installation allows accounts made at first sign-in, with a role from a group.
        op.config(name="grupos", create_accounts=True, role_claim="groups",
                  role_map=(("credencia-auditores", "sesa-pr", "auditor"),
                            ("credencia-admins", "sesa-pr", "admin"))),
    )  # fmt: skip
    return dataclasses.replace(settings, oidc_providers=providers)


@pytest.fixture
def people(make, db):
    make.org()
    ana = make.user("sesa-pr", "gestor", email="ana.oidc@exemplo.gov.br")
    bia = make.user("sesa-pr", "auditor", email="bia.oidc@exemplo.gov.br")
    gold = make.user("sesa-pr", "admin", email="outro.email@exemplo.gov.br")
    bronze = make.user("sesa-pr", "auditor", email="mais.um@exemplo.gov.br")
    with db.write() as s:
        lifecycle.set_cpf(s, SYSTEM, s.scalar(select(User).where(User.email == gold.email)),
                          "529.982.247-25")  # fmt: skip
        lifecycle.set_cpf(s, SYSTEM, s.scalar(select(User).where(User.email == bronze.email)),
                          "11144477735")  # fmt: skip
    return {"ana": ana, "bia": bia, "gold": gold, "bronze": bronze}


def _come_back(http: requests.Session, back: requests.Response) -> requests.Response:
    return http.get(urljoin(back.url, back.headers["Location"]), allow_redirects=False)


def _sign_in(
    base: str, login: str, provider: str = "teste"
) -> tuple[requests.Session, requests.Response]:
    http = requests.Session()
    back = sign_in_at_provider(http, f"{base}/entrar/oidc/{provider}", login)
    return http, _come_back(http, back)


def _refusals(db, reason: str) -> list[AuditEvent]:
    with db.read() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "auth.oidc_refused")).all()
        return [r for r in rows if r.data.get("reason") == reason]


def _signed_in_as(http: requests.Session, base: str) -> str:
    page = http.get(f"{base}/conta", allow_redirects=False)
    return page.text if page.status_code == 200 else ""


def test_sign_in_by_verified_email_with_pkce_state_and_nonce(app, db, people, op) -> None:
    with serve(app) as base:
        http = requests.Session()
        start = http.get(f"{base}/entrar/oidc/teste?next=/conta", allow_redirects=False)
        query = dict(parse_qsl(urlsplit(start.headers["Location"]).query))
        assert start.headers["Location"].startswith(op.issuer + "/auth")
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
        assert query["redirect_uri"] == f"{base}/entrar/oidc/teste/retorno"
        back = sign_in_at_provider(requests.Session(), f"{base}/entrar/oidc/teste", "ana")
        assert back.status_code in (302, 303)
        http, done = _sign_in(base, "ana")
        assert done.status_code == 302
        assert "ana.oidc@exemplo.gov.br" in _signed_in_as(http, base)
    with db.read() as s:
        login = s.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login")).all()
        assert any(e.data.get("method") == "oidc" and e.data.get("sub") == "ana" for e in login)


def test_an_unverified_email_or_an_unknown_person_is_refused_and_nothing_created(
    app, db, people
) -> None:
    with db.read() as s:
        before = s.scalar(select(func.count()).select_from(User))
    with serve(app) as base:
        http, page = _sign_in(base, "bia")
        assert page.status_code == 401
        assert "não confirma que o e-mail é seu" in page.text
        assert _signed_in_as(http, base) == ""
        http, page = _sign_in(base, "caio")
        assert page.status_code == 401
        assert "Nenhuma conta do Credencia corresponde" in page.text
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(User)) == before
    assert _refusals(db, "email_unverified") and _refusals(db, "no_account")


def test_a_wrong_state_is_refused(app, db, people) -> None:
    with serve(app) as base:
        http = requests.Session()
        back = sign_in_at_provider(http, f"{base}/entrar/oidc/teste", "ana")
        url = urlsplit(urljoin(back.url, back.headers["Location"]))
        query = dict(parse_qsl(url.query), state="forjado-" + "x" * 40)
        page = http.get(urlunsplit(url._replace(query=urlencode(query))), allow_redirects=False)
        assert page.status_code == 401
        assert "não corresponde a um pedido de entrada" in page.text
        assert _signed_in_as(http, base) == ""
    assert _refusals(db, "state")


@pytest.mark.parametrize(
    ("mode", "reason", "words"),
    [
        ("expired", "expired", "está vencido"),
        ("audience", "audience", "emitido para outra aplicação"),
        ("issuer", "issuer", "emissor que esta instalação não aceita"),
        ("signature", "signature", "assinatura do token de identidade não confere"),
    ],
)
def test_a_bad_id_token_is_refused_with_a_clear_page_and_audited(
    app, db, people, op, mode, reason, words
) -> None:
    with serve(app) as base:
        http = requests.Session()
        back = sign_in_at_provider(http, f"{base}/entrar/oidc/teste", "ana")
        op.next_token(mode)
        page = _come_back(http, back)
        assert page.status_code == 401
        assert words in page.text
        assert _signed_in_as(http, base) == ""
    assert _refusals(db, reason)


def test_a_replayed_id_token_fails_on_its_nonce(app, db, people, op) -> None:
    with serve(app) as base:
        http, done = _sign_in(base, "ana")  # the provider remembers this ID token
        assert done.status_code == 302
        http = requests.Session()
        back = sign_in_at_provider(http, f"{base}/entrar/oidc/teste", "ana")
        op.next_token("replay")
        page = _come_back(http, back)
        assert page.status_code == 401
        assert "nonce repetido ou trocado" in page.text
    assert _refusals(db, "nonce")


def test_the_callback_cannot_be_used_twice(app, db, people) -> None:
    with serve(app) as base:
        http = requests.Session()
        back = sign_in_at_provider(http, f"{base}/entrar/oidc/teste", "ana")
        assert _come_back(http, back).status_code == 302
        http.cookies.clear()
        again = _come_back(http, back)
        assert again.status_code == 401
        assert "(state)" in again.text


def test_a_key_rotation_at_the_provider_is_followed(app, db, people, op) -> None:
    with serve(app) as base:
        assert _sign_in(base, "ana")[1].status_code == 302
        old_kid, old_pid = op.kid, op.pid
        op.restart()  # a new signing key under a new key id, same issuer
        assert op.kid != old_kid and not _alive(old_pid)
        http, done = _sign_in(base, "ana")
        assert done.status_code == 302
        assert "ana.oidc@exemplo.gov.br" in _signed_in_as(http, base)


def test_govbr_finds_the_account_by_cpf_and_asks_for_the_minimum_level(app, db, people) -> None:
    with serve(app) as base:
        http, done = _sign_in(base, "52998224725", provider="govbr")
        assert done.status_code == 302
        assert people["gold"].email in _signed_in_as(http, base)
        http, page = _sign_in(base, "11144477735", provider="govbr")
        assert page.status_code == 401
        assert "nível bronze" in page.text and "mínimo o nível prata" in page.text
    refused = _refusals(db, "level")
    assert refused and refused[0].data["level"] == "bronze"
    assert refused[0].org_id is not None  # in the person's organization's log


def test_a_deactivated_person_cannot_sign_in_through_the_provider(app, db, people) -> None:
    with db.write() as s:
        user = s.scalar(select(User).where(User.email == people["ana"].email))
        lifecycle.deactivate(s, SYSTEM, user.id)
    with serve(app) as base:
        http, page = _sign_in(base, "ana")
        assert page.status_code == 401
        assert "Esta conta está desativada" in page.text
    assert _refusals(db, "inactive")


def test_where_the_installation_allows_it_an_account_is_made_with_the_mapped_role(
    app, db, people
) -> None:
    with serve(app) as base:
        http, done = _sign_in(base, "caio", provider="grupos")
        assert done.status_code == 302
        assert "caio.oidc@exemplo.gov.br" in _signed_in_as(http, base)
        assert http.get(f"{base}/auditoria", allow_redirects=False).status_code == 200
        http, page = _sign_in(base, "bia", provider="grupos")  # unverified: still refused
        assert page.status_code == 401
    with db.read() as s:
        caio = s.scalar(select(User).where(User.email == "caio.oidc@exemplo.gov.br"))
        assert caio.password_hash is None
        roles = s.scalars(select(Membership.role).where(Membership.user_id == caio.id)).all()
        assert roles == ["auditor"]
        created = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.created")).all()
        assert any(e.actor == "oidc:grupos" for e in created)
        granted = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.role_granted")
        ).all()
        assert any(e.actor == "oidc:grupos" and e.data["role"] == "auditor" for e in granted)


def test_an_unknown_provider_is_not_found(client, db, people) -> None:
    page = client.get("/entrar/oidc/desconhecido")
    assert page.status_code == 404
    assert "não está configurado" in page.get_data(as_text=True)


def test_local_login_can_be_turned_off(app, db, people) -> None:
    app.extensions["credencia.settings"] = dataclasses.replace(
        app.extensions["credencia.settings"], local_login=False
    )
    app.config["WTF_CSRF_ENABLED"] = False  # this test is about the switch, not the token
    client = app.test_client()
    page = client.get("/entrar").get_data(as_text=True)
    assert 'name="password"' not in page and "Entrar com" in page and "gov.br" in page
    refused = client.post("/entrar", data={"email": people["ana"].email,
                                           "password": people["ana"].password})  # fmt: skip
    assert refused.status_code == 403
    assert "só pelo provedor de identidade" in refused.get_data(as_text=True)


def test_an_admin_signed_in_through_govbr_is_not_sent_to_set_up_totp(app, db, people) -> None:
    app.extensions["credencia.settings"] = dataclasses.replace(
        app.extensions["credencia.settings"], totp_required_for_admins=True
    )
    with serve(app) as base:
        http, done = _sign_in(base, "52998224725", provider="govbr")
        assert done.status_code == 302
        assert http.get(f"{base}/administracao", allow_redirects=False).status_code == 200
