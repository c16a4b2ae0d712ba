"""Painel: where the organization's establishments stand; CSV export; bulk start."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from sqlalchemy import select

from engine.dashboard import queries as dash
from engine.establishments.models import UFS, Establishment, Portfolio
from engine.runtime import bulk
from web.ui.common import actor, db, has_role, int_arg, login_required, org_id

bp = Blueprint("dashboard", __name__, url_prefix="/painel")
PAGE = 50
PROCESS_KEY = "credenciamento-rnds"


def _filters() -> dash.Filters:
    a = request.args
    return dash.Filters(
        uf=a.get("uf", "").strip().upper()[:2],
        municipio=a.get("municipio", "").strip()[:100],
        portfolio=a.get("portfolio", "").strip()[:40],
        stage=a.get("etapa", "").strip()[:60],
        assignee=a.get("responsavel", "").strip()[:254],
        status=a.get("status", "").strip()
        if a.get("status") in ("running", "completed", "cancelled", "none")
        else "",
        q=a.get("q", "").strip()[:100],
        certificate="expiring" if a.get("certificado") == "vencendo" else "",
    )


@bp.get("")
@login_required
def index():  # type: ignore[no-untyped-def]
    filters = _filters()
    page = int_arg("pagina", 1) or 1
    with db().read() as s:
        rows, total = dash.page(s, actor(), org_id(), filters, limit=PAGE, offset=(page - 1) * PAGE)
        summary = dash.summary(s, actor(), org_id(), filters)
        portfolios = list(
            s.scalars(select(Portfolio).where(Portfolio.active.is_(True)).order_by(Portfolio.code))
        )
        municipios = sorted(
            set(
                s.scalars(
                    select(Establishment.municipio)
                    .where(Establishment.org_id == org_id())
                    .distinct()
                )
            )
        )
    return render_template(
        "dashboard.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, (total + PAGE - 1) // PAGE),
        summary=summary,
        filters=filters,
        portfolios=portfolios,
        municipios=municipios,
        ufs=UFS,
        can_start=has_role("admin"),
    )


@bp.get("/exportar.csv")
@login_required
def export():  # type: ignore[no-untyped-def]
    filters = _filters()
    a, org = actor(), org_id()
    with db().read() as s:
        dash.page(s, a, org, filters, limit=0)  # checks permission before the stream starts
    database = db()

    def generate():  # type: ignore[no-untyped-def]
        with database.read() as s:
            yield from dash.csv_lines(s, a, org, filters)

    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="painel-credenciamento.csv"'
    return response


@bp.post("/iniciar")
@login_required
def start_many():  # type: ignore[no-untyped-def]
    selected = request.form.getlist("cnes")
    portfolio = request.form.get("portfolio", "")
    report = bulk.start_many(
        db(), actor(), org_id(), selected, process_key=PROCESS_KEY, portfolio_code=portfolio
    )
    return render_template("bulk_report.html", report=report, portfolio=portfolio)
