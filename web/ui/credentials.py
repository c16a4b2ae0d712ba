"""Credenciais: the organization's credentials (filters, counts by status, CSV export) and one
credential's page with its fields, children, certificate, timeline and the processes that may
start on it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import identifiers
from engine.credentials import pec, queries
from engine.credentials import service as credentials
from engine.credentials.models import STATUS_LABELS, STATUSES, Credential
from engine.db import utcnow
from engine.errors import Invalid
from engine.establishments import queries as establishment_queries
from engine.establishments.models import UFS
from engine.identifiers import is_digits
from web.access_log import logged
from web.i18n import fmt_date
from web.ui.common import (
    actor,
    db,
    found_here,
    has_role,
    login_required,
    org_id,
    page_arg,
    settings,
    text_arg,
)

bp = Blueprint("credentials", __name__)
PAGE = queries.PAGE_SIZE
EXPIRING_SOON_DAYS = 60
# The query arguments, by the engine's filter names (errors are shown at these fields).
ARGS = {
    "establishment": "q",
    "portfolio": "portfolio",
    "status": "situacao",
    "uf": "uf",
    "requester_id": "identificador",
    "expiring_within_days": "vencendo_em",
}
# Status → the look of the stage tags (web/static/css/app.css).
STATUS_CLASSES = {
    "em_solicitacao": "prep",
    "homologacao": "homolog",
    "em_analise_producao": "analise",
    "producao": "producao",
    "suspensa": "reprovada",
    "encerrada": "encerrado",
}
DATES = ("ended_on", "homologation_on", "production_on")
ACTION_LABELS = {
    "change": _l("Solicitar alteração"),
    "withdrawal": _l("Encerrar credencial"),
    "transfer": _l("Transferir titularidade"),
    "renewal": _l("Renovar certificado"),
}
ACTION_ICONS = {
    "change": "fa-edit",
    "withdrawal": "fa-ban",
    "transfer": "fa-exchange-alt",
    "renewal": "fa-sync-alt",
}
FIELD_LABELS = {
    "status": _l("Situação"),
    "requester_id": _l("Identificador do solicitante"),
    "request_numbers": _l("Nº das solicitações"),
    "operations": _l("Operações aprovadas"),
    "ip_start": _l("IP inicial"),
    "ip_end": _l("IP final"),
    "system_name": _l("Sistema"),
    "system_version": _l("Versão do sistema"),
    "children": _l("Estabelecimentos filhos"),
    "gestor_name": _l("Gestor responsável"),
    "gestor_cpf": _l("CPF do gestor"),
    "gestor_email": _l("E-mail do gestor"),
    "organization": _l("Organização"),
    "certificate_sha256": _l("Certificado (SHA-256)"),
    "is_pec": _l("Credencial do PEC"),
    "ended_on": _l("Encerrada em"),
    "end_reason": _l("Motivo do encerramento"),
    "homologation_on": _l("Homologação em"),
    "production_on": _l("Produção em"),
}


def _filters() -> tuple[queries.Filters, dict[str, str]]:
    """The list's filters from the query string, and the errors at their fields."""
    errors: dict[str, str] = {}
    days_text = text_arg("vencendo_em", 10)
    days: int | None = None
    if days_text:
        if is_digits(days_text):
            days = int(days_text)
        else:
            errors["vencendo_em"] = _("Informe um número de dias.")
    status = text_arg("situacao", 24)
    filters = queries.Filters(
        establishment=text_arg("q", 100),
        portfolio=text_arg("portfolio", 40),
        status=status,
        uf=text_arg("uf", 2).upper(),
        requester_id=text_arg("identificador", 40),
        expiring_within_days=days,
    )
    try:
        filters.checked()
    except Invalid as exc:
        for name, message in exc.errors.items():
            errors.setdefault(ARGS.get(name, name), _(message))
    return filters, errors


def certificate_state(not_after: datetime | None) -> str:
    """How near a certificate's end is: "expired", "expiring" (within 60 days) or ""."""
    if not_after is None:
        return ""
    now = utcnow()
    if not_after < now:
        return "expired"
    if not_after <= now + timedelta(days=EXPIRING_SOON_DAYS):
        return "expiring"
    return ""


