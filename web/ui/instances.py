"""The instance page: header, live diagram, tasks, terms accepted, timeline, comments, files,
admin actions."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from engine.accounts import members
from engine.accounts import queries as account_queries
from engine.analytics.queries import Forecaster
from engine.comments import service as comments
from engine.credentials import service as credentials
from engine.db import MAX_ID
from engine.definitions.models import ProcessDefinition
from engine.errors import Conflict, Invalid
from engine.establishments import queries as establishment_queries
from engine.establishments.models import Establishment
from engine.files import queries as file_queries
from engine.files import service as files
from engine.files.models import StoredFile
from engine.identifiers import is_digits
from engine.runtime import instances as runtime_instances
from engine.runtime import picture
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import RUNNING, ProcessInstance
from engine.terms import service as terms
from web.access_log import logged
from web.ui.common import (
    actor,
    db,
    found_here,
    has_role,
    login_required,
    org_id,
    settings,
    start_answers,
)
from web.ui.labels import event_summary

bp = Blueprint("instances", __name__)


def _instance(s, instance_id: int) -> ProcessInstance:
    found_here(s, ProcessInstance, instance_id, _("Processo não encontrado."))
    return runtime_instances.get_instance(s, actor(), instance_id)


def _act(instance_id: int, change: Callable[[Session], object], done: str, anchor: str = ""):
    """Make one change to a visible instance, flash ``done`` or the refusal, and go back to it."""
    with db().read() as s:
        _instance(s, instance_id)
    try:
        with db().write() as s:
            change(s)
        flash(done, "success")
    except Invalid as exc:
        flash(_(next(iter(exc.errors.values()), exc.message)), "danger")
    return redirect(url_for("instances.show", instance_id=instance_id) + anchor)


@bp.get("/processos/<int:instance_id>")
@login_required
def show(instance_id: int):
    with db().read() as s:
        inst = _instance(s, instance_id)
        est = s.get(Establishment, inst.establishment_id) if inst.establishment_id else None
        definition = s.get(ProcessDefinition, inst.definition_id)
        portfolio = establishment_queries.portfolio_by_code(s, inst.portfolio_code)
        tasks = runtime_instances.instance_tasks(s, inst.id)
        events = runtime_instances.history(s, actor(), inst.id)
        notes = comments.list_comments(s, actor(), inst.id)
        stored = file_queries.instance_files(s, actor(), inst)
        user_ids = (
            {t.assignee_id for t in tasks}
            | {t.completed_by_id for t in tasks}
            | {inst.started_by_id}
        )
        users = account_queries.emails(s, actor(), inst.org_id, user_ids)
        is_admin = has_role("admin")
        choices = {
            t.id: members.lane_users(s, inst.org_id, t.role, t.establishment_id)
            for t in tasks
            if t.role and runtime_tasks.can_assign(actor(), t)
        }
        names = picture.element_names(definition.bpmn_xml)
        accepted = terms.for_instance(s, actor(), inst.id, inst.org_id, inst.establishment_id)
        forecaster = Forecaster(s, inst.org_id, settings().analytics_forecast_min_history)
        forecast = forecaster(
            inst.process_key, inst.portfolio_code, inst.stage, inst.stage_since, inst.status
        )
    can_comment = comments.can_comment(actor(), inst.org_id, inst.establishment_id)
    from web.ui.tasks import can_act

    logged("instance.detail", org_id=inst.org_id, entity_type="instance", entity_id=inst.id)
    return render_template(
        "instance.html",
        instance=inst,
        establishment=est,
        definition=definition,
        portfolio=portfolio,
        tasks=tasks,
        events=[(e, event_summary(e, names)) for e in events],
        comments=notes,
        files=stored,
        users=users,
        is_admin=is_admin,
        running=inst.status == RUNNING,
        assign_choices=choices,
        can_comment=can_comment,
        can_act=can_act,
        accepted_terms=accepted,
        forecast=forecast,
    )


@bp.get("/processos/<int:instance_id>/diagrama.json")
@login_required
def diagram(instance_id: int):
    with db().read() as s:
        _instance(s, instance_id)
        pic = picture.picture(s, actor(), instance_id)
    return jsonify(
        {"xml": pic.bpmn_xml, "completed": pic.completed, "active": pic.active, "flows": pic.flows}
    )


@bp.post("/processos/<int:instance_id>/comentarios")
@login_required
def comment(instance_id: int):
    body = request.form.get("body", "")
    return _act(instance_id, lambda s: comments.add_comment(s, actor(), instance_id, body),
                _("Comentário publicado."), anchor="#comentarios")  # fmt: skip


@bp.post("/processos/<int:instance_id>/cancelar")
@login_required
def cancel(instance_id: int):
    reason = request.form.get("reason", "")
    return _act(instance_id, lambda s: credentials.cancel(s, actor(), instance_id, reason),
                _("Processo cancelado."))  # fmt: skip


def _credential_param() -> int | None:
    value = (request.form.get("credential") or "").strip()
    if not value:
        return None
    if not is_digits(value) or int(value) > MAX_ID:
        raise Invalid({"credential": _("Credencial inválida.")})
    return int(value)


@bp.post("/processos/iniciar")
@login_required
def start():
    cnes = (request.form.get("cnes") or "").strip()
    credential_id: int | None = None
    try:
        credential_id = _credential_param()
        with db().write() as s:
            inst = credentials.start(
                s, actor(), org_id=org_id(), process_key=request.form.get("process", "credenciamento-rnds"),
                establishment_cnes=cnes, portfolio_code=request.form.get("portfolio", ""),
                credential_id=credential_id, data=start_answers(request.form),
            )  # fmt: skip
            new_id = inst.id
            definition = s.get(ProcessDefinition, inst.definition_id)
            title = (definition.manifest or {}).get("title", "") if definition else ""
    except (Invalid, Conflict) as exc:
        if isinstance(exc, Conflict) and credential_id is None:
            raise
        errors = exc.errors if isinstance(exc, Invalid) else {}
        flash(_(next(iter(errors.values()), exc.message)), "danger")
        # A process started from a credential's page goes back to it with the refusal.
        if credential_id is not None:
            return redirect(url_for("credentials.show", credential_id=credential_id))
        return redirect(
            url_for("establishments.show", cnes=cnes) if cnes else url_for("dashboard.index")
        )
    if credential_id is not None and title:
        flash(_("Processo iniciado: %(title)s.", title=_(title)), "success")
    else:
        flash(_("Credenciamento iniciado."), "success")
    return redirect(url_for("instances.show", instance_id=new_id))


@bp.get("/arquivos/<file_id>")
@login_required
def download(file_id: str):
    with db().read() as s:
        found_here(s, StoredFile, file_id, _("Arquivo não encontrado."))
    with db().write() as s:
        row = files.get(s, actor(), file_id)
        content, name, content_type = row.content, row.filename, row.content_type
        files.record_download(s, actor(), row)
    response = Response(content, mimetype=content_type)
    ascii_name = name.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name or 'arquivo'}\"; filename*=UTF-8''{quote(name)}"
    )
    # Always saved, never shown: even a browser that ignored "attachment" would neither sniff
    # the type nor run anything in it.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
