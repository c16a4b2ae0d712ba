"""Task forms as HTML: a JSON Schema plus UI hints become fields for the templates, and a
posted HTML form becomes the data the engine validates.

Field names are the dotted paths the engine's validation uses for its errors
(``filhos.0.cnes``), so each error lands next to its field. Repeating rows are numbered
inputs (``servicos.0.operacao``); a file field posts the stored file's id in a hidden input
and a new upload in ``<name>__upload``.

(Over 600 lines on purpose: the two directions — schema to fields, posted form to data — share
the field walk and its naming rules, and splitting them would put those rules in two places.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from engine import identifiers
from engine.forms import conditions
from engine.forms.schema import IDENTIFIER_MASKS, FieldSpec, form_view, ui_for, widget_for
from engine.identifiers import is_digits

UPLOAD_SUFFIX = "__upload"
INDEX_PLACEHOLDER = "__INDEX__"
MASKS = IDENTIFIER_MASKS
_INT_RE = re.compile(r"^[+-]?[0-9]{1,18}$")
_NUM_RE = re.compile(r"^[+-]?[0-9]{1,18}([.,][0-9]{1,12})?$")
_BR_DATE_RE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")
_ISO_DATE_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
YES, NO = "true", "false"


@dataclass
class FileMeta:
    id: str
    filename: str
    size: int
    sha256: str
    content_type: str


@dataclass
class Field:
    name: str
    key: str
    title: str
    widget: str
    description: str = ""
    help: str = ""
    placeholder: str = ""
    required: bool = False
    readonly: bool = False
    value: Any = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    mask: str = ""
    maxlength: int | None = None
    inputmode: str = ""
    secret: bool = False
    accept: str = ""
    rows: list[list[Field]] = field(default_factory=list)
    row_errors: list[str] = field(default_factory=list)
    template: list[Field] = field(default_factory=list)
    files: list[FileMeta] = field(default_factory=list)
    item_title: str = ""
    add_all: bool = False
    min_items: int = 0
    label_hidden: bool = False  # the group's title already says it
    # Conditional fields (engine.forms.conditions): when the page's script shows the field
    # (JSON; "server" when only a round trip can tell), and whether it is hidden now.
    show_when: str = ""
    hidden: bool = False
    controls: bool = False  # a condition reads this field: offer "Atualizar formulário"

    @property
    def id(self) -> str:
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)

    @property
    def error_id(self) -> str:
        return self.id + "-erro"

    @property
    def help_id(self) -> str:
        return self.id + "-ajuda"


@dataclass
class Group:
    title: str
    fields: list[Field]


@dataclass
class RenderedForm:
    title: str
    description: str
    groups: list[Group]
    form_errors: list[str]
    error_list: list[tuple[str, str, str]]  # (field id, label, message) for the summary
    has_files: bool
    readonly: bool
    review: bool = False  # "Resumo da solicitação" before sending (x-review)


# ------------------------------------------------------------------ schema helpers
# What a field is (its widget, options, flags) comes from the engine's schema view; this
# module only turns it into what the templates draw and reads the post back.


def _get_path(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        else:
            return None
    return node


def _ui_for(ui: Mapping[str, Any], key: str) -> dict[str, Any]:
    return ui_for(ui, key)


def _widget(schema: Mapping[str, Any], ui: Mapping[str, Any]) -> str:
    """The widget of one plain property schema (see ``engine.forms.schema.widget_for``)."""
    return widget_for(schema, ui)


def iso_to_br(value: Any) -> Any:
    if isinstance(value, str):
        m = _ISO_DATE_RE.match(value)
        if m:
            return f"{m.group(3)}/{m.group(2)}/{m.group(1)}"
    return value


def br_to_iso(value: str) -> str:
    m = _BR_DATE_RE.match(value.strip())
    if m:
        return f"{m.group(3)}-{int(m.group(2)):02d}-{int(m.group(1)):02d}"
    return value.strip()


def _display(spec: FieldSpec, value: Any) -> Any:
    fmt = spec.format
    if value is None:
        return ""
    if fmt == "date":
        return iso_to_br(value)
    if fmt in MASKS and isinstance(value, str) and value:
        try:
            return identifiers.format_identifier(fmt, value)
        except (ValueError, KeyError):
            return value
    if isinstance(value, bool):
        return YES if value else NO
    return value


# ------------------------------------------------------------------ building fields


@dataclass
class _Ctx:
    errors: Mapping[str, str]
    context: Mapping[str, Any]
    files: Mapping[str, FileMeta]
    readonly: bool
    used: set[str] = field(default_factory=set)


_MASK_PLACEHOLDERS = {
    "cpf": "000.000.000-00",
    "cnpj": "00.000.000/0000-00",
    "cns": "000 0000 0000 0000",
    "cnes": "0000000",
}


def _build(name: str, spec: FieldSpec, value: Any, ctx: _Ctx, *, parent_readonly: bool = False,
           options_hint: list[str] | None = None) -> Field:  # fmt: skip
    widget = spec.widget
    readonly = spec.readonly or parent_readonly or ctx.readonly
    f = Field(
        name=name,
        key=spec.name,
        title=spec.title,
        widget=widget,
        description=spec.description,
        help=spec.help,
        placeholder=spec.placeholder,
        required=spec.required,
        readonly=readonly,
        secret=spec.secret,
        error=ctx.errors.get(name, ""),
        maxlength=spec.max_length,
    )
    ctx.used.add(name)
    if widget == "masked":
        f.mask = spec.mask
        f.inputmode = "numeric"
        f.placeholder = f.placeholder or _MASK_PLACEHOLDERS.get(f.mask, "")
    elif widget == "date":
        f.mask, f.inputmode, f.placeholder = "date", "numeric", "dd/mm/aaaa"
    elif widget == "time":
        f.mask, f.inputmode, f.placeholder = "time", "numeric", f.placeholder or "hh:mm"
    elif widget == "number":
        f.inputmode = "numeric" if spec.type == "integer" else "decimal"
    if widget in ("select", "radio"):
        f.options = [(str(v), label) for v, label in spec.options]
        if not f.options and options_hint is not None:
            f.options = [(o, o) for o in options_hint]
    if widget == "yesno":
        f.options = [(YES, "Sim"), (NO, "Não")]
    if widget == "file":
        f.accept = _accept_attr(spec.accept)
        f.value = value if isinstance(value, str) else ""
        if f.value and f.value in ctx.files:
            f.files = [ctx.files[f.value]]
        return f
    if widget == "files":
        f.accept = _accept_attr(spec.item.accept if spec.item else ())
        ids = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
        f.files = [ctx.files.get(i) or FileMeta(i, i, 0, "", "") for i in ids]
        f.value = ids
        for index in range(len(ids)):
            message = ctx.errors.get(f"{name}.{index}")
            ctx.used.add(f"{name}.{index}")
            if message:
                f.row_errors.append(f"{f.files[index].filename}: {message}")
        f.min_items = spec.min_items
        return f
    if widget == "rows":
        _build_rows(f, spec, value, ctx)
        return f
    if f.secret:
        f.value = ""
        return f
    f.value = _display(spec, value)
    return f


def _accept_attr(accept: Iterable[str]) -> str:
    out: list[str] = []
    for a in accept:
        if a == "certificate":
            out += [".cer", ".crt", ".pem", ".der", ".pfx", ".p12"]
        elif a == "certificate_with_key":
            out += [".pfx", ".p12"]
        elif a == "application/pdf":
            out += [".pdf", "application/pdf"]
        elif a == "image/png":
            out += [".png", "image/png"]
        else:
            out.append(a)
    return ",".join(out)


def _option_values(ctx: _Ctx, source: str, key: str) -> list[str]:
    items = _get_path(ctx.context, source)
    if not isinstance(items, list):
        return []
    return list(
        dict.fromkeys(str(i.get(key)) for i in items if isinstance(i, Mapping) and i.get(key))
    )


def options_source(spec: FieldSpec, context: Mapping[str, Any]) -> str | None:
    """Where a repeating field's choices come from: ``x-options-from``, or else a list in the
    context whose items carry every select-without-enum field of a row (e.g. operations)."""
    if spec.options_from:
        return spec.options_from
    item_fields = spec.item.fields if spec.item else ()
    wanted = [f.name for f in item_fields if f.widget == "select" and not f.has_enum]
    if not wanted:
        return None
    for top, node in context.items():
        for key, value in node.items() if isinstance(node, Mapping) else ():
            if (
                isinstance(value, list)
                and value
                and all(isinstance(v, Mapping) and all(w in v for w in wanted) for v in value)
            ):
                return f"{top}.{key}"
    return None


def _build_rows(f: Field, spec: FieldSpec, value: Any, ctx: _Ctx) -> None:
    item = spec.item
    assert item is not None  # a "rows" widget is an array of objects
    source = options_source(spec, ctx.context)
    f.add_all = bool(source) and not f.readonly
    f.item_title = spec.item_title
    f.min_items = spec.min_items
    rows = value if isinstance(value, list) else []

    def row_fields(prefix: str, row: Any) -> list[Field]:
        out = []
        for sub in item.displayed():
            hint = _option_values(ctx, source, sub.name) if source else None
            sub_value = row.get(sub.name) if isinstance(row, Mapping) else None
            out.append(_build(f"{prefix}.{sub.name}", sub, sub_value, ctx,
                              parent_readonly=f.readonly, options_hint=hint))  # fmt: skip
        return out

    for index, row in enumerate(rows):
        f.rows.append(row_fields(f"{f.name}.{index}", row))
        row_error = ctx.errors.get(f"{f.name}.{index}")
        ctx.used.add(f"{f.name}.{index}")
        f.row_errors.append(row_error or "")
    saved_errors, ctx.errors = ctx.errors, {}
    f.template = row_fields(f"{f.name}.{INDEX_PLACEHOLDER}", {})
    ctx.errors = saved_errors


def build_form(
    schema: Mapping[str, Any],
    ui: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    errors: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
    files: Mapping[str, FileMeta] | None = None,
    readonly: bool = False,
) -> RenderedForm:
    ctx = _Ctx(
        errors=dict(errors or {}), context=context or {}, files=files or {}, readonly=readonly
    )
    view = form_view(schema, ui)
    built: dict[str, Field] = {}
    for spec in view.displayed():
        if readonly and spec.secret:
            continue
        built[spec.name] = _build(spec.name, spec, data.get(spec.name), ctx)
    _mark_conditions(schema, data, built, readonly)
    groups: list[Group] = []
    placed: set[str] = set()
    for title, names in view.groups:
        fields = [built[k] for k in names if k in built and k not in placed]
        placed.update(f.key for f in fields)
        if fields:
            if len(fields) == 1 and fields[0].title == title:
                fields[0].label_hidden = True
            groups.append(Group(title, fields))
    rest = [f for k, f in built.items() if k not in placed]
    if rest:
        groups.append(Group("" if not groups else "Outros dados", rest))
    labels = _labels(built)
    error_list = []
    for path, message in (errors or {}).items():
        if path == "":
            continue
        target = _closest(path, labels)
        error_list.append((target[0], target[1], message))
    form_errors = [m for p, m in (errors or {}).items() if p == ""]
    return RenderedForm(
        title=view.title,
        description=view.description,
        groups=groups,
        form_errors=form_errors,
        error_list=error_list,
        has_files=any(f.widget in ("file", "files") for f in built.values()),
        readonly=readonly,
        review=conditions.wants_review(schema, ui),
    )


def _mark_conditions(
    schema: Mapping[str, Any], data: Mapping[str, Any], built: dict[str, Field], readonly: bool
) -> None:
    """Which fields their conditions show (required then) and hide for ``data``."""
    shown = conditions.shown_fields(schema)
    if not shown:
        return
    hidden = conditions.hidden_fields(schema, data)
    rules = conditions.show_rules(schema)
    for name, f in built.items():
        if name in shown:
            f.show_when = rules.get(name) or "server"
            f.hidden = name in hidden
            f.required = True
    if not readonly:
        for name in conditions.controlling_fields(schema):
            if name in built:
                built[name].controls = True


def _labels(built: Mapping[str, Field]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for f in built.values():
        out[f.name] = (f.id, f.title)
        for index, row in enumerate(f.rows):
            for sub in row:
                out[sub.name] = (sub.id, f"{f.title} — {f.item_title} {index + 1}: {sub.title}")
            out[f"{f.name}.{index}"] = (
                row[0].id if row else f.id,
                f"{f.title} — {f.item_title} {index + 1}",
            )
    return out


def _closest(path: str, labels: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    parts = path.split(".")
    while parts:
        key = ".".join(parts)
        if key in labels:
            return labels[key]
        parts.pop()
    return ("", path)


# ------------------------------------------------------------------ reading a post


def _coerce(spec: FieldSpec, raw: str | None) -> Any:
    kind = spec.type
    if kind == "boolean":
        if spec.widget == "checkbox":
            return raw in ("on", "true", "1", "sim")
        if raw == YES:
            return True
        if raw == NO:
            return False
        return None
    if raw is None:
        return None
    raw = raw.strip()
    if kind == "integer" and _INT_RE.match(raw):
        return int(raw)
    if kind == "number" and _NUM_RE.match(raw):
        return float(raw.replace(",", "."))
    if spec.format == "date":
        return br_to_iso(raw)
    return raw


def _indices(form: MultiDict, prefix: str) -> list[int]:
    found: set[int] = set()
    plen = len(prefix)
    for key in form:
        if key.startswith(prefix):
            head = key[plen:].split(".", 1)[0]
            if is_digits(head) and len(head) < 5:
                found.add(int(head))
    return sorted(found)


def parse_submission(
    schema: Mapping[str, Any], ui: Mapping[str, Any], form: MultiDict
) -> dict[str, Any]:
    """The posted form as form data: nested rows, typed values, readOnly fields left out."""
    return _parse_object(form_view(schema, ui).fields, form, "")


def _parse_object(fields: Iterable[FieldSpec], form: MultiDict, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in fields:
        if spec.readonly:
            continue
        key = spec.name
        name = prefix + key
        widget = spec.widget
        if widget == "rows":
            item_fields = spec.item.fields if spec.item else ()
            rows = [
                _parse_object(item_fields, form, f"{name}.{index}.")
                for index in _indices(form, name + ".")
            ]
            if rows or name + ".present" in form:
                out[key] = rows
            continue
        if widget == "files":
            ids = [form.get(f"{name}.{i}", "").strip() for i in _indices(form, name + ".")]
            ids = [i for i in ids if i]
            if ids or name + ".present" in form:
                out[key] = ids
            continue
        if widget == "list":
            values = [form.get(f"{name}.{i}", "").strip() for i in _indices(form, name + ".")]
            out[key] = [v for v in values if v]
            continue
        present = name in form
        value = _coerce(spec, form.get(name))
        if widget == "checkbox" and not present and name + ".present" not in form:
            continue
        if value is not None:
            out[key] = value
    return out


def file_fields(schema: Mapping[str, Any]) -> dict[str, bool]:
    """Top-level file properties: name -> True when it holds a list of files."""
    return form_view(schema).uploads


def file_ids(data: Any) -> set[str]:
    """Every string in the data that could be a stored file's id (for showing names)."""
    found: set[str] = set()
    if isinstance(data, str) and len(data) == 36 and data.count("-") == 4:
        found.add(data)
    elif isinstance(data, Mapping):
        for v in data.values():
            found |= file_ids(v)
    elif isinstance(data, list):
        for v in data:
            found |= file_ids(v)
    return found


