"""Signing in through an OpenID Connect provider (gov.br, a state's Keycloak, any certified OP).

The authorization code flow with PKCE (S256), ``state`` and ``nonce``: :func:`begin` gives the
address to send the browser to and what to keep until it comes back (the web layer keeps it in
the signed session cookie); :func:`finish` checks the answer, exchanges the code (Authlib's
OAuth 2 client), validates the ID token (joserfc, Authlib's JOSE successor) — signature by the
provider's published keys (fetched again once when a token names a key id not seen yet, so a
key rotation at the provider needs nothing here), issuer, audience, expiry and issue time with
``clock_skew`` seconds of allowance, nonce — and finds the Credencia account: by a verified
e-mail or by CPF, as the provider is configured. No account is created and no role is taken
from the provider: roles stay in Credencia.

Anything wrong raises :class:`SignInRefused` with a reason; the caller writes the refusal to
the audit log (:func:`record_refusal`) in a transaction of its own.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts import queries as account_queries
from engine.accounts import service as accounts
from engine.accounts.models import Membership, Organization, User
from engine.accounts.service import EMAIL_RE
from engine.audit import service as audit
from engine.errors import DomainError
from engine.settings import LEVELS, OidcProvider

HTTP_TIMEOUT = 10
# Discovery documents are kept this long; the keys until a token names an unknown key id.
METADATA_TTL = 3600
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
LEVEL_RANK = {"bronze": 1, "prata": 2, "ouro": 3, "silver": 2, "gold": 3, "1": 1, "2": 2, "3": 3}

MESSAGES = {
    "unknown_provider": "Este provedor de identidade não está configurado nesta instalação.",
    "unavailable": "O provedor de identidade não respondeu. Tente novamente em instantes.",
    "state": "A resposta do provedor não corresponde a um pedido de entrada feito neste "
    "navegador (state). Comece a entrada de novo.",
    "provider_error": "O provedor de identidade recusou a entrada.",
    "token": "Não foi possível obter o token de identidade do provedor.",
    "signature": "A assinatura do token de identidade não confere com as chaves do provedor.",
    "issuer": "O token de identidade vem de um emissor que esta instalação não aceita.",
    "audience": "O token de identidade foi emitido para outra aplicação.",
    "expired": "O token de identidade está vencido (ou fora do prazo). Entre de novo.",
    "nonce": "O token de identidade não pertence a este pedido de entrada (nonce repetido ou "
    "trocado).",
    "email_unverified": "O provedor não confirma que o e-mail é seu; não é possível entrar "
    "com ele.",
    "no_account": "Nenhuma conta do Credencia corresponde a esta identidade. Peça um convite ao "
    "administrador da sua organização.",
    "inactive": "Esta conta está desativada. Fale com o administrador da sua organização.",
    "level": "Sua conta gov.br é de nível %(level)s; esta instalação exige no mínimo o nível "
    "%(min_level)s. Aumente o nível da sua conta em gov.br e tente de novo.",
}


class SignInRefused(DomainError):
    """A sign-in through a provider that cannot go on; ``reason`` is a key of MESSAGES."""

    status = 403

    def __init__(self, reason: str, *, details: dict[str, Any] | None = None,
                 user: User | None = None):  # fmt: skip
        super().__init__(MESSAGES[reason])
        self.reason = reason
        self.details = details or {}
        # Who it was, when the account was found (ids only: the session is gone by then).
        self.user_id = user.id if user is not None else None
        self.user_email = user.email if user is not None else ""
        self.params: dict[str, str] = {}


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""


@dataclass
class SignedIn:
    user: User
    claims: dict[str, Any]
    id_token: str


_lock = threading.Lock()
_metadata: dict[str, tuple[float, Metadata]] = {}
_keys: dict[str, KeySet] = {}
_refreshed: dict[str, float] = {}
# Tokens naming unknown key ids make the keys be fetched again at most this often.
REFRESH_EVERY = 10.0


def forget_cached() -> None:
    """Drop every discovery document and key set (tests; a provider moved)."""
    with _lock:
        _metadata.clear()
        _keys.clear()
        _refreshed.clear()


def provider_named(providers: tuple[OidcProvider, ...], name: str) -> OidcProvider:
    for provider in providers:
        if provider.name == name:
            return provider
    raise SignInRefused("unknown_provider", details={"provider": name[:40]})


def _get_json(url: str, **kwargs: Any) -> dict[str, Any]:
    response = requests.get(url, timeout=HTTP_TIMEOUT, **kwargs)
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def metadata(provider: OidcProvider) -> Metadata:
    """The provider's discovery document (cached); its issuer must be the configured one."""
    now = time.monotonic()
    with _lock:
        cached = _metadata.get(provider.name)
    if cached is not None and now - cached[0] < METADATA_TTL:
        return cached[1]
    try:
        doc = _get_json(provider.discovery_url)
        meta = Metadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=doc.get("userinfo_endpoint") or "",
            end_session_endpoint=doc.get("end_session_endpoint") or "",
        )
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise SignInRefused("unavailable", details={"provider": provider.name,
                                                    "error": str(exc)[:200]}) from None  # fmt: skip
    if meta.issuer != provider.issuer:
        raise SignInRefused("issuer", details={"provider": provider.name,
                                               "discovered_issuer": meta.issuer[:200]})  # fmt: skip
    with _lock:
        _metadata[provider.name] = (now, meta)
    return meta


