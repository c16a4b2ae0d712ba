"""One logging setup for the web, the scheduler and the command line.

Plain text for people by default; JSON lines with ``CREDENCIA_LOG_FORMAT=json`` (one object
per line: ``ts``, ``level``, ``logger``, ``message``, the context below and the record's
``extra`` fields). Every line written while a web request is served carries its request id
(``X-Request-ID`` when a trusted proxy sent a well-formed one, else a new id; returned in the
response), the user id and the organization; the scheduler writes one line per job run with
its duration and counts (engine/scheduler/runner.py).
Each web request ends in one ``credencia.request`` line: method, path, status, milliseconds.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# ``extra`` fields copied into a JSON line (a text line says them in its message).
EXTRA = ("method", "path", "status", "duration_ms", "client", "job", "result", "summary")
_HANDLER_NAME = "credencia"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
access_log = logging.getLogger("credencia.request")


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The request's context of a line (none outside a request)."""
    out: dict[str, Any] = {}
    if has_request_context():
        out["request_id"] = g.get("request_id", "-")
        user, actor, org = g.get("user"), g.get("actor"), g.get("org")
        user_id = user.id if user is not None else getattr(actor, "user_id", None)
        out["user_id"] = user_id if user_id is not None else "-"
        out["org_id"] = org.id if org is not None else "-"
    return out


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context_of(record)
        record.context = (" [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]") if ctx else ""
        record.context_fields = ctx
        record.extra_fields = {k: getattr(record, k) for k in EXTRA if hasattr(record, k)}
        return True


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a line is written (a test
    runner swaps it per test)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "context_fields", {}),
            **getattr(record, "extra_fields", {}),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Send every logger's lines to stderr in ``fmt``; calling it again replaces the setup."""
    if fmt not in FORMATS:
        raise ValueError(f"formato de log desconhecido: {fmt!r} (use {', '.join(FORMATS)})")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # One line per APScheduler run every 15 s buries what matters: our jobs log their own.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # SpiffWorkflow logs every task state change at INFO (a dozen lines per completion): noise
    # for an operator — the audit log says what happened — and a measurable share of a
    # completion's CPU (bench/engine.py). Its warnings and errors still come through. Its
    # task and workflow loggers are set too, not left to inherit: SpiffWorkflow reads their
    # own level (``logger.level < 20``) to decide whether each state change's log record
    # carries the task's data, and a workflow's the id of its every task — built on every
    # change even when no record is written.
    for name in ("spiff", "spiff.task", "spiff.workflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


def install(app: Flask, *, trust_request_id: bool) -> None:
    """Give every request an id (the proxy's when trusted), and log each request once."""

    @app.before_request
    def _start() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "") if trust_request_id else ""
        g.request_id = given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = g.get("request_id")
        if rid is None:
            return response
        response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("request_started")
        elapsed = round((time.perf_counter() - started) * 1000, 1) if started else None
        access_log.info(
            "%s %s %s %s ms",
            request.method,
            request.path,
            response.status_code,
            elapsed,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": elapsed,
                "client": request.remote_addr,
            },
        )
        return response