# ------------------------------------------------------------------ row actions (no-JS)


def apply_row_action(schema: Mapping[str, Any], data: dict[str, Any], action: str,
                     context: Mapping[str, Any], ui: Mapping[str, Any] | None = None) -> bool:  # fmt: skip
    """Add, remove or add-all rows for the no-JS buttons; True when the action was one of them."""
    verb, _, target = action.partition(":")
    if verb not in ("add", "remove", "addall", "removefile") or not target:
        return False
    parts = target.split(".")
    key = parts[0]
    spec = form_view(schema, ui).field(key)
    if spec is None or spec.type != "array":
        return False
    rows = data.get(key) if isinstance(data.get(key), list) else []
    item_fields = spec.item.fields if spec.item else ()
    if verb == "add":
        rows.append({} if spec.item is not None and spec.item.type == "object" else "")
    elif verb in ("remove", "removefile") and len(parts) == 2 and is_digits(parts[1]):
        index = int(parts[1])
        if 0 <= index < len(rows):
            rows.pop(index)
    elif verb == "addall":
        source = options_source(spec, context)
        options = _get_path(context, source) if source else None
        item_props = [f.name for f in item_fields]
        if isinstance(options, list):
            have = {tuple(sorted(r.items())) for r in rows if isinstance(r, Mapping)}
            for option in options:
                if isinstance(option, Mapping):
                    row = {k: option.get(k) for k in item_props if k in option}
                    if tuple(sorted(row.items())) not in have:
                        rows.append(row)
    data[key] = rows
    return True


