"""Administração: people and roles per establishment, API tokens, process versions, portfolios."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from engine.accounts import invitations, lifecycle
from engine.accounts import members as members_svc
from engine.accounts import tokens as tokens_svc
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments import queries as establishment_queries
from engine.establishments import service as establishments
from engine.notifications import service as notifications
from engine.notifications.models import FAILED, PENDING
from engine.runtime import queries as instance_queries
from engine.scheduler import status as scheduler_status
from web.ui.common import actor, db, deny, has_role, login_required, org_id, settings
from web.ui.common import g as _g

bp = Blueprint("admin", __name__, url_prefix="/administracao")


def _require_admin(action: str) -> None:
    if not has_role("admin"):
        deny("Apenas administradores da organização.", action=action)


def _index_page(*, new_token: str | None = None, errors: dict | None = None,
                values: dict | None = None):  # fmt: skip
    """The people-and-tokens page; 422 when a form on it was refused."""
    with db().read() as s:
        members = members_svc.members(s, actor(), org_id())
        pending = invitations.pending(s, actor(), org_id())
        tokens = tokens_svc.list_tokens(s, actor(), org_id())
        ests = establishments.list_establishments(s, actor(), org_id(), limit=1000)
    return render_template(
        "admin/index.html", members=members, invitations=pending, tokens=tokens,
        establishments=ests, roles=members_svc.roles(), new_token=new_token, errors=errors or {},
        values=values or {},
    ), (422 if errors else 200)  # fmt: skip


@bp.get("")
@login_required
def index():
    _require_admin("admin.read")
    return _index_page()


@bp.post("/papeis")
@login_required
def grant():
    """A member gets the role at once; anyone else is invited, with the same answer whether
    their e-mail has an account or not."""
    _require_admin("member.grant")
    values = {
        "email": request.form.get("email", "").strip(),
        "name": request.form.get("name", "").strip(),
        "role": request.form.get("role", ""),
        "cnes": request.form.getlist("cnes"),
    }
    try:
        with db().write() as s:
            outcome = members_svc.grant_role(
                s, actor(), org_id(), _g.org.slug, email=values["email"], role=values["role"],
                cnes=values["cnes"], name=values["name"], settings=settings(),
            )  # fmt: skip
    except Invalid as exc:
        return _index_page(errors={k: _(v) for k, v in exc.errors.items()}, values=values)
    email = values["email"].lower()
    if outcome == members_svc.GRANTED:
        flash(_("Papel concedido a %(email)s.", email=email), "success")
    else:
        flash(_("Convite enviado para %(email)s. O papel vale quando a pessoa aceitar pelo "
                "link que recebeu por e-mail.", email=email), "success")  # fmt: skip
    return _index_page()


@bp.post("/papeis/<int:membership_id>/retirar")
@login_required
def revoke(membership_id: int):
    return _change(
        "member.revoke",
        lambda s: members_svc.revoke_role(s, actor(), org_id(), membership_id),
        _("Papel retirado."),
    )


def _change(action: str, change: Callable[[Session], object], done: str, anchor: str = ""):
    """An admin's change in one transaction, flashed ``done``, back to the admin page."""
    _require_admin(action)
    with db().write() as s:
        change(s)
    flash(done, "success")
    return redirect(url_for("admin.index") + anchor)


@bp.post("/pessoas/<int:user_id>/desativar")
@login_required
def deactivate(user_id: int):
    """Ends the person's sessions and tokens at once and gives their claimed tasks back."""
    return _change(
        "user.deactivate",
        lambda s: lifecycle.deactivate(s, actor(), user_id, org_id=org_id()),
        _("Pessoa desativada: sessões encerradas, tokens revogados, tarefas devolvidas."),
    )


@bp.post("/pessoas/<int:user_id>/reativar")
@login_required
def reactivate(user_id: int):
    return _change(
        "user.reactivate",
        lambda s: lifecycle.reactivate(s, actor(), user_id, org_id=org_id()),
        _("Pessoa reativada."),
    )


@bp.post("/convites/<int:invitation_id>/cancelar")
@login_required
def cancel_invitation(invitation_id: int):
    return _change(
        "member.invite",
        lambda s: invitations.cancel(s, actor(), org_id(), invitation_id),
        _("Convite cancelado."),
        "#convites",
    )


@bp.post("/tokens")
@login_required
def create_token():
    _require_admin("token.create")
    try:
        with db().write() as s:
            token = tokens_svc.create(
                s, actor(), org_id(), request.form.get("email", ""), request.form.get("name", ""),
                request.form.get("expires_in_days", ""),
            )  # fmt: skip
    except Invalid as exc:
        return _index_page(errors={f"token_{k}": _(v) for k, v in exc.errors.items()})
    return _index_page(new_token=token)