def _render(template: str, **values: Any) -> str:
    return render_template(
        template,
        status_labels=STATUS_LABELS,
        status_classes=STATUS_CLASSES,
        certificate_state=certificate_state,
        is_admin=has_role("admin"),
        **values,
    )


@bp.get("/credenciais")
@login_required
def index():
    filters, errors = _filters()
    with db().read() as s:
        portfolios = establishment_queries.active_portfolios(s)
        if errors:
            page = queries.Page([], 0, 1, 1, queries.status_counts(s, actor(), org_id()))
        else:
            page = queries.list_page(s, actor(), org_id(), filters, page=page_arg(), per_page=PAGE)
    return _render(
        "credentials/list.html",
        filters=filters,
        errors=errors,
        result=page,
        statuses=STATUSES,
        portfolios=portfolios,
        ufs=UFS,
    ), (422 if errors else 200)


@bp.get("/credenciais.csv")
@login_required
def export():
    filters, errors = _filters()
    if errors:
        return index()
    a, org = actor(), org_id()
    database = db()

    def generate():
        with database.read() as s:
            yield from queries.export_csv(s, a, org, filters)

    with database.read() as s:  # permission and filters checked before the stream starts
        queries.list_page(s, a, org, filters, per_page=1)
    logged(
        "credentials.export",
        org_id=org,
        entity_type="credentials",
        detail=request.query_string.decode()[:300],
    )
    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="credenciais.csv"'
    return response


def _credential(s, credential_id: int) -> Credential:
    found_here(s, Credential, credential_id, _("Credencial não encontrada."))
    return credentials.get(s, actor(), credential_id)


def _history(credential: Credential) -> list[dict[str, Any]]:
    out = []
    for item in credential.history or []:
        try:
            at = datetime.fromisoformat(str(item.get("at", "")))
        except ValueError:
            at = None
        status = str(item.get("status", ""))
        out.append(
            {"status": status, "label": STATUS_LABELS.get(status, status), "at": at,
             "instance": item.get("instance"), "reason": item.get("reason", "")}
        )  # fmt: skip
    return out


