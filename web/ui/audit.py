"""Auditoria: the audit log with filters, each event's details, the chain's verification and
exports."""

from __future__ import annotations

import json

from flask import Blueprint, Response, redirect, render_template, request, url_for

from engine.audit import log as auditlog
from engine.establishments import service as establishments
from engine.identifiers import is_digits
from web.access_log import logged
from web.ui.common import (
    actor,
    date_arg,
    db,
    login_required,
    org_id,
    page_arg,
    render_list,
    text_arg,
)
from web.ui.labels import action_label

bp = Blueprint("audit", __name__, url_prefix="/auditoria")
PAGE = 50


def _filters() -> auditlog.Filters:
    instance = request.args.get("processo", "").strip()
    return auditlog.Filters(
        establishment=text_arg("estabelecimento", 7),
        user=text_arg("usuario", 254),
        action=text_arg("acao", 60),
        since=date_arg("de"),
        until=date_arg("ate"),
        instance=int(instance) if is_digits(instance) and len(instance) < 10 else None,
    )


@bp.get("")
@login_required
def index():
    filters = _filters()
    with db().read() as s:
        events, total = auditlog.search(
            s, actor(), org_id(), filters, limit=PAGE, offset=(page_arg() - 1) * PAGE
        )
        actions = auditlog.actions(s, actor(), org_id())
        ests = establishments.list_establishments(s, actor(), org_id(), limit=1000)
    status = auditlog.current_status(db(), actor(), org_id())
    logged(
        "audit.browse", org_id=org_id(), entity_type="audit", detail=request.query_string.decode()
    )
    return render_list("audit/list.html", filters, total, PAGE, events=events, actions=actions,
                       status=status, establishments=ests, action_label=action_label)  # fmt: skip


@bp.post("/verificar")
@login_required
def verify():
    """Verify the organization's chain from its last checkpoint, now; the page shows how."""
    auditlog.verify_chain(db(), actor(), org_id())
    return redirect(url_for("audit.index"))


@bp.get("/eventos/<int(big=True):event_id>")
@login_required
def event(event_id: int):
    with db().read() as s:
        ev = auditlog.get_event(s, actor(), org_id(), event_id)
    logged(
        "audit.event",
        org_id=org_id(),
        entity_type=ev.entity_type,
        entity_id=ev.entity_id,
        detail=f"evento {ev.id}",
    )
    pretty = json.dumps(ev.data, ensure_ascii=False, indent=2, sort_keys=True)
    return render_template("audit/event.html", ev=ev, pretty=pretty, action_label=action_label)


def _export(kind: str):
    filters = _filters()
    a, org, database = actor(), org_id(), db()
    with database.read() as s:
        auditlog.search(s, a, org, filters, limit=0)  # permission checked before streaming
    logged(
        f"audit.export.{kind}",
        org_id=org,
        entity_type="audit",
        detail=request.query_string.decode(),
    )

    def generate():
        with database.read() as s:
            producer = auditlog.export_csv if kind == "csv" else auditlog.export_json
            yield from producer(s, a, org, filters)

    mimetype = "text/csv" if kind == "csv" else "application/json"
    response = Response(generate(), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="auditoria.{kind}"'
    return response


@bp.get("/exportar.csv")
@login_required
def export_csv():
    return _export("csv")


@bp.get("/exportar.json")
@login_required
def export_json():
    return _export("json")
