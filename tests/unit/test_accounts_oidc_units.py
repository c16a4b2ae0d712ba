"""The pieces of sign-in that need no provider: the providers file, the gov.br level claim,
TOTP codes (RFC 6238's own test vectors), the password rules and the CSP for providers."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from engine import settings as settings_mod
from engine.accounts import oidc, passwords, totp
from engine.accounts.lifecycle import _cpf_valid
from engine.errors import Invalid
from web.security import CSP, csp_for


def test_the_govbr_preset_fills_in_what_govbr_asks(tmp_path) -> None:
    (tmp_path / "govbr.secret").write_text("s3gredo\n")
    (tmp_path / "providers.json").write_text(json.dumps([
        {"preset": "govbr", "client_id": "credencia", "client_secret_file": "govbr.secret",
         "min_level": "prata"},
        {"name": "sesa", "discovery_url": "https://sso.sesa.gov.br/realms/sesa/.well-known/openid-configuration",
         "client_id": "c"},
    ]))  # fmt: skip
    govbr, sesa = settings_mod.oidc_providers_from_file(str(tmp_path / "providers.json"))
    assert govbr.name == "govbr" and govbr.govbr and govbr.label == "gov.br"
    assert govbr.discovery_url == settings_mod.GOVBR_DISCOVERY
    assert govbr.issuer == "https://sso.acesso.gov.br/"
    assert govbr.scopes == ("openid", "email", "profile", "govbr_confiabilidades")
    assert govbr.match == ("cpf",) and govbr.cpf_claim == "sub" and govbr.logout
    assert govbr.client_secret == "s3gredo" and "s3gredo" not in repr(govbr)
    assert sesa.issuer == "https://sso.sesa.gov.br/realms/sesa" and sesa.match == ("email",)
    staging = settings_mod.oidc_providers([{"preset": "govbr", "client_id": "x", "staging": True}])
    assert staging[0].issuer == "https://sso.staging.acesso.gov.br/"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"preset": "govbr"}, "client_id"),
        ({"preset": "govbr", "client_id": "x", "logout": False}, "gov.br exige"),
        ({"preset": "govbr", "client_id": "x", "min_level": "platina"}, "min_level"),
        ({"name": "X Y", "discovery_url": "https://a/", "client_id": "x"}, "name"),
        ({"name": "a", "discovery_url": "ftp://a/", "client_id": "x"}, "discovery_url"),
        (
            {"name": "a", "discovery_url": "https://a/", "client_id": "x", "scopes": ["email"]},
            "openid",
        ),
        (
            {"name": "a", "discovery_url": "https://a/", "client_id": "x", "match": ["nome"]},
            "match",
        ),
        (
            {"name": "a", "discovery_url": "https://a/", "client_id": "x", "segredo": "1"},
            "desconhecida",
        ),
    ],
)
def test_a_bad_provider_stops_the_start_naming_the_problem(raw, words) -> None:
    with pytest.raises(settings_mod.SettingsError, match=words):
        settings_mod.oidc_providers([raw])


def test_a_role_map_needs_its_claim_and_organization_wide_roles() -> None:
    base = {"name": "a", "discovery_url": "https://a/", "client_id": "x"}
    (provider,) = settings_mod.oidc_providers([{**base, "role_claim": "groups", "create_accounts": True,
                                                "role_map": {"g1": {"org": "sesa-pr", "role": "auditor"}}}])  # fmt: skip
    assert provider.role_map == (("g1", "sesa-pr", "auditor"),) and provider.create_accounts
    assert settings_mod.oidc_providers([base])[0].role_map == ()  # off by default
    assert not settings_mod.oidc_providers([base])[0].create_accounts
    with pytest.raises(settings_mod.SettingsError, match="exige role_claim"):
        settings_mod.oidc_providers([{**base, "role_map": {"g": {"org": "o", "role": "admin"}}}])
    with pytest.raises(settings_mod.SettingsError, match="papel deve ser"):
        settings_mod.oidc_providers([{**base, "role_claim": "groups",
                                      "role_map": {"g": {"org": "o", "role": "gestor"}}}])  # fmt: skip


def test_two_providers_cannot_share_a_name_and_the_file_must_be_a_list(tmp_path) -> None:
    one = {"name": "a", "discovery_url": "https://a/", "client_id": "x"}
    with pytest.raises(settings_mod.SettingsError, match="dois provedores"):
        settings_mod.oidc_providers([one, one])
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(settings_mod.SettingsError, match="lista"):
        settings_mod.oidc_providers_from_file(str(tmp_path / "p.json"))
    assert settings_mod.oidc_providers_from_file("") == ()


@pytest.mark.parametrize(
    ("claim", "level"),
    [
        ("ouro", "ouro"), ("gold", "ouro"), ({"level": "silver"}, "prata"), (2, "prata"),
        ([{"id": "1"}, {"id": "3"}], "ouro"), ([{"nivel": "bronze"}], "bronze"),
        (None, None), ("platina", None),
    ],
)  # fmt: skip
def test_the_govbr_level_is_read_from_its_claim(claim, level) -> None:
    assert oidc.account_level({"reliability_info": claim}, "reliability_info") == level


def test_totp_matches_rfc_6238s_vectors_and_a_code_works_once() -> None:
    secret = base64.b32encode(b"12345678901234567890").decode()
    # RFC 6238, appendix B (SHA-1), last 6 of the 8 digits.
    for t, code in ((59, "287082"), (1111111109, "081804"), (1234567890, "005924")):
        assert totp.code_at(secret, t // 30) == code
    now = 1234567890
    step = totp.matching_step(secret, "005924", after=None, now=now)
    assert step == now // 30
    assert totp.matching_step(secret, "005924", after=step, now=now) is None  # used
    assert totp.matching_step(secret, "005924", after=None, now=now + 120) is None  # too late
    assert totp.matching_step(secret, "12345", after=None, now=now) is None
    assert totp.provisioning_uri(secret, "ana@x.br").startswith(
        "otpauth://totp/Credencia%3Aana%40x.br?"
    )


@pytest.mark.parametrize(
    "password", ["password123", "12345678", "senha123", "aaaaaaaaaa", "ana.silva"]
)
def test_common_or_guessable_passwords_are_refused(password) -> None:
    with pytest.raises(Invalid):
        passwords.check_new_password(password, email="ana.silva@saude.gov.br")
    passwords.check_new_password("cavalo-grampo-bateria", email="ana.silva@saude.gov.br")
    assert len(passwords.common_passwords()) > 20000


def test_cpf_verifier_digits() -> None:
    assert _cpf_valid("52998224725") and _cpf_valid("11144477735")
    assert not _cpf_valid("52998224724") and not _cpf_valid("11111111111")


def test_the_csp_lets_forms_end_at_the_providers_only() -> None:
    assert csp_for(SimpleNamespace(oidc_providers=())) == CSP
    govbr = settings_mod.oidc_providers([{"preset": "govbr", "client_id": "x"}])
    policy = csp_for(SimpleNamespace(oidc_providers=govbr))
    assert "form-action 'self' https://sso.acesso.gov.br;" in policy


def test_unknown_key_ids_refetch_the_keys_at_most_once_in_a_while(monkeypatch) -> None:
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    fetched: list[str] = []

    def fake_get(url: str, **kwargs):
        fetched.append(url)
        return {"keys": [key.as_dict(private=False)]}

    monkeypatch.setattr(oidc, "_get_json", fake_get)
    oidc.forget_cached()
    uri = "https://op.example/jwks"
    assert oidc._has_kid(oidc._key_set(uri), "k1")
    oidc._key_set(uri, refresh=True)  # a token named an unknown key id: fetched again
    oidc._key_set(uri, refresh=True)  # and again at once: not fetched
    assert len(fetched) == 2
    oidc.forget_cached()