def _key_set(jwks_uri: str, *, refresh: bool = False) -> KeySet:
    now = time.monotonic()
    with _lock:
        cached = _keys.get(jwks_uri)
        if refresh and now - _refreshed.get(jwks_uri, -REFRESH_EVERY) < REFRESH_EVERY:
            refresh = False  # just fetched: forged key ids do not make us fetch again
        if refresh:
            _refreshed[jwks_uri] = now
    if cached is not None and not refresh:
        return cached
    try:
        keys = KeySet.import_key_set(_get_json(jwks_uri))
    except (requests.RequestException, ValueError, JoseError) as exc:
        raise SignInRefused("unavailable", details={"error": str(exc)[:200]}) from None
    with _lock:
        _keys[jwks_uri] = keys
    return keys


def _has_kid(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys.keys)


# ------------------------------------------------------------------ the flow


def _client(provider: OidcProvider, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        client_id=provider.client_id,
        client_secret=provider.client_secret or None,
        token_endpoint_auth_method="client_secret_basic" if provider.client_secret else "none",
        scope=" ".join(provider.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )


def begin(provider: OidcProvider, redirect_uri: str) -> tuple[str, dict[str, str]]:
    """The provider's authorization address, and what to keep (secretly) until the answer."""
    meta = metadata(provider)
    pending = {
        "provider": provider.name,
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "verifier": secrets.token_urlsafe(64),
    }
    with _client(provider, redirect_uri) as client:
        url, _state = client.create_authorization_url(
            meta.authorization_endpoint,
            state=pending["state"],
            nonce=pending["nonce"],
            code_verifier=pending["verifier"],
        )
    return url, pending


def validate_id_token(
    provider: OidcProvider, id_token: str, nonce: str, *, clock_skew: int,
    now: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ID token's claims, once its signature, issuer, audience, times and nonce are right."""
    meta = metadata(provider)
    try:
        header = jws.extract_compact(id_token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeEncodeError):
        raise SignInRefused("signature", details={"error": "malformed"}) from None
    if header.get("alg") not in ALGORITHMS:
        raise SignInRefused("signature", details={"alg": str(header.get("alg"))[:20]})
    kid = header.get("kid")
    keys = _key_set(meta.jwks_uri)
    if not _has_kid(keys, kid):
        # The provider rotated its keys: fetch them again (once per token).
        keys = _key_set(meta.jwks_uri, refresh=True)
        if not _has_kid(keys, kid):
            raise SignInRefused(
                "signature", details={"kid": str(kid)[:100], "error": "unknown key"}
            )
    try:
        claims = jwt.decode(id_token, keys, algorithms=ALGORITHMS).claims
    except JoseError as exc:
        raise SignInRefused("signature", details={"kid": str(kid)[:100],
                                                  "error": type(exc).__name__}) from None  # fmt: skip
    if claims.get("iss") != provider.issuer:
        raise SignInRefused("issuer", details={"iss": str(claims.get("iss"))[:200]})
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if provider.client_id not in audiences or (
        len(audiences) > 1 and claims.get("azp") != provider.client_id
    ):
        raise SignInRefused("audience", details={"aud": str(aud)[:200]})
    now = time.time() if now is None else now
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or now > exp + clock_skew:
        raise SignInRefused("expired", details={"exp": exp, "now": int(now)})
    if not isinstance(iat, int | float) or iat > now + clock_skew:
        raise SignInRefused("expired", details={"iat": iat, "now": int(now)})
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
        claims["nonce"].encode(), nonce.encode()
    ):
        raise SignInRefused("nonce")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise SignInRefused("signature", details={"error": "no sub"})
    return claims


def finish(
    session: Session,
    provider: OidcProvider,
    pending: dict[str, str] | None,
    args: dict[str, str],
    redirect_uri: str,
    *,
    clock_skew: int,
) -> SignedIn:
    """Check the provider's answer (``args``: the callback's query) and find the account."""
    state = args.get("state") or ""
    if (
        not pending
        or pending.get("provider") != provider.name
        or not hmac.compare_digest(state.encode(), str(pending.get("state", "")).encode())
    ):
        raise SignInRefused("state", details={"provider": provider.name})
    if args.get("error"):
        raise SignInRefused("provider_error", details={"error": args["error"][:100],
                            "description": (args.get("error_description") or "")[:200]})  # fmt: skip
    meta = metadata(provider)
    # RFC 9207: a provider that names itself in the answer must be the one asked.
    if args.get("iss") and args["iss"] != provider.issuer:
        raise SignInRefused("issuer", details={"iss": args["iss"][:200]})
    code = args.get("code") or ""
    if not code:
        raise SignInRefused("token", details={"error": "no code"})
    try:
        with _client(provider, redirect_uri) as client:
            token = client.fetch_token(
                meta.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=pending["verifier"],
                timeout=HTTP_TIMEOUT,
            )
    except Exception as exc:  # noqa: BLE001 (any failure of the exchange is the same refusal)
        raise SignInRefused("token", details={"error": str(exc)[:200]}) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SignInRefused("token", details={"error": "no id_token"})
    claims = validate_id_token(provider, id_token, pending["nonce"], clock_skew=clock_skew)
    claims = {**_userinfo(meta, token.get("access_token"), claims["sub"]), **claims}
    user = match_account(session, provider, claims)
    return SignedIn(user, claims, id_token)


def _userinfo(meta: Metadata, access_token: Any, sub: str) -> dict[str, Any]:
    """Claims the provider gives only at its userinfo endpoint (ignored unless same ``sub``)."""
    if not meta.userinfo_endpoint or not isinstance(access_token, str):
        return {}
    try:
        info = _get_json(meta.userinfo_endpoint,
                         headers={"Authorization": f"Bearer {access_token}"})  # fmt: skip
    except (requests.RequestException, ValueError):
        return {}
    return info if info.get("sub") == sub else {}


def account_level(claims: dict[str, Any], claim: str) -> str | None:
    """The gov.br account level (bronze, prata, ouro) read from ``claim``: a level name or
    number, an object with ``level``/``nivel``, or a list of those (the highest counts)."""

    def rank(value: Any) -> int:
        if isinstance(value, dict):
            value = value.get("level", value.get("nivel", value.get("id")))
        return LEVEL_RANK.get(str(value).strip().lower(), 0) if value is not None else 0

    value = claims.get(claim)
    ranks = [rank(v) for v in value] if isinstance(value, list) else [rank(value)]
    best = max(ranks, default=0)
    return LEVELS[best - 1] if best else None


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", value) if isinstance(value, str) else ""


def match_account(session: Session, provider: OidcProvider, claims: dict[str, Any]) -> User:
    """The Credencia account of this identity (refusals say why none)."""
    user = None
    unverified = False
    for how in provider.match:
        if how == "cpf":
            cpf = _digits(claims.get(provider.cpf_claim))
            if len(cpf) == 11:
                user = session.scalar(select(User).where(User.cpf == cpf))
        else:
            email = claims.get("email")
            verified = claims.get("email_verified") in (True, "true")
            if isinstance(email, str) and email and not verified:
                unverified = True
            elif isinstance(email, str) and email:
                user = account_queries.user_by_email(session, email.strip().lower())
        if user is not None:
            break
    if provider.min_level:
        level = account_level(claims, provider.level_claim)
        if LEVEL_RANK.get(level or "", 0) < LEVEL_RANK[provider.min_level]:
            exc = SignInRefused("level", details={"level": level or "nenhum",
                                                  "min_level": provider.min_level},
                                user=user)  # fmt: skip
            exc.params = {"level": level or "desconhecido", "min_level": provider.min_level}
            exc.message = exc.message % exc.params
            raise exc
    if user is None and provider.create_accounts and not unverified:
        user = _create_account(session, provider, claims)
    if user is None:
        raise SignInRefused("email_unverified" if unverified else "no_account")
    if not user.active:
        raise SignInRefused("inactive", user=user)
    _map_roles(session, provider, claims, user)
    return user


def _create_account(
    session: Session, provider: OidcProvider, claims: dict[str, Any]
) -> User | None:
    """An account for a verified identity (the installation allows it): no password, no role
    but those the provider's role claim maps."""
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") not in (True, "true"):
        return None
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 254:
        return None
    cpf = _digits(claims.get(provider.cpf_claim)) if "cpf" in provider.match else ""
    if len(cpf) != 11 or session.scalar(select(User.id).where(User.cpf == cpf)) is not None:
        cpf = ""
    name = claims.get("name") if isinstance(claims.get("name"), str) else ""
    user = User(email=email, name=(name or email.split("@")[0])[:200], password_hash=None,
                cpf=cpf or None)  # fmt: skip
    session.add(user)
    session.flush()
    audit.record(session, Actor(user_id=None, label=f"oidc:{provider.name}"), "user.created",
                 org_id=None, entity_type="user", entity_id=user.id,
                 data={"email": email, "provider": provider.name, "sub": claims.get("sub")})  # fmt: skip
    return user


def _map_roles(
    session: Session, provider: OidcProvider, claims: dict[str, Any], user: User
) -> None:
    """Add the roles the provider's role claim maps (off unless configured); never removes."""
    if not provider.role_claim or not provider.role_map:
        return
    value = claims.get(provider.role_claim)
    values = (
        {str(v) for v in value} if isinstance(value, list) else {str(value)} if value else set()
    )
    who = Actor(user_id=None, label=f"oidc:{provider.name}")
    for claim_value, org_slug, role in provider.role_map:
        if claim_value not in values:
            continue
        org = session.scalar(select(Organization).where(Organization.slug == org_slug))
        if org is None:
            continue
        held = session.scalar(select(Membership.id).where(
            Membership.user_id == user.id, Membership.org_id == org.id, Membership.role == role))  # fmt: skip
        if held is None:
            grant = accounts.GrantRequest(org, user.email, role, [], user.name)
            accounts.add_membership(session, who, user, grant)


def logout_url(provider: OidcProvider, id_token: str, post_logout_redirect_uri: str) -> str | None:
    """Where to send the browser to sign out at the provider too (None: it offers no logout)."""
    if not provider.logout:
        return None
    try:
        meta = metadata(provider)
    except SignInRefused:
        return None
    if not meta.end_session_endpoint:
        return None
    query = {"client_id": provider.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token:
        query["id_token_hint"] = id_token
    return (
        meta.end_session_endpoint
        + ("&" if "?" in meta.end_session_endpoint else "?")
        + urlencode(query)
    )


def record_refusal(session: Session, provider_name: str, exc: SignInRefused, *,
                   remote_addr: str | None) -> None:  # fmt: skip
    """The refusal in the audit log: the account's organizations' when one was found, else the
    system's."""
    data = {"provider": provider_name, "reason": exc.reason, **exc.details,
            "remote_addr": remote_addr}  # fmt: skip
    who = Actor(user_id=None, label=f"oidc:{provider_name}")
    orgs: list[int | None] = [None]
    entity_id: int | str = ""
    if exc.user_id is not None:
        orgs = list(account_queries.membership_org_ids(session, exc.user_id)) or [None]
        entity_id = exc.user_id
        who = Actor(user_id=None, label=exc.user_email)
    for org in orgs:
        audit.record(session, who, "auth.oidc_refused", org_id=org, entity_type="user",
                     entity_id=entity_id, data=data)  # fmt: skip