def _shown(field: str, value: Any) -> str:
    """A credential value as the timeline shows it."""
    if value in (None, "", []):
        return "—"
    if field == "status":
        return _(STATUS_LABELS.get(str(value), str(value)))
    if field == "is_pec":
        return _("sim") if value else _("não")
    if field in DATES:
        return fmt_date(value)
    if field == "gestor_cpf":
        try:
            return identifiers.format_cpf(str(value))
        except ValueError:
            return str(value)
    if field == "operations" and isinstance(value, list):
        return ", ".join(
            f"{op.get('metodo', '')} {op.get('operacao', '')}".strip()
            if isinstance(op, dict)
            else str(op)
            for op in value
        )
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def describe_event(event: Any) -> tuple[str, list[str]]:
    """A credential's audit event in words: a title and its details (field "de → para")."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.action in ("credential.updated", "credential.created"):
        title = (
            _("Credencial criada")
            if event.action == "credential.created"
            else _("Credencial atualizada")
        )
        changes = data.get("changes")
        if isinstance(changes, dict):
            lines = [
                f"{FIELD_LABELS.get(name, name)}: {_shown(name, diff.get('de'))} → "
                f"{_shown(name, diff.get('para'))}"
                for name, diff in changes.items()
                if isinstance(diff, dict)
            ]
            return title, lines
        lines = []
        if data.get("status"):
            lines.append(f"{FIELD_LABELS['status']}: {_shown('status', data['status'])}")
        if data.get("reason"):
            lines.append(_(str(data["reason"])))
        return _("Credencial atualizada"), lines
    if event.action == "credential.transferred":
        return _("Titularidade transferida"), [
            _("de %(src)s para %(dst)s", src=data.get("from", "—"), dst=data.get("to", "—"))
        ]
    if event.action == "credential.pec_certificate_disabled":
        return _("Certificado desabilitado no PEC"), [
            _("em %(on)s", on=fmt_date(data.get("on"))),
            str(data.get("reason", "")),
        ]
    if event.action == "credential.pec_certificate_enabled":
        return _("Certificado habilitado novamente no PEC"), [
            _("em %(on)s", on=fmt_date(data.get("on")))
        ]
    if event.action == "credential.registered":
        return _("Credencial registrada (trazida de fora do Credencia)"), [
            f"{FIELD_LABELS['status']}: {_shown('status', data.get('status'))}",
            f"{FIELD_LABELS['requester_id']}: {_shown('requester_id', data.get('requester_id'))}",
        ]
    return event.action, []


def _timeline(detail: queries.Detail) -> list[dict[str, Any]]:
    """The processes that touched the credential and its own events, oldest first."""
    items: list[dict[str, Any]] = [
        {"at": entry.started_at, "process": entry} for entry in detail.timeline
    ]
    for event in detail.events:
        # A process start is the process's own line.
        if event.action.startswith("credential.") and event.action != "credential.process_started":
            title, lines = describe_event(event)
            items.append({"at": event.at, "event": event, "title": title, "lines": lines})
    return sorted(items, key=lambda item: item["at"])


@bp.get("/credenciais/<int:credential_id>")
@login_required
def show(credential_id: int):
    page = _show(credential_id)
    logged("credential.detail", org_id=org_id(), entity_type="credential", entity_id=credential_id)
    return page


def _show(credential_id: int, *, pec_form: dict[str, Any] | None = None, status: int = 200):
    with db().read() as s:  # a refusal is audited (engine.db)
        credential = _credential(s, credential_id)
        detail = queries.detail(s, actor(), credential)
        starts = queries.starts(s, actor(), credential)
        may_record_pec = pec.can_record(actor(), credential)
    actions = [
        {**entry, "button": ACTION_LABELS.get(entry.get("kind") or "", entry.get("label")),
         "icon": ACTION_ICONS.get(entry.get("kind") or "", "fa-play")}
        for entry in starts
    ]  # fmt: skip
    return (
        _render(
            "credentials/detail.html",
            credential=credential,
            detail=detail,
            history=_history(credential),
            timeline=_timeline(detail),
            actions=actions,
            may_record_pec=may_record_pec,
            pec_form=pec_form or {"values": {}, "errors": {}},
            today=datetime.now(ZoneInfo(settings().timezone)).date().isoformat(),
        ),
        status,
    )


def _form_date(raw: str) -> date | None:
    """A date typed as 2026-12-03 (the date picker) or 03/12/2026."""
    raw = (raw or "").strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    return None


@bp.post("/credenciais/<int:credential_id>/pec/<any(desabilitar, habilitar):action>")
@login_required
def pec_certificate(credential_id: int, action: str):
    """Record the PEC's "Desabilitar certificado" (or its enabling again) on the credential."""
    values = {"data": request.form.get("data", ""), "motivo": request.form.get("motivo", "")}
    on = _form_date(values["data"])
    with db().read() as s:
        _credential(s, credential_id)  # another organization's: not found, as on its page
    try:
        with db().write() as s:
            if action == "desabilitar":
                pec.disable_certificate(s, actor(), credential_id, on=on, reason=values["motivo"])
            else:
                pec.enable_certificate(s, actor(), credential_id, on=on)
    except Invalid as exc:
        errors = {k: _(v) for k, v in exc.errors.items()}
        if values["data"] and on is None:
            errors["data"] = _("Data inválida (use dd/mm/aaaa).")
        form = {"action": action, "values": values, "errors": errors}
        return _show(credential_id, pec_form=form, status=422)
    if action == "desabilitar":
        flash(
            _("Registrado: certificado desabilitado no PEC; a credencial está suspensa."), "success"
        )
    else:
        flash(_("Registrado: certificado habilitado novamente no PEC."), "success")
    return redirect(url_for("credentials.show", credential_id=credential_id))
