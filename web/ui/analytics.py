"""Análises: where credentialing waits and why — the heatmap on the diagram, lead times,
cumulative flow, DATASUS response times, rejection reasons and the team view (issue 17).

Every figure comes from engine/analytics/queries.py (aggregates kept by the scheduler); the
page renders them as tables (readable without JavaScript, by screen readers, exportable as
CSV) and hands the same data to the charts as JSON.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import gettext as _

from engine.analytics import queries as analytics
from engine.analytics.refresh import GOAL_STAGE
from engine.definitions import queries as definition_queries
from engine.errors import Invalid
from engine.establishments import queries as establishment_queries
from engine.establishments.models import UFS
from engine.identifiers import is_digits
from web.i18n import translate
from web.ui.common import actor, db, login_required, org_id, settings, text_arg

bp = Blueprint("analytics", __name__, url_prefix="/analises")
PROCESS_KEY = "credenciamento-rnds"
MODES = ("count", "duration", "overdue")


def _version() -> int | None:
    raw = request.args.get("versao", "")
    return int(raw) if is_digits(raw) and len(raw) < 10 else None


@bp.get("")
@login_required
def index():
    a, org, tz = actor(), org_id(), settings().timezone
    errors: dict[str, str] = {}
    try:
        period_from = analytics.month_of(text_arg("de", 10), "de")
    except Invalid as exc:
        period_from, errors = "", {**errors, **exc.errors}
    try:
        period_to = analytics.month_of(text_arg("ate", 10), "ate")
    except Invalid as exc:
        period_to, errors = "", {**errors, **exc.errors}
    uf = text_arg("uf", 2).upper()
    f = analytics.Filters(
        process_key=PROCESS_KEY, version=_version(), period_from=period_from,
        period_to=period_to, uf=uf if uf in UFS else "", municipio=text_arg("municipio", 100),
        portfolio=text_arg("portfolio", 40),
    )  # fmt: skip
    mode = request.args.get("modo", "count")
    mode = mode if mode in MODES else "count"
    with db().read() as s:
        elements = analytics.elements(s, a, org, f, tz=tz)
        lead = analytics.lead_times(s, a, org, f, tz=tz)
        # Start to production, by portfolio and by UF (no flow: the page has it already).
        to_goal = {
            group: [
                i for i in analytics.lead_times(s, a, org, f, tz=tz, group=group, flow=False).items
                if i.stage == GOAL_STAGE
            ]
            for group in ("portfolio", "uf")
        }  # fmt: skip
        datasus = analytics.datasus_response(s, a, org, f, tz=tz)
        wide = any(a.has_role(org, role) for role in analytics.ORG_ROLES)
        team = analytics.team(s, a, org, f, tz=tz) if wide else None
        versions = [d.version for d in definition_queries.versions(s, PROCESS_KEY)]
        portfolios = establishment_queries.active_portfolios(s)
        municipios = establishment_queries.municipios(s, a, org)
        xml = elements.definition.bpmn_xml
    chart_data = _chart_data(elements, lead, datasus, mode, xml)
    return render_template(
        "analytics.html", f=f, mode=mode, chart_data=chart_data, errors=errors, elements=elements, lead=lead,
        datasus=datasus, team=team, to_goal=to_goal, versions=versions, portfolios=portfolios,
        municipios=municipios, ufs=UFS, bpmn_xml=xml, modes=MODES,
        datasus_hours=analytics.DATASUS_HOURS,
    )  # fmt: skip


KINDS = {"homologation": "homologação", "production": "produção", "change": "alteração"}


def _days(seconds: int | None) -> float | None:
    return None if seconds is None else round(seconds / 86400, 2)


def _hours(seconds: int | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _chart_data(elements, lead, datasus, mode: str, xml: str) -> dict:
    """What the diagram and the charts draw: the same figures as the page's tables."""
    return {
        "xml": xml,
        "mode": mode,
        "figures": {
            e.element_id: {
                "name": translate(e.name), "completed": e.completed, "active": e.active,
                "median": e.median, "p90": e.p90, "overdue": e.overdue_share, "loops": e.loops,
            }
            for e in elements.items
        },
        "lead": {
            "stages": [translate(i.stage) for i in lead.items],
            "median": [_days(i.median) for i in lead.items],
            "p90": [_days(i.p90) for i in lead.items],
        },
        "flow": {
            "weeks": lead.weeks,
            "series": [{"name": translate(k), "data": v} for k, v in lead.flow.items()],
        },
        "datasus": {
            "labels": [f"{i.portfolio} · {_(KINDS.get(i.kind, 'outra'))}" for i in datasus.items],
            "median": [_hours(i.median) for i in datasus.items],
            "p90": [_hours(i.p90) for i in datasus.items],
            "expected": analytics.DATASUS_HOURS,
        },
        "reasons": {
            "labels": [r.label for r in datasus.reasons],
            "counts": [r.count for r in datasus.reasons],
        },
        "words": {
            "completed": _("concluídas"), "active": _("ativas"), "median": _("mediana"),
            "p90": _("P90"), "overdue": _("atrasadas"), "loops": _("repetições"),
            "days": _("dias"), "hours": _("horas"), "expected": _("esperado"),
            "count": _("reprovações"), "error": _("Não foi possível desenhar o diagrama."),
            "hover": _("Passe o mouse sobre uma tarefa para ver os números."),
        },
    }  # fmt: skip
