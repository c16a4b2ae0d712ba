"""The task page: instructions, context and the step's form; claim, release, draft, submit."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from engine import forms
from engine.accounts import queries as account_queries
from engine.certificates import service as certificates
from engine.completion import service as completion
from engine.drafts import service as drafts
from engine.errors import Invalid, NotFound, TooLarge
from engine.establishments import queries as establishment_queries
from engine.establishments.models import Establishment
from engine.files import queries as file_queries
from engine.files import service as files
from engine.forms import conditions as form_conditions
from engine.runtime import picture, taskform
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import READY, ProcessInstance, Task
from web import forms_render
from web.access_log import logged
from web.errors import RETRY_AFTER_SECONDS, database_busy, database_slow, log_database
from web.i18n import translate
from web.ui import certificates as certificate_views
from web.ui import children as children_views
from web.ui.common import actor, db, login_required, org_id, safe_next, same_org, settings

bp = Blueprint("tasks", __name__, url_prefix="/tarefas")


def _task(s: Session, task_id: str) -> Task:
    row = s.get(Task, task_id) if len(task_id) <= 36 else None
    if row is None:
        raise NotFound(_("Tarefa não encontrada."))
    same_org(row.org_id)
    return runtime_tasks.get_task(s, actor(), task_id)


def can_act(task: Task) -> bool:
    """Whether the signed-in person may fill in and send the task's form (the engine's rule)."""
    return runtime_tasks.can_complete(actor(), task)


def _file_meta(
    s: Session, data: Any
) -> tuple[dict[str, forms_render.FileMeta], dict[str, list[str]]]:
    """The files a form shows (names, sizes) and the warnings on the flagged ones."""
    ids = forms_render.file_ids(data)
    if not ids:
        return {}, {}
    rows = file_queries.file_rows(s, actor(), org_id(), ids)
    metas = {r[0]: forms_render.FileMeta(*r[:5]) for r in rows}
    return metas, {r[0]: list(r[5]) for r in rows if r[5]}


def _page(task_id: str, *, data: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
          status: int = 200, notice: str = "", shown: dict[str, Any] | None = None,
          notice_kind: str = "info"):  # fmt: skip
    with db().read() as s:
        task = _task(s, task_id)
        form = taskform.task_form(s, actor(), task)
        instance = s.get(ProcessInstance, task.instance_id)
        est = s.get(Establishment, task.establishment_id) if task.establishment_id else None
        portfolio = establishment_queries.portfolio_by_code(s, instance.portfolio_code)
        instructions = picture.documentation(s, actor(), instance.id, task.element_id)
        acting = can_act(task)
        draft = drafts.get_draft(s, actor(), task.id) if acting else None
        if data is None:
            data = dict(form.data)
            if draft is not None:
                data.update(draft.data)
        else:
            data = _with_readonly(form.schema, form.data, data)
        users = account_queries.emails(
            s, actor(), task.org_id, {task.assignee_id, task.completed_by_id}
        )
        metas, file_flags = _file_meta(s, data)
        rendered = forms_render.build_form(
            # a field its portfolio waives (x-required-unless-portfolio) is not marked required
            forms.served_schema(form.schema, form.context, limit_options=False), form.ui, data,
            errors=errors, context=form.context, files=metas,
            readonly=not acting,
        )  # fmt: skip
        certificate, shows_certificate = None, False
        if est is not None and certificate_views.form_takes_certificate(form.schema):
            shows_certificate = True
            current = certificates.current(s, est.id)
            certificate = certificate_views.view(current) if current else None
    lane_member = runtime_tasks.in_lane(actor(), task)
    return render_template(
        "task.html",
        task=task,
        instance=instance,
        establishment=est,
        portfolio=portfolio,
        context=form.context,
        instructions=instructions,
        form=rendered,
        acting=acting,
        lane_member=lane_member,
        draft=draft,
        users=users,
        notice=notice,
        notice_kind=notice_kind,
        max_mb=settings().max_upload_bytes // (1024 * 1024),
        evidence_mb=_evidence_mb(portfolio),
        file_flags=file_flags,
        certificate=certificate,
        shows_certificate=shows_certificate,
        terms=form.terms,
        shown=shown or {},
        **children_views.tools(form.schema),
    ), status


def _evidence_mb(portfolio: Any) -> int:
    """The largest evidence file this instance's forms take, in MB (shown at the field)."""
    limit = settings().max_upload_bytes
    return (portfolio.evidence_limit(limit) if portfolio else limit) // (1024 * 1024)


