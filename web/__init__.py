"""The Flask application: pages, forms and the JSON API over the engine's services."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy.exc import OperationalError

import engine.models  # noqa: F401  (every table known before the first query)
from engine import secrets as secret_store
from engine import settings as settings_mod
from engine.audit import service as audit
from engine.db import Database
from web import logs, metrics, routing

log = logging.getLogger(__name__)
# Multipart overhead allowed on top of the file limit before a request is refused unread.
MULTIPART_SLACK = 64 * 1024


def create_app(settings: settings_mod.Settings | None = None, db: Database | None = None) -> Flask:
    settings = settings or settings_mod.load()
    logs.configure(settings.log_format, settings.log_level)
    app = Flask(__name__, instance_path=str(settings_mod.instance_dir()))
    _configure(app, settings)
    _setup_keys(app, settings)
    db = db or Database(
        settings.database_url, statement_timeout_s=settings.db_statement_timeout_seconds
    )
    db.on_denied = audit.record_denial
    app.extensions["credencia.db"] = db
    app.extensions["credencia.settings"] = settings
    _deploy_processes(db, settings)
    logs.install(app, trust_request_id=settings.trusted_proxies > 0)
    metrics.install(app)
    _setup_i18n(app)
    _setup_security(app)
    routing.install(app)
    _register_blueprints(app)
    _register_errors(app)
    _trust_proxies(app, settings)
    return app


def _register_errors(app: Flask) -> None:
    """One mapping of errors to answers for pages and API (web.errors), and one guard that
    refuses unstorable or unparseable input before any view (web.request_guard)."""
    from web import errors, request_guard

    errors.register(app)
    request_guard.register(app)


def _trust_proxies(app: Flask, settings: settings_mod.Settings) -> None:
    """Behind N reverse proxies, take the client address and scheme from their headers (the
    login limits count per client address); with 0 (default) the headers are ignored."""
    hops = settings.trusted_proxies
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def _configure(app: Flask, settings: settings_mod.Settings) -> None:
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + MULTIPART_SLACK,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="credencia_session",
        # Secure whenever the site is served over HTTPS (see web.security.SessionInterface too).
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=10),
        WTF_CSRF_TIME_LIMIT=10 * 3600,
        WTF_CSRF_SSL_STRICT=True,
        BABEL_DEFAULT_LOCALE="pt_BR",
        BABEL_DEFAULT_TIMEZONE=settings.timezone,
    )
    app.json.ensure_ascii = False


def _setup_keys(app: Flask, settings: settings_mod.Settings) -> None:
    """The master key encrypts secret form values and signs sessions; production refuses to
    start without one, elsewhere a local key file is created under instance/."""
    ring = secret_store.require_key(
        production=settings.production,
        local_key_file=Path(app.instance_path) / "secret.key",
    )
    app.config["SECRET_KEY"] = ring.current.signing_key.hex()


def _setup_i18n(app: Flask) -> None:
    from web import i18n

    i18n.setup(app)


def _setup_security(app: Flask) -> None:
    from web import security

    security.setup(app)


def _deploy_processes(db: Database, settings: settings_mod.Settings) -> None:
    """Install processes/ at start-up. A worker started while the database is unreachable
    still boots (and answers 503 until it is back) instead of taking the server down; the
    deployment is then done by the next start or `credencia processes deploy`."""
    from engine.runtime.install import install

    try:
        for definition in install(db, settings.processes_dir).deployed:
            log.info("deployed %s version %s", definition.key, definition.version)
    except OperationalError as exc:
        log.warning("database unreachable at start-up; processes not deployed now: %s", exc)


def _register_blueprints(app: Flask) -> None:
    from web import health, security
    from web.api.views import bp as api_bp
    from web.ui import register as register_ui

    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api_bp)
    security.exempt_api(app, api_bp)
    register_ui(app)
