"""The task page's helpers for a credentialing form: "Importar CNES filhos" and "Consultar"
(a child establishment by CNES or CNPJ, the gestor responsável by CNS or CPF).

Each works with JavaScript (the JSON endpoints below, called from web/static/js/children.js)
and without it (``round_trip``: the task form is posted with an ``action`` and comes back
with every typed value kept, the result shown and the list or the gestor filled). Nothing is
written: the person still sends the form.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_babel import gettext as _

from engine.credentials import children, people
from engine.errors import DomainError, Invalid, NotFound
from engine.identifiers import is_digits
from engine.runtime.models import Task
from web.ui.common import actor, db, login_required, same_org

bp = Blueprint("children", __name__, url_prefix="/tarefas")

# Inputs of the task form that are not form fields (parse_submission ignores them).
IMPORT_TEXT = "__filhos_importar"
IMPORT_FILE = "__filhos_arquivo"
CHILD_QUERY = "__filhos_consulta"
GESTOR_QUERY = "__gestor_consulta"
ACTIONS = ("childimport", "childlookup", "childadd", "gestorlookup", "gestoruse")


def tools(schema: Any) -> dict[str, Any]:
    """What the task page offers for this form: the child list's import and lookup (its
    field), the gestor lookup (the field it sits after)."""
    found = children.child_list(schema)
    gestor = people.gestor_fields(schema)
    anchor = gestor.get("cns") or gestor.get("cpf") or ""
    return {"child_list": found, "gestor_anchor": anchor, "gestor_fields": gestor}


def _same_org(task_id: str) -> None:
    with db().read() as s:
        row = s.get(Task, task_id) if len(task_id) <= 36 else None
        if row is None:
            raise NotFound(_("Tarefa não encontrada."))
        same_org(row.org_id)


def _error(exc: DomainError):
    errors = exc.errors if isinstance(exc, Invalid) else {}
    message = next(iter(errors.values()), exc.message)
    return jsonify({"erro": _(message), "campos": {k: _(v) for k, v in errors.items()}}), getattr(
        exc, "status", 400
    )


def read_upload() -> str:
    """The uploaded CSV's text ("" when none): bounded, UTF-8 or Latin-1."""
    upload = request.files.get(IMPORT_FILE) or request.files.get("arquivo")
    if not upload or not upload.filename:
        return ""
    raw = upload.stream.read(children.MAX_BYTES + 1)
    return children.decode(raw)


def import_result(result: children.ImportResult) -> dict[str, Any]:
    added, refused = len(result.added), len(result.refused)
    return {
        "campo": result.field,
        "item": result.item,
        "adicionados": result.added,
        "resumo": _(
            "%(added)s adicionado(s), %(refused)s recusado(s).", added=added, refused=refused
        ),  # fmt: skip
        "linhas": [
            {
                "linha": r.line,
                "valor": r.value,
                "cnes": r.cnes,
                "adicionado": r.added,
                "motivo": _(r.reason) if r.reason else "",
            }
            for r in result.rows
        ],
    }


@bp.post("/<task_id>/filhos/importar")
@login_required
def import_json(task_id: str):
    """JSON: which CNES of ``texto`` (or of the CSV ``arquivo``) join the list ``atuais``."""
    try:
        _same_org(task_id)
        text = read_upload() or request.form.get("texto", "")
        current = request.form.getlist("atuais")
        with db().read() as s:
            result = children.import_children(s, actor(), task_id, text, current)
    except DomainError as exc:
        return _error(exc)
    return jsonify(import_result(result))


@bp.get("/<task_id>/consultar/estabelecimento")
@login_required
def lookup_establishment(task_id: str):
    try:
        _same_org(task_id)
        with db().read() as s:
            found = children.find_establishments(s, actor(), task_id, request.args.get("q", ""))
    except DomainError as exc:
        return _error(exc)
    return jsonify({"estabelecimentos": [f.as_dict() for f in found]})


@bp.get("/<task_id>/consultar/gestor")
@login_required
def lookup_gestor(task_id: str):
    try:
        _same_org(task_id)
        with db().read() as s:
            found = people.find_gestor(s, actor(), task_id, request.args.get("q", ""))
    except DomainError as exc:
        return _error(exc)
    return jsonify({"pessoas": [p.as_dict() for p in found]})


# ------------------------------------------------------------------ without JavaScript


def _cnes_values(rows: Any, item: str) -> list[str]:
    return [
        str(r.get(item) or "").strip()
        for r in rows if isinstance(r, dict) and str(r.get(item) or "").strip()
    ] if isinstance(rows, list) else []  # fmt: skip


def _import_into(
    task_id: str, found: children.ChildList | None, data: dict[str, Any], text: str
) -> children.ImportResult:
    current = _cnes_values(data.get(found.field), found.item) if found else []
    with db().read() as s:
        result = children.import_children(s, actor(), task_id, text, current)
    # Empty rows (left by "Adicionar linha") go: the imported CNES take their place.
    rows = [
        r
        for r in data.get(result.field) or []
        if isinstance(r, dict) and str(r.get(result.item) or "").strip()
    ]
    data[result.field] = rows + [{result.item: cnes} for cnes in result.added]
    return result


def _fill_gestor(schema: Any, data: dict[str, Any], person: people.Person) -> None:
    for what, name in people.gestor_fields(schema).items():
        value = getattr(person, what, "")
        if value:
            data[name] = value


def round_trip(
    task_id: str, schema: Any, data: dict[str, Any], action: str
) -> tuple[str, dict[str, Any]]:
    """A no-JS action of the helpers: (notice, what the page shows: the import's rows, the
    lookup's results, a lookup's error). ``data`` (the posted form, every typed value) is
    changed in place: imported rows added, the gestor filled."""
    verb, _sep, arg = action.partition(":")
    shown: dict[str, Any] = {}
    found = children.child_list(schema)
    error_key = "gestor_error" if verb.startswith("gestor") else "child_error"
    try:
        if verb in ("childimport", "childadd"):
            if verb == "childadd":
                text = arg[:20]
            else:
                text = read_upload() or request.form.get(IMPORT_TEXT, "")
            shown["children_import"] = import_result(_import_into(task_id, found, data, text))
            return shown["children_import"]["resumo"], shown
        if verb == "childlookup":
            query = request.form.get(CHILD_QUERY, "")
            with db().read() as s:
                establishments = children.find_establishments(s, actor(), task_id, query)
            shown["child_lookup"] = {"q": query, "found": [e.as_dict() for e in establishments]}
            if not establishments:
                shown[error_key] = _("Nenhum estabelecimento da organização com esse CNES ou CNPJ.")
            return "", shown
        if verb in ("gestorlookup", "gestoruse"):
            query = request.form.get(GESTOR_QUERY, "")
            with db().read() as s:
                found_people = people.find_gestor(s, actor(), task_id, query)
            chosen = None
            if verb == "gestoruse" and is_digits(arg) and int(arg) < len(found_people):
                chosen = found_people[int(arg)]
            elif len(found_people) == 1:
                chosen = found_people[0]
            if chosen is not None:
                _fill_gestor(schema, data, chosen)
                return _("Dados do gestor preenchidos."), shown
            shown["gestor_lookup"] = {"q": query, "found": [p.as_dict() for p in found_people]}
            if not found_people:
                shown[error_key] = _("Nenhuma pessoa conhecida com esse CPF ou CNS.")
            return "", shown
    except Invalid as exc:
        shown[error_key] = _(next(iter(exc.errors.values()), exc.message))
    return "", shown
