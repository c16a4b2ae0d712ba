"""Painel: where the organization's establishments stand; CSV export; bulk start."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from engine.analytics.queries import Forecaster
from engine.dashboard import queries as dash
from engine.dashboard.queries import CREDENTIAL_STATUSES
from engine.establishments import queries as establishment_queries
from engine.establishments.models import UFS
from engine.runtime import bulk
from web.access_log import logged
from web.ui.common import (
    actor,
    db,
    has_role,
    login_required,
    org_id,
    page_arg,
    render_list,
    settings,
    start_answers,
    text_arg,
)

bp = Blueprint("dashboard", __name__, url_prefix="/painel")
PAGE = 50
PROCESS_KEY = "credenciamento-rnds"


def _filters() -> dash.Filters:
    a = request.args
    return dash.Filters(
        uf=a.get("uf", "").strip().upper()[:2],
        municipio=text_arg("municipio", 100),
        portfolio=text_arg("portfolio", 40),
        stage=text_arg("etapa", 60),
        assignee=text_arg("responsavel", 254),
        status=a.get("status", "").strip()
        if a.get("status") in ("running", "completed", "cancelled", "none")
        else "",
        q=text_arg("q", 100),
        certificate="expiring" if a.get("certificado") == "vencendo" else "",
        credential=a.get("credencial", "")
        if a.get("credencial") in dict(CREDENTIAL_STATUSES)
        else "",
    )


@bp.get("")
@login_required
def index():
    filters = _filters()
    with db().read() as s:
        offset = (page_arg() - 1) * PAGE
        forecaster = Forecaster(s, org_id(), settings().analytics_forecast_min_history)
        rows, total = dash.page(s, actor(), org_id(), filters, limit=PAGE, offset=offset,
                                forecaster=forecaster)  # fmt: skip
        summary = dash.summary(s, actor(), org_id(), filters)
        portfolios = establishment_queries.active_portfolios(s)
        municipios = establishment_queries.municipios(s, actor(), org_id())
    return render_list("dashboard.html", filters, total, PAGE, rows=rows, summary=summary,
                       portfolios=portfolios, municipios=municipios, ufs=UFS,
                       credential_statuses=CREDENTIAL_STATUSES, can_start=has_role("admin"))  # fmt: skip


@bp.get("/exportar.csv")
@login_required
def export():
    filters = _filters()
    a, org = actor(), org_id()
    with db().read() as s:
        dash.page(s, a, org, filters, limit=0)  # checks permission before the stream starts
        forecaster = Forecaster(s, org, settings().analytics_forecast_min_history)
    logged(
        "dashboard.export",
        org_id=org,
        entity_type="dashboard",
        detail=request.query_string.decode()[:300],
    )
    database = db()

    def generate():
        with database.read() as s:
            yield from dash.csv_lines(s, a, org, filters, forecaster=forecaster)

    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="painel-credenciamento.csv"'
    return response


@bp.post("/iniciar")
@login_required
def start_many():
    selected = request.form.getlist("cnes")
    portfolio = request.form.get("portfolio", "")
    report = bulk.start_many(
        db(), actor(), org_id(), selected, process_key=PROCESS_KEY, portfolio_code=portfolio,
        data=start_answers(request.form),
    )  # fmt: skip
    return render_template("bulk_report.html", report=report, portfolio=portfolio)