@bp.post("/tokens/<int:token_id>/revogar")
@login_required
def revoke_token(token_id: int):
    return _change(
        "token.revoke",
        lambda s: tokens_svc.revoke(s, actor(), org_id(), token_id),
        _("Token revogado."),
        "#tokens",
    )


@bp.get("/processos")
@login_required
def processes():
    _require_admin("process.list")
    with db().read() as s:
        rows = definitions.list_definitions(s)
        counts = instance_queries.instance_counts(s, actor(), org_id())
    return render_template("admin/processes.html", definitions=rows, counts=counts)


def _definition(s, definition_id: int) -> ProcessDefinition:
    definition = s.get(ProcessDefinition, definition_id)
    if definition is None:
        raise NotFound(_("Processo não encontrado."))
    return definition


@bp.get("/processos/<int:definition_id>")
@login_required
def process(definition_id: int):
    _require_admin("process.read")
    with db().read() as s:
        definition = _definition(s, definition_id)
    return render_template("admin/process.html", definition=definition)


@bp.get("/processos/<int:definition_id>/diagrama.json")
@login_required
def process_diagram(definition_id: int):
    _require_admin("process.read")
    with db().read() as s:
        definition = _definition(s, definition_id)
        return jsonify({"xml": definition.bpmn_xml, "completed": [], "active": [], "flows": []})


@bp.get("/portfolios")
@login_required
def portfolios():
    _require_admin("portfolio.list")
    with db().read() as s:
        rows = establishment_queries.all_portfolios(s, actor(), org_id())
    return render_template(
        "admin/portfolios.html",
        portfolios=rows,
        max_mb=settings().max_upload_bytes // (1024 * 1024),
    )


# ------------------------------------------------------------------ scheduler and outbox

JOB_LABELS = {
    "timers": _l("Temporizadores dos processos (BPMN)"),
    "reminders": _l("Lembretes de análises atrasadas e resumos diários"),
    "certificates": _l("Vencimento de certificados e renovação"),
    "outbox": _l("Envio de e-mails"),
}


def _every(seconds: int) -> str:
    if seconds % 3600 == 0:
        return ngettext("a cada %(num)d hora", "a cada %(num)d horas", seconds // 3600)
    if seconds % 60 == 0:
        return ngettext("a cada %(num)d minuto", "a cada %(num)d minutos", seconds // 60)
    return ngettext("a cada %(num)d segundo", "a cada %(num)d segundos", seconds)


def _duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    return f"{ms} ms" if ms < 1000 else format_decimal(ms / 1000, format="0.0") + " s"


def _job_rows(status: scheduler_status.Status) -> list[dict]:
    rows = []
    for job in status.jobs:
        row = job.row
        rows.append(
            {
                "name": job.name,
                "label": str(JOB_LABELS.get(job.name, job.description)),
                "every": _every(job.every_seconds),
                "row": row,
                "duration": _duration(row.last_duration_ms if row else None),
                "summary": ", ".join(f"{k}: {v}" for k, v in (row.last_summary or {}).items())
                if row
                else "",
                "stalled": job.stalled,
            }
        )
    return rows


@bp.get("/agendador")
@login_required
def scheduler():
    _require_admin("scheduler.read")
    with db().read() as s:
        # Failed messages come from the admin's own organization (list_outbox), not the
        # installation-wide list collect() would give.
        status = scheduler_status.collect(s, failed_limit=0)
        failed = [
            m
            for m in notifications.list_outbox(s, actor(), statuses=[FAILED], limit=100)
            if m.org_id == org_id()
        ]
        retrying = [
            m
            for m in notifications.list_outbox(s, actor(), statuses=[PENDING], limit=100)
            if m.org_id == org_id() and m.attempts > 0
        ]
    jobs = _job_rows(status)
    return render_template(
        "admin/scheduler.html",
        status=status,
        jobs=jobs,
        failed=failed,
        retrying=retrying,
        stalled=[j for j in jobs if j["stalled"]],
        broken=[j for j in jobs if j["row"] is not None and j["row"].last_result == "error"],
    )


@bp.post("/agendador/mensagens/<int:message_id>/reenviar")
@login_required
def retry_message(message_id: int):
    _require_admin("outbox.retry")
    try:
        with db().write() as s:
            message = notifications.retry(s, actor(), message_id)
            to = message.to_addr
        flash(
            _("A mensagem para %(to)s voltou à fila e será enviada em instantes.", to=to), "success"
        )
    except Conflict:
        flash(_("Esta mensagem já tinha sido enviada."), "warning")
    return redirect(url_for("admin.scheduler") + "#falhas")
