"""The landing page (the full web interface builds on this blueprint)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from sqlalchemy import func, select

from engine.definitions.models import ProcessDefinition
from engine.establishments.models import Portfolio

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    db = current_app.extensions["credencia.db"]
    with db.read() as session:
        processes = session.execute(
            select(ProcessDefinition.key, ProcessDefinition.title, func.max(ProcessDefinition.version))
            .group_by(ProcessDefinition.key, ProcessDefinition.title)
            .order_by(ProcessDefinition.key)
        ).all()
        portfolios = session.scalar(select(func.count()).select_from(Portfolio))
    return render_template("index.html", processes=processes, portfolios=portfolios)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    db = current_app.extensions["credencia.db"]
    with db.read() as session:
        session.execute(select(1))
    return {"status": "ok"}
