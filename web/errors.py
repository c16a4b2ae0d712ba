"""Errors to answers, in one place for both faces.

A domain error (``engine.errors``), an HTTP error or an unexpected exception becomes one status
and one message here. Under ``/api/`` the answer is an RFC 9457 problem
(``application/problem+json``: ``type``, ``title``, ``status``, ``detail``, plus ``message`` —
the same text as ``detail``, kept for older clients — and ``errors``, the per-field messages of
a 422); everywhere else it is the error page in the site's look and the user's language.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from engine.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, TooLarge
from web.i18n import translate

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:credencia:problem:"

# A lost or refused database connection (PostgreSQL restarting, network cut): 503, not 500.
DB_UNAVAILABLE_MESSAGE = (
    "Banco de dados indisponível no momento; tente de novo em instantes. Nada foi alterado."
)
RETRY_AFTER_SECONDS = 5
# A write that waited its whole time for another one (SQLite's busy timeout, the writers' turn:
# engine/db.py), or that PostgreSQL rolled back for a concurrent one (a lock wait given up, a
# deadlock, a serialization failure): the transaction is rolled back and trying again will do.
DB_BUSY_MESSAGE = (
    "O sistema está ocupado com outras gravações no momento; tente de novo em instantes. "
    "Nada foi alterado."
)
# A statement of the web app that ran past its limit (PostgreSQL's ``statement_timeout``:
# engine/db.py) was cancelled and its transaction rolled back: trying again may do.
DB_SLOW_MESSAGE = (
    "O banco de dados demorou demais para responder e a operação foi interrompida; tente de "
    "novo em instantes. Nada foi alterado."
)
_SLOW_STATE = "57014"  # query_canceled
# lock not available, deadlock, serialization failure, statement past its limit
_BUSY_STATES = ("55P03", "40P01", "40001", _SLOW_STATE)
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
# SQLSTATEs of a connection that is gone or refused: class 08 (connection exception) and the
# server shutting down, crashing or starting up.
_DISCONNECT_STATES = ("57P01", "57P02", "57P03")

# Domain errors → status. A subclass answers as its nearest listed ancestor.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    Invalid: 422,
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    TooLarge: 413,
}


@dataclass(frozen=True)
class Kind:
    """What an error status is called: the problem type's last segment, the title, the
    message used when the error brings none."""

    slug: str
    title: str
    message: str


def kinds() -> dict[int, Kind]:
    """Every status the application answers with, in the request's language."""
    return {
        400: Kind("bad-request", _("Requisição inválida"), _("O pedido não pôde ser entendido.")),
        401: Kind(
            "unauthenticated",
            _("Autenticação necessária"),
            _("Envie 'Authorization: Bearer <token>'."),
        ),
        403: Kind(
            "forbidden",
            _("Acesso negado"),
            _("Você não tem permissão para fazer isso. A tentativa foi registrada."),
        ),
        404: Kind(
            "not-found",
            _("Página não encontrada"),
            _("O endereço não existe ou você não tem acesso a ele."),
        ),
        405: Kind(
            "method-not-allowed",
            _("Método não permitido"),
            _("Esta ação não é aceita neste endereço."),
        ),
        409: Kind(
            "conflict",
            _("Conflito"),
            _("A situação mudou enquanto você trabalhava. Recarregue a página."),
        ),
        412: Kind(
            "precondition-failed",
            _("Versão desatualizada"),
            _("O recurso mudou desde a versão informada em If-Match; leia-o de novo."),
        ),
        413: Kind(
            "too-large",
            _("Arquivo grande demais"),
            _("O envio passou do limite de tamanho e foi recusado."),
        ),
        422: Kind("invalid", _("Dados inválidos"), _("Há campos com erro.")),
        500: Kind(
            "internal",
            _("Erro interno"),
            _("Algo deu errado do nosso lado. Nada foi alterado; tente novamente."),
        ),
        503: Kind("unavailable", _("Serviço indisponível"), DB_UNAVAILABLE_MESSAGE),
    }


def kind(status: int) -> Kind:
    return kinds().get(status) or Kind(str(status), _("Erro"), "")


def status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return exc.status


