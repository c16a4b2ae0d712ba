"""CSRF protection, security headers and the session cookie's Secure flag."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

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
    """Marks the session cookie Secure on HTTPS requests even when not configured so."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (
            request.is_secure if request else False
        )


def setup(app: Flask) -> None:
    csrf.init_app(app)
    app.session_interface = SessionInterface()

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
        )
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if response.mimetype == "text/html" or request.path.startswith(("/api/", "/arquivos/")):
            # Pages carry personal data: no shared or back-button caches.
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def exempt_api(app: Flask, api: Blueprint) -> None:
    """The JSON API authenticates each request with a bearer token, not a cookie: no CSRF."""
    csrf.exempt(api)
