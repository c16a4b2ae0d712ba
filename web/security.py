"""CSRF protection, security headers, the session cookie's Secure flag, and which client
address can be trusted behind reverse proxies."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
log = logging.getLogger(__name__)

# Headers by which a reverse proxy tells the client's address.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
UNTRUSTED_PROXY_MESSAGE = (
    "Requisição recusada: ela chegou por um proxy reverso (cabeçalho X-Forwarded-For ou "
    "Forwarded), mas CREDENCIA_TRUSTED_PROXIES não está definido. Em produção o Credencia não "
    "atende assim: sem saber quantos proxies confiáveis há na frente, não sabe o endereço de "
    "quem acessa. Defina CREDENCIA_TRUSTED_PROXIES (docs/operations.md, lista de produção)."
)
_last_logged = 0.0

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # bpmn-js and the design system set style attributes from their scripts.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class SessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure on HTTPS requests even when not configured so; a
    request without a session cookie (every API call: it carries a token) gets its empty
    session without a signing serializer being built for it."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (
            request.is_secure if request else False
        )


def _forwarded() -> bool:
    return any(name in request.headers for name in FORWARDING_HEADERS)


def client_address() -> str | None:
    """The client's address where it can be trusted (the sign-in limits count per address
    only then): the peer of a direct connection, or the address the trusted proxies report
    (``CREDENCIA_TRUSTED_PROXIES``, applied by ProxyFix in web/__init__.py). None when the
    request came through a proxy that was not declared: the peer is then the proxy, whose
    address every client behind it shares."""
    if current_app.extensions["credencia.settings"].trusted_proxies > 0:
        return request.remote_addr
    return None if _forwarded() else request.remote_addr


def _refuse_untrusted_proxy(app: Flask) -> None:
    """In production, a request that came through a reverse proxy nobody declared is refused
    with a 400 that says what to set (and an error in the log), rather than served with the
    proxy's address taken for every client's."""
    settings = app.extensions.get("credencia.settings")
    if settings is None or not settings.production or settings.trusted_proxies > 0:
        return

    @app.before_request
    def _untrusted_proxy():
        global _last_logged
        if not _forwarded():
            return None
        if time.monotonic() - _last_logged > 60:  # once a minute, not once per request
            _last_logged = time.monotonic()
            log.error(
                "request through an undeclared reverse proxy refused (%s %s from %s): set "
                "CREDENCIA_TRUSTED_PROXIES to the number of proxies in front of the app",
                request.method, request.path, request.remote_addr,
            )  # fmt: skip
        if request.path.startswith("/api/"):
            response = jsonify({"message": UNTRUSTED_PROXY_MESSAGE})
        else:
            response = Response(UNTRUSTED_PROXY_MESSAGE, mimetype="text/plain")
        response.status_code = 400
        return response


def csp_for(settings) -> str:
    """The policy, with the OpenID providers' origins allowed as form targets: signing out
    (a form posted to /sair) ends at the provider's logout page."""
    origins = []
    for provider in getattr(settings, "oidc_providers", ()):
        url = urlsplit(provider.discovery_url)
        origin = f"{url.scheme}://{url.netloc}"
        if origin not in origins:
            origins.append(origin)
    if not origins:
        return CSP
    return CSP.replace("form-action 'self'", "form-action 'self' " + " ".join(origins))


def setup(app: Flask) -> None:
    csrf.init_app(app)
    app.session_interface = SessionInterface()
    _refuse_untrusted_proxy(app)
    policy = csp_for(app.extensions.get("credencia.settings"))

    always = (
        ("Content-Security-Policy", policy),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    )

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        # Each header unless the view set its own (one pass over the few already there).
        present = {name.lower() for name, _value in headers}
        wanted = list(always)
        if request.is_secure:
            wanted.append(("Strict-Transport-Security", "max-age=31536000"))
        if response.mimetype == "text/html" or request.path.startswith(("/api/", "/arquivos/")):
            # Pages carry personal data: no shared or back-button caches.
            wanted.append(("Cache-Control", "no-store"))
        headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
        return response


def exempt_api(app: Flask, api: Blueprint) -> None:
    """The JSON API authenticates each request with a bearer token, not a cookie: no CSRF."""
    csrf.exempt(api)
