"""LGPD pages: the access log for the organization's encarregado (auditors and admins), a
data subject's report for admins, and what retention will remove next."""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _

from engine.errors import Invalid
from engine.lgpd import access, pdf, retention
from engine.lgpd import service as lgpd
from web.access_log import logged
from web.ui.common import (
    actor,
    date_arg,
    db,
    has_role,
    login_required,
    org_id,
    page_arg,
    render_list,
    settings,
    text_arg,
)  # fmt: skip

bp = Blueprint("lgpd", __name__, url_prefix="/lgpd")
PAGE = 50


def _filters() -> access.Filters:
    return access.Filters(user=text_arg("usuario", 254), view=text_arg("tela", 60),
                          since=date_arg("de"), until=date_arg("ate"))  # fmt: skip


@bp.get("/acessos")
@login_required
def accesses():
    filters = _filters()
    with db().read() as s:
        entries, total = access.search(
            s, actor(), org_id(), filters, limit=PAGE, offset=(page_arg() - 1) * PAGE
        )
        chain = access.verify(s, org_id())[0]
    logged("access_log.browse", org_id=org_id(), entity_type="access_log",
           detail=request.query_string.decode())  # fmt: skip
    return render_list("lgpd/accesses.html", filters, total, PAGE, entries=entries, chain=chain)


@bp.get("/acessos.csv")
@login_required
def accesses_csv():
    filters = _filters()
    a, org, database = actor(), org_id(), db()
    with database.write() as s:
        access.search(s, a, org, filters, limit=0)  # permission checked before streaming
        access.seal(s)  # the export shows every entry chained
    logged("access_log.export", org_id=org, entity_type="access_log",
           detail=request.query_string.decode())  # fmt: skip

    def generate():
        with database.read() as s:
            yield from access.export_csv(s, a, org, filters)

    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="registro-de-acessos.csv"'
    return response


@bp.get("/titular")
@login_required
def subject_form():
    with db().read() as s:
        if not has_role("admin"):
            raise actor().deny("Relatórios de titulares são para administradores.",
                               action="lgpd.report", org_id=org_id())  # fmt: skip
        del s
    return render_template("lgpd/subject.html", values={}, errors={})


@bp.post("/titular")
@login_required
def subject_report():
    kind = "cpf" if request.form.get("tipo") != "email" else "email"
    value = request.form.get("valor", "").strip()[:254]
    fmt = "pdf" if request.form.get("formato") == "pdf" else "json"
    try:
        with db().write() as s:
            report = lgpd.report(s, actor(), kind, value, org_id=org_id())
    except Invalid as exc:
        errors = {"valor": next(iter(exc.errors.values()), _("Valor inválido."))}
        return render_template(
            "lgpd/subject.html", values={"tipo": kind, "valor": value}, errors=errors
        ), 422
    if fmt == "pdf":
        response = Response(pdf.render(report), mimetype="application/pdf")
        response.headers["Content-Disposition"] = 'attachment; filename="relatorio-titular.pdf"'
        return response
    response = Response(json.dumps(report, ensure_ascii=False, indent=2),
                        mimetype="application/json")  # fmt: skip
    response.headers["Content-Disposition"] = 'attachment; filename="relatorio-titular.json"'
    return response


@bp.get("/retencao")
@login_required
def retention_page():
    with db().read() as s:
        if not has_role("admin"):
            raise actor().deny("A retenção é para administradores.", action="lgpd.retention",
                               org_id=org_id())  # fmt: skip
        due = retention.plan(s, settings())
    return render_template("lgpd/retention.html", due=due)