def register_autofill(
    schema: Mapping[str, Any], data: dict[str, Any], register: Mapping[str, Any]
) -> dict[str, Any]:
    """Fill the form's fields that declare a register field (``x-register``) from an
    establishment's register data."""
    filled = dict(data)
    for name, key in form_view(schema).register_fields.items():
        value = register.get(key)
        if value:
            filled[name] = value
    return filled


# ------------------------------------------------------------------ review step (x-review)


@dataclass
class SummaryItem:
    """One answer as the review page reads it: a text, files by name, or a table."""

    title: str
    text: str = ""
    files: list[FileMeta] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    is_table: bool = False
    is_files: bool = False
    choice: bool = False  # an option's label (translated), not text the user typed


MASKED = "••••••••"  # a secret was given; never shown back
EMPTY = "—"


def _answer_text(f: Field, given: Any) -> str:
    if f.secret:
        return MASKED if given not in (None, "") else EMPTY
    if f.widget == "checkbox":
        return "Sim" if f.value == YES else "Não"
    if f.widget in ("yesno", "radio", "select"):
        return dict(f.options).get(str(f.value), str(f.value)) if f.value != "" else EMPTY
    return str(f.value) if f.value not in ("", None) else EMPTY


def _summary_item(f: Field, given: Any) -> SummaryItem:
    item = SummaryItem(title=f.title)
    if f.widget in ("file", "files"):
        item.is_files, item.files = True, list(f.files)
        if not f.files and isinstance(f.value, str) and f.value:
            item.files = [FileMeta(f.value, f.value, 0, "", "")]
    elif f.widget == "rows":
        item.is_table = True
        item.columns = [sub.title for sub in f.template]
        rows = given if isinstance(given, list) else []
        for index, row in enumerate(f.rows):
            source = rows[index] if index < len(rows) and isinstance(rows[index], Mapping) else {}
            item.rows.append([_answer_text(sub, source.get(sub.key)) for sub in row])
    else:
        item.text = _answer_text(f, given)
        item.choice = f.widget in ("checkbox", "yesno", "radio", "select")
    return item