def _with_readonly(
    schema: dict[str, Any], prefill: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """Read-only fields are never posted back: show them from the workflow's data."""
    out = dict(data)
    for key in forms.form_view(schema).readonly_names:
        if key in prefill:
            out[key] = prefill[key]
    return out


@bp.get("/<task_id>")
@login_required
def show(task_id: str):
    page = _page(task_id)
    logged("task.detail", org_id=org_id(), entity_type="task", entity_id=task_id)
    return page


def _certificate_password(schema: dict[str, Any], data: dict[str, Any]) -> str | None:
    """A .pfx is opened at upload with the form's ``format: password`` field (never kept)."""
    key = forms.form_view(schema).upload_password
    return str(data[key]) if key and data.get(key) else None


def _store_uploads(schema: dict[str, Any], data: dict[str, Any], errors: dict[str, str]) -> None:
    limit = settings().max_upload_bytes
    password = _certificate_password(schema, data)
    for key, many in forms_render.file_fields(schema).items():
        for upload in request.files.getlist(key + forms_render.UPLOAD_SUFFIX):
            if not upload or not upload.filename:
                continue
            try:
                content = files.read_limited(upload.stream, limit)
                with db().write() as s:
                    row = files.store(
                        s,
                        actor(),
                        org_id(),
                        upload.filename,
                        content,
                        limit=limit,
                        password=password,
                        quota=files.UploadQuota.from_settings(settings()),
                    )
            except (TooLarge, Invalid) as exc:
                message = (
                    exc.errors.get("file", exc.message) if isinstance(exc, Invalid) else exc.message
                )
                errors[key] = translate(message)
                continue
            if many:
                data.setdefault(key, []).append(row.id)
            else:
                data[key] = row.id


@bp.post("/<task_id>")
@login_required
def submit(task_id: str):
    typed: list[dict[str, Any]] = []  # the submission, once read
    try:
        return _submit(task_id, typed.append)
    except OperationalError as exc:
        if not database_busy(exc) or not typed:
            raise  # an outage, or nothing read yet: web.errors' 503 page
        # Nothing was written. The form again, with what was typed, rather than an error page
        # that loses it.
        slow = database_slow(exc)
        log_database("slow" if slow else "busy", exc)
        notice = (
            _(
                "O banco de dados demorou demais para responder e nada foi alterado. Os dados "
                "preenchidos foram mantidos: confira os anexos e envie de novo."
            )
            if slow
            else _(
                "O sistema está ocupado com outras gravações no momento e nada foi alterado. "
                "Os dados preenchidos foram mantidos: confira os anexos e envie de novo."
            )
        )
        page, status = _page(
            task_id, data=typed[-1], status=503, notice=notice, notice_kind="warning"
        )
        return page, status, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _submit(task_id: str, seen: Any):
    with db().read() as s:
        task = _task(s, task_id)
        form = taskform.task_form(s, actor(), task)
    if not can_act(task):
        if task.state != READY:
            flash(_("Esta tarefa já foi concluída."), "warning")
            return redirect(url_for("tasks.show", task_id=task_id))
        # Let the engine refuse (and audit) the attempt.
        with db().write() as s:
            completion.complete(s, actor(), task_id, {}, settings=settings())
    action = request.form.get("action", "submit")
    data = forms_render.parse_submission(form.schema, form.ui, request.form)
    seen(data)
    errors: dict[str, str] = {}
    _store_uploads(form.schema, data, errors)
    if forms_render.apply_row_action(form.schema, data, action, form.context, form.ui):
        return _page(task_id, data=data, errors=errors)
    if action.partition(":")[0] in children_views.ACTIONS:
        # Without JavaScript: "Importar CNES filhos" and "Consultar" (web/ui/children.py).
        notice, shown = children_views.round_trip(task_id, form.schema, data, action)
        return _page(task_id, data=data, errors=errors, notice=notice, shown=shown)
    if action == "autofill":
        return _autofill(task_id, form.schema, data, errors)
    if action == "save":
        with db().write() as s:
            drafts.save_draft(s, actor(), task_id, data)
        flash(_("Rascunho salvo. Você pode continuar depois."), "success")
        return redirect(url_for("tasks.show", task_id=task_id))
    if action in ("refresh", "back"):
        # Without JavaScript: the form again, showing the fields the answers show now
        # ("Atualizar formulário"), or as it was before the review ("Anterior").
        notice = _("Formulário atualizado conforme as respostas.") if action == "refresh" else ""
        return _page(task_id, data=data, errors=errors, notice=notice)
    if errors:
        return _page(task_id, data=data, errors=errors, status=422)
    if action != "confirm" and form_conditions.wants_review(form.schema, form.ui):
        return _review(task_id, form, data)
    try:
        with db().write() as s:
            done = completion.complete(s, actor(), task_id, data, settings=settings())
            drafts.discard_drafts(s, task_id)
            instance_id = done.task.instance_id
            name = done.task.name
            # Straight to the next form when it is this person's to fill.
            mine = [t for t in done.next if runtime_tasks.can_complete(actor(), t)]
    except Invalid as exc:
        return _page(
            task_id, data=data, errors={k: translate(v) for k, v in exc.errors.items()}, status=422
        )
    flash(_("Tarefa “%(name)s” concluída.", name=_(name)), "success")
    if len(mine) == 1:
        flash(_("Próxima tarefa: “%(name)s”.", name=_(mine[0].name)), "info")
        return redirect(url_for("tasks.show", task_id=mine[0].id))
    return redirect(url_for("instances.show", instance_id=instance_id))


def _review(task_id: str, form: Any, data: dict[str, Any]):
    """The "Resumo da solicitação": the form validated, nothing sent; "Confirmar" posts the
    same data back (action ``confirm``), "Anterior" returns to the filled form."""
    try:
        with db().write() as s:
            cleaned = runtime_tasks.check(s, actor(), task_id, data)
    except Invalid as exc:
        errors = {k: translate(v) for k, v in exc.errors.items()}
        return _page(task_id, data=data, errors=errors, status=422)
    # The terms "Confirmar" accepts: those whose box is ticked and shown.
    accepting = [t for name, t in form.terms.items() if cleaned.get(name) is True]
    with db().read() as s:
        task = _task(s, task_id)
        instance = s.get(ProcessInstance, task.instance_id)
        shown = _with_readonly(form.schema, form.data, data)
        metas, _flags = _file_meta(s, shown)
    summary = forms_render.build_summary(
        form.schema, form.ui, shown, context=form.context, files=metas
    )
    return render_template(
        "task_review.html",
        task=task,
        instance=instance,
        title=forms.form_view(form.schema, form.ui).title,
        summary=summary,
        posted=forms_render.to_post(form.schema, form.ui, data),
        terms=accepting,
    )


def _autofill(task_id: str, schema: dict[str, Any], data: dict[str, Any], errors: dict[str, str]):
    # The field that holds the establishment's CNES is the one the register's "cnes" fills.
    cnes_field = forms.form_view(schema).register_field("cnes") or ""
    cnes = str(data.get(cnes_field) or "").strip()
    with db().read() as s:
        est = establishment_queries.find_visible(s, actor(), org_id(), cnes)
        register = est.register_data() if est is not None else None
    if register is None:
        errors[cnes_field] = _("CNES não cadastrado na organização.")
        return _page(task_id, data=data, errors=errors, status=422)
    data = forms_render.register_autofill(schema, data, register)
    return _page(
        task_id, data=data, errors=errors, notice=_("Dados do cadastro preenchidos pelo CNES.")
    )


def _simple(task_id: str, action: Any, message: str, *args: Any):
    with db().read() as s:
        _task(s, task_id)
    with db().write() as s:
        action(s, actor(), task_id, *args)
    flash(message, "success")
    return redirect(safe_next(request.form.get("next"), url_for("tasks.show", task_id=task_id)))


@bp.post("/<task_id>/assumir")
@login_required
def claim(task_id: str):
    return _simple(task_id, runtime_tasks.claim, _("Tarefa assumida por você."))


@bp.post("/<task_id>/liberar")
@login_required
def release(task_id: str):
    return _simple(task_id, runtime_tasks.release, _("Tarefa liberada para a raia."))


@bp.post("/<task_id>/atribuir")
@login_required
def assign(task_id: str):
    email = (request.form.get("assignee") or "").strip()
    try:
        return _simple(
            task_id, runtime_tasks.assign, _("Tarefa atribuída a %(email)s.", email=email), email
        )
    except Invalid as exc:
        flash(translate(next(iter(exc.errors.values()), exc.message)), "danger")
        return redirect(safe_next(request.form.get("next"), url_for("tasks.show", task_id=task_id)))
