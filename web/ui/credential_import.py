"""Credenciais: importing the credentials an organization already holds, from a CSV
(engine/credentials/imports.py). Admin only; each line is recorded or refused on its own."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import gettext as _

from engine.credentials import imports
from engine.errors import Invalid
from engine.files import service as files
from web.ui.common import actor, db, deny, has_role, login_required, org_id, settings

bp = Blueprint("credential_import", __name__)
SHOWN = 500  # result lines shown on the page (the counts cover all)


def _page(status: int = 200, **values: object):
    return render_template(
        "credentials/import.html", columns=imports.COLUMNS, required=imports.REQUIRED,
        sample=imports.SAMPLE, shown=SHOWN, **values,
    ), status  # fmt: skip


@bp.route("/credenciais/importar", methods=["GET", "POST"], endpoint="form")
@login_required
def form():
    if not has_role("admin"):
        deny("Apenas administradores importam credenciais.", action="credential.import")
    if request.method == "GET":
        return _page()
    upload = request.files.get("arquivo")
    if not upload or not upload.filename:
        return _page(422, error=_("Escolha o arquivo CSV."))
    raw = files.read_limited(upload.stream, settings().max_upload_bytes)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # older spreadsheet exports
    if not text.strip():
        return _page(422, error=_("O arquivo está vazio."))
    try:
        with db().write() as s:
            result = imports.import_csv(s, actor(), org_id(), text)
    except Invalid as exc:
        return _page(422, error=next(iter(exc.errors.values()), exc.message))
    return _page(result=result)
