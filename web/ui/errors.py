"""Error pages in the site's look and the user's language; domain errors mapped in one place."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from engine.errors import DomainError, Invalid

log = logging.getLogger(__name__)

# A lost or refused database connection (PostgreSQL restarting, network cut): 503, not 500.
DB_UNAVAILABLE_MESSAGE = (
    "Banco de dados indisponível no momento; tente de novo em instantes. Nada foi alterado."
)
RETRY_AFTER_SECONDS = 5
# SQLSTATEs of a connection that is gone or refused: class 08 (connection exception) and the
# server shutting down, crashing or starting up.
_DISCONNECT_STATES = ("57P01", "57P02", "57P03")


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached, not that a statement failed.

    The transaction is rolled back in either case; pooled connections are checked before use
    (``pool_pre_ping``), so the next request after the database is back simply works.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError) or not hasattr(exc.orig, "sqlstate"):
        return False  # SQLite (e.g. a lock timeout) is not an outage
    state = exc.orig.sqlstate  # None: the connection failed before the server said anything
    return state is None or state.startswith("08") or state in _DISCONNECT_STATES


def database_unavailable_response(exc: BaseException):  # type: ignore[no-untyped-def]
    """The 503 for a database outage: JSON under /api/, the error page elsewhere."""
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    log.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
    if request.path.startswith("/api/"):
        response = jsonify({"message": DB_UNAVAILABLE_MESSAGE})
    else:
        g._menu = {}  # the menu's counts come from the database: leave the menu out
        response = render_template(
            "error.html",
            status=503,
            title=_("Serviço indisponível"),
            message=DB_UNAVAILABLE_MESSAGE,
        )
    return response, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _titles() -> dict[int, tuple[str, str]]:
    return {
        400: (_("Requisição inválida"), _("O pedido não pôde ser entendido.")),
        403: (
            _("Acesso negado"),
            _("Você não tem permissão para fazer isso. A tentativa foi registrada."),
        ),
        404: (_("Página não encontrada"), _("O endereço não existe ou você não tem acesso a ele.")),
        405: (_("Método não permitido"), _("Esta ação não é aceita neste endereço.")),
        409: (_("Conflito"), _("A situação mudou enquanto você trabalhava. Recarregue a página.")),
        413: (_("Arquivo grande demais"), _("O envio passou do limite de tamanho e foi recusado.")),
        422: (_("Dados inválidos"), _("Há campos com erro.")),
        500: (
            _("Erro interno"),
            _("Algo deu errado do nosso lado. Nada foi alterado; tente novamente."),
        ),
    }


def render_error(status: int, message: str | None = None):  # type: ignore[no-untyped-def]
    if request.path.startswith("/api/"):
        return jsonify({"message": message or _titles().get(status, ("", ""))[1]}), status
    title, default = _titles().get(status, (_("Erro"), ""))
    return render_template(
        "error.html", status=status, title=title, message=message or default
    ), status


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):  # type: ignore[no-untyped-def]
        message = _(exc.message)
        if isinstance(exc, Invalid) and exc.errors:
            message = message + " " + "; ".join(_(m) for m in exc.errors.values())
        return render_error(exc.status, message)

    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError):  # type: ignore[no-untyped-def]
        return render_error(
            400,
            _(
                "O formulário expirou ou não veio desta página. Recarregue a página e envie de novo."
            ),
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # type: ignore[no-untyped-def]
        status = exc.code or 500
        if status == 413:
            limit = app.extensions["credencia.settings"].max_upload_bytes // (1024 * 1024)
            return render_error(
                413, _("O envio passou do limite de %(mb)s MB e foi recusado.", mb=limit)
            )
        return render_error(status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unexpected error on %s", request.path)
        return render_error(500)

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError):  # type: ignore[no-untyped-def]
        if database_unavailable(exc):
            return database_unavailable_response(exc)
        return _unexpected(exc)
