"""Estabelecimentos: search, detail, create and edit, CSV import with a preview."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select

from engine.audit.models import AuditEvent
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments import service as establishments
from engine.establishments.models import UFS, Establishment, Portfolio
from engine.files import service as files
from engine.runtime.models import RUNNING, ProcessInstance
from web.ui import certificates as certificate_views
from web.ui.common import actor, db, deny, has_role, int_arg, login_required, org_id, settings
from web.ui.labels import event_summary

bp = Blueprint("establishments", __name__, url_prefix="/estabelecimentos")
PAGE = 50
FORM_FIELDS = establishments.FIELDS


def _get(s, cnes: str) -> Establishment:  # type: ignore[no-untyped-def]
    if not cnes.isdigit() or len(cnes) > 7:
        raise NotFound(_("Estabelecimento não encontrado."))
    return establishments.get_by_cnes(s, actor(), org_id(), cnes)


@bp.get("")
@login_required
def index():  # type: ignore[no-untyped-def]
    q = request.args.get("q", "").strip()[:100]
    uf = request.args.get("uf", "").strip().upper()[:2]
    page = int_arg("pagina", 1) or 1
    with db().read() as s:
        rows = establishments.list_establishments(s, actor(), org_id(), q=q, uf=uf, limit=PAGE + 1,
                                                  offset=(page - 1) * PAGE)  # fmt: skip
    return render_template(
        "establishments/list.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page, q=q, uf=uf, ufs=UFS,
        is_admin=has_role("admin"),
    )  # fmt: skip


@bp.get("/<cnes>")
@login_required
def show(cnes: str):  # type: ignore[no-untyped-def]
    with db().read() as s:
        est = _get(s, cnes)
        instances = list(
            s.scalars(
                select(ProcessInstance)
                .where(ProcessInstance.establishment_id == est.id)
                .order_by(ProcessInstance.id.desc())
            )
        )
        certificate, cert_history = certificate_views.current_and_history(s, est.id)
        instance_ids = [str(i.id) for i in instances]
        events = list(
            s.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.org_id == est.org_id,
                    or_(
                        (AuditEvent.entity_type == "establishment")
                        & (AuditEvent.entity_id == str(est.id)),
                        (AuditEvent.entity_type == "instance")
                        & AuditEvent.entity_id.in_(instance_ids),
                    ),
                )
                .order_by(AuditEvent.seq.desc())
                .limit(50)
            )
        )
        portfolios = list(
            s.scalars(select(Portfolio).where(Portfolio.active.is_(True)).order_by(Portfolio.code))
        )
    can_start = has_role("admin") or has_role("gestor", est.id)
    # A portfolio already being credentialed would only be refused: not offered.
    busy = {
        i.portfolio_code
        for i in instances
        if i.status == RUNNING and i.process_key == "credenciamento-rnds"
    }
    startable = [p for p in portfolios if p.code not in busy]
    return render_template(
        "establishments/detail.html", est=est, instances=instances, certificate=certificate,
        cert_history=cert_history, cert_roots=certificate_views.roots_line(),
        events=[(e, event_summary(e)) for e in events],
        portfolios=startable, can_start=can_start,
        is_admin=has_role("admin"),
    )  # fmt: skip


@bp.get("/<cnes>/cadastro.json")
@login_required
def lookup(cnes: str):  # type: ignore[no-untyped-def]
    """Register data for the task form's autofill from a CNES."""
    with db().read() as s:
        est = _get(s, cnes)
        return jsonify(est.register_data())


@bp.route("/novo", methods=["GET", "POST"])
@login_required
def create():  # type: ignore[no-untyped-def]
    values = {k: request.form.get(k, "") for k in FORM_FIELDS} if request.method == "POST" else {}
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            with db().write() as s:
                est = establishments.create(s, actor(), org_id(), values)
                cnes = est.cnes
            flash(_("Estabelecimento cadastrado."), "success")
            return redirect(url_for("establishments.show", cnes=cnes))
        except Invalid as exc:
            errors = {k: _(v) for k, v in exc.errors.items()}
        except Conflict as exc:
            errors = {"cnes": _(exc.message)}
    elif not has_role("admin"):
        deny("Apenas administradores cadastram estabelecimentos.", action="establishment.create")
    return render_template(
        "establishments/form.html", values=values, errors=errors, ufs=UFS, est=None
    ), (422 if errors else 200)


@bp.route("/<cnes>/editar", methods=["GET", "POST"])
@login_required
def edit(cnes: str):  # type: ignore[no-untyped-def]
    with db().read() as s:
        est = _get(s, cnes)
    if not has_role("admin"):
        deny(
            "Apenas administradores alteram estabelecimentos.",
            action="establishment.update",
            entity_type="establishment",
            entity_id=est.id,
        )
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in FORM_FIELDS}
        try:
            with db().write() as s:
                establishments.update(s, actor(), org_id(), cnes, values)
            flash(_("Cadastro atualizado."), "success")
            return redirect(url_for("establishments.show", cnes=cnes))
        except Invalid as exc:
            errors = {k: _(v) for k, v in exc.errors.items()}
    else:
        values = {k: getattr(est, k) or "" for k in FORM_FIELDS}
    return render_template(
        "establishments/form.html", values=values, errors=errors, ufs=UFS, est=est
    ), (422 if errors else 200)


@bp.route("/importar", methods=["GET", "POST"])
@login_required
def import_csv():  # type: ignore[no-untyped-def]
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
