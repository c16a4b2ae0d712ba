"""Health for process managers and load balancers: ``/healthz`` says the process answers,
``/readyz`` whether this instance can serve — the database reachable, its schema at the
migrations' head, every process of ``processes/`` deployed, a scheduler heartbeat recent
enough (``CREDENCIA_READY_SCHEDULER_MINUTES``, 0 turns that check off). The JSON body names
each check and why one failed; 503 when any did. Neither needs a session or sends a cookie."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from engine.db import utcnow
from engine.definitions.models import ProcessDefinition
from engine.scheduler.status import heartbeat
from web.ui.common import db, settings

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    checks = _checks()
    ready = all(c["ok"] for c in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return jsonify(body), 200 if ready else 503


def _checks() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    try:
        db().ping()
    except SQLAlchemyError as exc:
        out["database"] = _fail(f"inacessível: {type(exc).__name__}")
        for name in ("migrations", "processes", "scheduler"):
            out[name] = _fail("não conferido: banco inacessível")
        return out
    out["database"] = {"ok": True}
    out["migrations"] = _migrations()
    out["processes"] = _processes()
    out["scheduler"] = _scheduler()
    return out


def _fail(reason: str) -> dict[str, Any]:
    return {"ok": False, "reason": reason}


def _migrations() -> dict[str, Any]:
    from web.cli.db import schema_problem

    try:
        problem = schema_problem(db())
    except SQLAlchemyError as exc:
        return _fail(type(exc).__name__)
    return _fail(problem) if problem else {"ok": True}


def _processes() -> dict[str, Any]:
    expected = {p.stem for p in settings().processes_dir.glob("*.bpmn")}
    with db().read() as s:
        deployed = set(s.scalars(select(ProcessDefinition.key).distinct()))
    missing = sorted(expected - deployed)
    if missing:
        return _fail("não implantados: " + ", ".join(missing))
    return {"ok": True, "deployed": len(deployed)}


def _scheduler() -> dict[str, Any]:
    minutes = settings().ready_scheduler_minutes
    if minutes <= 0:
        return {"ok": True, "checked": False}
    with db().read() as s:
        last = heartbeat(s)
    if last is None:
        return _fail("nenhum job do agendador rodou ainda")
    age = utcnow() - last
    if age > timedelta(minutes=minutes):
        return _fail(f"último job há {int(age.total_seconds() // 60)} min (limite {minutes} min)")
    return {"ok": True, "age_seconds": int(age.total_seconds())}
