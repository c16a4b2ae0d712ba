"""Estabelecimentos: search, detail, create and edit, CSV import with a preview."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from engine.audit import queries as audit_queries
from engine.credentials.models import LIVE
from engine.dashboard import credentials as credential_queries
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments import queries as establishment_queries
from engine.establishments import service as establishments
from engine.establishments.models import UFS, Establishment
from engine.files import service as files
from engine.runtime import queries as instance_queries
from engine.runtime.models import RUNNING
from web.access_log import logged
from web.ui import certificates as certificate_views
from web.ui.common import actor, db, deny, has_role, int_arg, login_required, org_id, settings
from web.ui.labels import event_summary

bp = Blueprint("establishments", __name__, url_prefix="/estabelecimentos")
PAGE = 50
FORM_FIELDS = establishments.FIELDS


def _get(s, cnes: str) -> Establishment:
    if not cnes.isdigit() or len(cnes) > 7:
        raise NotFound(_("Estabelecimento não encontrado."))
    return establishments.get_by_cnes(s, actor(), org_id(), cnes)


def _render(template: str, **values: object) -> str:
    """A page of the establishments, told whether the user administers the organization."""
    return render_template(template, is_admin=has_role("admin"), **values)


@bp.get("")
@login_required
def index():
    q = request.args.get("q", "").strip()[:100]
    uf = request.args.get("uf", "").strip().upper()[:2]
    page = int_arg("pagina", 1) or 1
    with db().read() as s:
        rows = establishments.list_establishments(s, actor(), org_id(), q=q, uf=uf, limit=PAGE + 1,
                                                  offset=(page - 1) * PAGE)  # fmt: skip
    return _render("establishments/list.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page,
                   q=q, uf=uf, ufs=UFS)  # fmt: skip


@bp.get("/<cnes>")
@login_required
def show(cnes: str):
    with db().read() as s:
        est = _get(s, cnes)
        instances = instance_queries.establishment_instances(s, actor(), org_id(), est)
        certificate, cert_history = certificate_views.current_and_history(s, est.id)
        events = audit_queries.establishment_events(
            s, actor(), org_id(), est, [i.id for i in instances]
        )
        portfolios = establishment_queries.active_portfolios(s)
        credentials = credential_queries.for_establishment(s, est)
    can_start = has_role("admin") or has_role("gestor", est.id)
    # A portfolio already being credentialed, or holding a live credential, would only be
    # refused: not offered.
    busy = {
        i.portfolio_code
        for i in instances
        if i.status == RUNNING and i.process_key == "credenciamento-rnds"
    } | {c.portfolio_code for c in credentials.own if c.status in LIVE}
    startable = [p for p in portfolios if p.code not in busy]
    logged("establishment.detail", org_id=org_id(), entity_type="establishment", entity_id=cnes)
    return _render("establishments/detail.html", est=est, instances=instances,
                   certificate=certificate, cert_history=cert_history,
                   cert_roots=certificate_views.roots_line(),
                   events=[(e, event_summary(e)) for e in events],
                   portfolios=startable, can_start=can_start, credentials=credentials)  # fmt: skip


@bp.get("/<cnes>/cadastro.json")
@login_required
def lookup(cnes: str):
    """Register data for the task form's autofill from a CNES."""
    with db().read() as s:
        est = _get(s, cnes)
        return jsonify(est.register_data())


def _form_page(values: dict, errors: dict[str, str], *, est: Establishment | None):
    return render_template(
        "establishments/form.html", values=values, errors=errors, ufs=UFS, est=est
    ), (422 if errors else 200)


def _save_form(values: dict, save: Callable[[Session], str], done: str, *,
               est: Establishment | None):  # fmt: skip
    """Save the create/edit form with ``save`` (it returns the CNES): on to the establishment,
    or the form again with the errors."""
    try:
        with db().write() as s:
            cnes = save(s)
    except Invalid as exc:
        return _form_page(values, {k: _(v) for k, v in exc.errors.items()}, est=est)
    except Conflict as exc:
        return _form_page(values, {"cnes": _(exc.message)}, est=est)
    flash(done, "success")
    return redirect(url_for("establishments.show", cnes=cnes))


@bp.route("/novo", methods=["GET", "POST"])
@login_required
def create():
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in FORM_FIELDS}

        def save(s) -> str:
            return establishments.create(s, actor(), org_id(), values).cnes

        return _save_form(values, save, _("Estabelecimento cadastrado."), est=None)
    if not has_role("admin"):
        deny("Apenas administradores cadastram estabelecimentos.", action="establishment.create")
    return _form_page({}, {}, est=None)


@bp.route("/<cnes>/editar", methods=["GET", "POST"])
@login_required
def edit(cnes: str):
    with db().read() as s:
        est = _get(s, cnes)
    if not has_role("admin"):
        deny(
            "Apenas administradores alteram estabelecimentos.",
            action="establishment.update",
            entity_type="establishment",
            entity_id=est.id,
        )
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in FORM_FIELDS}

        def save(s) -> str:
            return establishments.update(s, actor(), org_id(), cnes, values).cnes

        return _save_form(values, save, _("Cadastro atualizado."), est=est)
    return _form_page({k: getattr(est, k) or "" for k in FORM_FIELDS}, {}, est=est)


@bp.route("/importar", methods=["GET", "POST"])
@login_required
def import_csv():
    if not has_role("admin"):
        deny("Apenas administradores importam estabelecimentos.", action="establishment.import")
    if request.method == "GET":
        return render_template("establishments/import.html", preview=None)
    limit = settings().max_upload_bytes
    upload = request.files.get("arquivo")
    # The CSV travels back with the confirmation (it is checked again then), so nothing is
    # kept between preview and import.
    text = request.form.get("csv", "")
    if upload and upload.filename:
        raw = files.read_limited(upload.stream, limit)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    if not text.strip():
        return render_template(
            "establishments/import.html", preview=None, error=_("Escolha o arquivo CSV.")
        ), 422
    if request.form.get("confirm") == "1":
        skip = request.form.get("skip_invalid") == "1"
        try:
            with db().write() as s:
                report = establishments.import_csv(s, actor(), org_id(), text, skip_invalid=skip)
        except establishments.ImportFailed as exc:
            valid, _report = establishments.parse_csv(text)
            return render_template("establishments/import.html", preview=valid, report=exc.report,
                                   csv=text), 422  # fmt: skip
        flash(_("Importação concluída: %(c)s criados, %(u)s atualizados, %(k)s ignorados.",
                c=report.created, u=report.updated, k=report.skipped), "success")  # fmt: skip
        return redirect(url_for("establishments.index"))
    valid, report = establishments.parse_csv(text)
    return render_template("establishments/import.html", preview=valid, report=report, csv=text)