def build_summary(
    schema: Mapping[str, Any],
    ui: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    context: Mapping[str, Any] | None = None,
    files: Mapping[str, FileMeta] | None = None,
) -> list[tuple[str, list[SummaryItem]]]:
    """What will be sent, group by group: labels and values as the user reads them, lists
    as tables, files by name, secrets masked; fields their condition hides are left out."""
    rendered = build_form(schema, ui, data, context=context, files=files)
    out = []
    for group in rendered.groups:
        items = [_summary_item(f, data.get(f.key)) for f in group.fields if not f.hidden]
        if items:
            out.append((group.title, items))
    return out


def to_post(schema: Mapping[str, Any], ui: Mapping[str, Any], data: Mapping[str, Any]) -> list[tuple[str, str]]:  # fmt: skip
    """The data as the task form posts it (hidden inputs of the review page, so "Confirmar"
    sends what was reviewed and "Anterior" gets the form back). Secrets are not carried:
    they served when the form was sent (a .pfx is opened at upload) and are never kept."""
    out: list[tuple[str, str]] = []
    _post_object(form_view(schema, ui).fields, data, "", out)
    return out


def _post_object(
    fields: Iterable[FieldSpec], data: Any, prefix: str, out: list[tuple[str, str]]
) -> None:
    for spec in fields:
        if spec.readonly or spec.secret:
            continue
        name = prefix + spec.name
        value = data.get(spec.name) if isinstance(data, Mapping) else None
        widget = spec.widget
        if widget in ("rows", "files"):
            out.append((name + ".present", "1"))
            for index, each in enumerate(value if isinstance(value, list) else []):
                if widget == "rows" and spec.item is not None:
                    _post_object(spec.item.fields, each, f"{name}.{index}.", out)
                else:
                    out.append((f"{name}.{index}", str(each)))
        elif widget == "checkbox":
            out.append((name + ".present", "1"))
            if value is True:
                out.append((name, YES))
        elif value is not None:
            out.append((name, str(_display(spec, value))))