class HTTPProblem(Exception):
    """A refusal decided by the web layer itself (no token, a stale If-Match, a body that is
    not JSON): answered like a domain error, with its own status and headers."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(detail or str(status))
        self.status = status
        self.detail = detail
        self.errors = dict(errors) if errors is not None else None
        self.headers = dict(headers or {})


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def problem(
    status: int,
    detail: str | None = None,
    *,
    errors: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem details answer."""
    what = kind(status)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + what.slug,
        "title": what.title,
        "status": status,
        "detail": detail or what.message,
    }
    body["message"] = body["detail"]
    if errors is not None:
        body["errors"] = dict(errors)
    response = current_app.json.response(body)
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    response.headers.update(headers or {})
    return response


def render_error(status: int, message: str | None = None):
    """The error answer for the current request: a problem under /api/, the page elsewhere."""
    if is_api_request():
        return problem(status, message)
    what = kind(status)
    return render_template(
        "error.html", status=status, title=what.title, message=message or what.message
    ), status


def error_response(
    status: int,
    message: str | None = None,
    *,
    errors: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
):
    if is_api_request():
        return problem(status, message, errors=errors, headers=headers)
    if errors:
        message = " ".join(
            part
            for part in (message or "", "; ".join(translate(m) for m in errors.values()))
            if part
        )
    page, code = render_error(status, message)
    return page, code, dict(headers or {})


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached, not that a statement failed.

    The transaction is rolled back in either case; pooled connections are checked as they
    leave the pool (``engine/db.py``), so the next request after the database is back simply
    works.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError) or not hasattr(exc.orig, "sqlstate"):
        return False  # SQLite (e.g. a lock timeout) is not an outage
    state = exc.orig.sqlstate  # None: the connection failed before the server said anything
    return state is None or state.startswith("08") or state in _DISCONNECT_STATES


def database_busy(exc: BaseException) -> bool:
    """True when ``exc`` is a write given up for another one (see ``DB_BUSY_MESSAGE``), or a
    statement cancelled for running too long (``DB_SLOW_MESSAGE``)."""
    if not isinstance(exc, OperationalError) or exc.connection_invalidated:
        return False
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None:
        return state in _BUSY_STATES
    text = str(exc.orig).lower()
    return any(words in text for words in _SQLITE_BUSY)


def database_slow(exc: BaseException) -> bool:
    """True when ``exc`` is a statement cancelled for running past its limit."""
    return isinstance(exc, OperationalError) and (
        getattr(exc.orig, "sqlstate", None) == _SLOW_STATE
    )


def log_database(condition: str, exc: BaseException) -> None:
    """One warning line for a database that is ``condition`` ("busy", "unavailable")."""
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    log.warning("database %s on %s %s: %s", condition, request.method, request.path, reason)


def database_busy_response(exc: BaseException):
    """The 503 for a write given up for another one, or a statement that ran too long, with
    Retry-After."""
    slow = database_slow(exc)
    log_database("slow" if slow else "busy", exc)
    message = DB_SLOW_MESSAGE if slow else DB_BUSY_MESSAGE
    return error_response(503, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def database_unavailable_response(exc: BaseException):
    """The 503 for a database outage, with Retry-After."""
    log_database("unavailable", exc)
    if not is_api_request():
        g._menu = {}  # the menu's counts come from the database: leave the menu out
    return error_response(
        503, DB_UNAVAILABLE_MESSAGE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def register(app: Flask) -> None:
    """Install the handlers once (the pages' setup may ask again)."""
    if app.extensions.get("credencia.errors"):
        return
    app.extensions["credencia.errors"] = True

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        errors = exc.errors if isinstance(exc, Invalid) else None
        if is_api_request():
            # API clients get the engine's words in the language they asked for
            # (Accept-Language; Portuguese by default), under the same field keys.
            localized = {k: translate(v) for k, v in errors.items()} if errors else errors
            return problem(status_of(exc), translate(exc.message), errors=localized)
        return error_response(status_of(exc), translate(exc.message), errors=errors or None)

    @app.errorhandler(HTTPProblem)
    def _problem(exc: HTTPProblem):
        return error_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError):
        return error_response(
            400,
            _(
                "O formulário expirou ou não veio desta página. Recarregue a página e envie de novo."
            ),
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        # Allow (405) and the like; the body is ours.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        if status == 413:
            limit = app.extensions["credencia.settings"].max_upload_bytes // (1024 * 1024)
            return error_response(
                413,
                _("O envio passou do limite de %(mb)s MB e foi recusado.", mb=limit),
                headers=headers,
            )
        return error_response(status, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500)

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError):
        if database_unavailable(exc):
            return database_unavailable_response(exc)
        if database_busy(exc):
            return database_busy_response(exc)
        return _unexpected(exc)
