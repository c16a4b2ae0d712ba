"""Task forms as HTML: a JSON Schema plus UI hints become fields for the templates, and a
posted HTML form becomes the data the engine validates.

Field names are the dotted paths the engine's validation uses for its errors
(``filhos.0.cnes``), so each error lands next to its field. Repeating rows are numbered
inputs (``servicos.0.operacao``); a file field posts the stored file's id in a hidden input
and a new upload in ``<name>__upload``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from engine import identifiers

UPLOAD_SUFFIX = "__upload"
INDEX_PLACEHOLDER = "__INDEX__"
MASKS = {"cpf", "cnpj", "cns", "cnes"}
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


# ------------------------------------------------------------------ schema helpers


def _conditional_props(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Property refinements declared in allOf/if-then branches (e.g. minItems when yes)."""
    extra: dict[str, dict[str, Any]] = {}
    for part in schema.get("allOf", []) or []:
        for branch in (part.get("then") or {}, part.get("else") or {}):
            for name, sub in (branch.get("properties") or {}).items():
                # Only plain keywords (minItems…); nested schemas stay the property's own.
                plain = {k: v for k, v in sub.items() if not isinstance(v, dict | list)}
                extra.setdefault(name, {}).update(plain)
    return extra


def _get_path(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        else:
            return None
    return node


def _ui_for(ui: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = ui.get(key) if isinstance(ui, Mapping) else None
    return value if isinstance(value, dict) else {}


def _order(props: Mapping[str, Any], ui: Mapping[str, Any]) -> list[str]:
    order = [k for k in ui.get("ui:order", []) if k in props] if isinstance(ui, Mapping) else []
    return order + [k for k in props if k not in order]


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


def _display(schema: Mapping[str, Any], value: Any) -> Any:
    fmt = schema.get("format")
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


def _widget(schema: Mapping[str, Any], ui: Mapping[str, Any]) -> str:
    hint = ui.get("ui:widget", "")
    kind = schema.get("type")
    fmt = schema.get("format")
    if kind == "array":
        items = schema.get("items") or {}
        if items.get("format") == "file":
            return "files"
        return "rows" if items.get("type") == "object" else "list"
    if fmt == "file" or hint == "file":
        return "file"
    if kind == "boolean":
        return "checkbox" if hint == "checkbox" else "yesno"
    if "enum" in schema:
        return "radio" if hint == "radio" else "select"
    if hint in ("textarea", "password", "select", "radio"):
        return hint
    if fmt in MASKS or hint == "masked":
        return "masked"
    if fmt == "date" or hint == "date":
        return "date"
    if fmt == "time" or hint == "time":
        return "time"
    if kind in ("integer", "number"):
        return "number"
    if fmt == "email":
        return "email"
    return "text"


def _options(schema: Mapping[str, Any], ui: Mapping[str, Any]) -> list[tuple[str, str]]:
    values = schema.get("enum") or []
    names = ui.get("ui:enumNames") or []
    return [(str(v), str(names[i]) if i < len(names) else str(v)) for i, v in enumerate(values)]


def _build(name: str, key: str, schema: Mapping[str, Any], ui: Mapping[str, Any], value: Any,
           required: bool, ctx: _Ctx, *, parent_readonly: bool = False, options_hint: list[str] | None = None) -> Field:  # fmt: skip
    widget = _widget(schema, ui)
    readonly = bool(schema.get("readOnly")) or parent_readonly or ctx.readonly
    f = Field(
        name=name,
        key=key,
        title=str(schema.get("title") or key),
        widget=widget,
        description=str(schema.get("description") or ""),
        help=str(ui.get("ui:help") or ""),
        placeholder=str(ui.get("ui:placeholder") or ""),
        required=required,
        readonly=readonly,
        secret=bool(schema.get("x-secret")),
        error=ctx.errors.get(name, ""),
        maxlength=schema.get("maxLength") if isinstance(schema.get("maxLength"), int) else None,
    )
    ctx.used.add(name)
    fmt = schema.get("format")
    if widget == "masked":
        f.mask = str(ui.get("ui:mask") or fmt or "")
        f.inputmode = "numeric"
        f.placeholder = f.placeholder or {"cpf": "000.000.000-00", "cnpj": "00.000.000/0000-00",
                                          "cns": "000 0000 0000 0000", "cnes": "0000000"}.get(f.mask, "")  # fmt: skip
    elif widget == "date":
        f.mask, f.inputmode, f.placeholder = "date", "numeric", "dd/mm/aaaa"
    elif widget == "time":
        f.mask, f.inputmode, f.placeholder = "time", "numeric", f.placeholder or "hh:mm"
    elif widget == "number":
        f.inputmode = "numeric" if schema.get("type") == "integer" else "decimal"
    if widget in ("select", "radio"):
        f.options = _options(schema, ui)
        if not f.options and options_hint is not None:
            f.options = [(o, o) for o in options_hint]
    if widget == "yesno":
        f.options = [(YES, "Sim"), (NO, "Não")]
    if widget in ("file", "files"):
        accept = (
            (schema.get("items") or {}).get("x-accept")
            if widget == "files"
            else schema.get("x-accept")
        )
        f.accept = _accept_attr(accept or [])
    if widget == "file":
        f.value = value if isinstance(value, str) else ""
        if f.value and f.value in ctx.files:
            f.files = [ctx.files[f.value]]
        return f
    if widget == "files":
        ids = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
        f.files = [ctx.files.get(i) or FileMeta(i, i, 0, "", "") for i in ids]
        f.value = ids
        for index in range(len(ids)):
            message = ctx.errors.get(f"{name}.{index}")
            ctx.used.add(f"{name}.{index}")
            if message:
                f.row_errors.append(f"{f.files[index].filename}: {message}")
        f.min_items = int(schema.get("minItems") or 0)
        return f
    if widget == "rows":
        _build_rows(f, schema, ui, value, ctx)
        return f
    if widget == "secret" or f.secret:
        f.value = ""
        return f
    f.value = _display(schema, value)
    return f


def _accept_attr(accept: list[str]) -> str:
    out: list[str] = []
    for a in accept:
        if a == "certificate":
            out += [".cer", ".crt", ".pem", ".der", ".pfx", ".p12"]
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


def options_source(
    schema: Mapping[str, Any], ui: Mapping[str, Any], context: Mapping[str, Any]
) -> str | None:
    """Where a repeating field's choices come from: ``x-options-from``, or else a list in the
    context whose items carry every select-without-enum field of a row (e.g. operations)."""
    if schema.get("x-options-from"):
        return str(schema["x-options-from"])
    items = schema.get("items") or {}
    props = items.get("properties") or {}
    item_ui = _ui_for(ui, "items")
    wanted = [
        k
        for k, sub in props.items()
        if _ui_for(item_ui, k).get("ui:widget") == "select" and "enum" not in sub
    ]
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


def _build_rows(
    f: Field, schema: Mapping[str, Any], ui: Mapping[str, Any], value: Any, ctx: _Ctx
) -> None:
    items = schema.get("items") or {}
    item_ui = _ui_for(ui, "items")
    props = items.get("properties") or {}
    req = set(items.get("required") or [])
    source = options_source(schema, ui, ctx.context)
    f.add_all = bool(source) and not f.readonly
    f.item_title = str(items.get("title") or "Item")
    f.min_items = int(schema.get("minItems") or 0)
    rows = value if isinstance(value, list) else []

    def row_fields(prefix: str, row: Any) -> list[Field]:
        out = []
        for key in _order(props, item_ui):
            hint = _option_values(ctx, source, key) if source else None
            sub_value = row.get(key) if isinstance(row, Mapping) else None
            out.append(_build(f"{prefix}.{key}", key, props[key], _ui_for(item_ui, key), sub_value, key in req,
                              ctx, parent_readonly=f.readonly, options_hint=hint))  # fmt: skip
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
    props = schema.get("properties") or {}
    refinements = _conditional_props(schema)
    required = set(schema.get("required") or [])
    built: dict[str, Field] = {}
    for key in _order(props, ui):
        sub = {**props[key], **refinements.get(key, {})}
        if readonly and sub.get("x-secret"):
            continue
        built[key] = _build(key, key, sub, _ui_for(ui, key), data.get(key), key in required, ctx)
    groups: list[Group] = []
    placed: set[str] = set()
    for group in ui.get("ui:groups", []) if isinstance(ui, Mapping) else []:
        fields = [built[k] for k in group.get("fields", []) if k in built and k not in placed]
        placed.update(f.key for f in fields)
        if fields:
            title = str(group.get("title") or "")
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
        title=str(schema.get("title") or ""),
        description=str(schema.get("description") or ""),
        groups=groups,
        form_errors=form_errors,
        error_list=error_list,
        has_files=any(f.widget in ("file", "files") for f in built.values()),
        readonly=readonly,
    )


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


def _coerce(
    schema: Mapping[str, Any], ui: Mapping[str, Any], raw: str | None, present: bool
) -> Any:
    kind = schema.get("type")
    widget = _widget(schema, ui)
    if kind == "boolean":
        if widget == "checkbox":
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
    if schema.get("format") == "date":
        return br_to_iso(raw)
    return raw


def _indices(form: MultiDict, prefix: str) -> list[int]:
    found: set[int] = set()
    plen = len(prefix)
    for key in form:
        if key.startswith(prefix):
            head = key[plen:].split(".", 1)[0]
            if head.isdigit() and len(head) < 5:
                found.add(int(head))
    return sorted(found)


def parse_submission(
    schema: Mapping[str, Any], ui: Mapping[str, Any], form: MultiDict
) -> dict[str, Any]:
    """The posted form as form data: nested rows, typed values, readOnly fields left out."""
    return _parse_object(schema, ui, form, "")


def _parse_object(
    schema: Mapping[str, Any], ui: Mapping[str, Any], form: MultiDict, prefix: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in (schema.get("properties") or {}).items():
        if sub.get("readOnly"):
            continue
        name = prefix + key
        sub_ui = _ui_for(ui, key)
        widget = _widget(sub, sub_ui)
        if widget == "rows":
            rows = []
            for index in _indices(form, name + "."):
                rows.append(
                    _parse_object(
                        sub.get("items") or {}, _ui_for(sub_ui, "items"), form, f"{name}.{index}."
                    )
                )
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
        value = _coerce(sub, sub_ui, form.get(name), present)
        if widget == "checkbox" and not present and name + ".present" not in form:
            continue
        if value is not None:
            out[key] = value
    return out


def file_fields(schema: Mapping[str, Any]) -> dict[str, bool]:
    """Top-level file properties: name -> True when it holds a list of files."""
    out = {}
    for key, sub in (schema.get("properties") or {}).items():
        if sub.get("readOnly"):
            continue
        if sub.get("format") == "file":
            out[key] = False
        elif sub.get("type") == "array" and (sub.get("items") or {}).get("format") == "file":
            out[key] = True
    return out


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
    sub = (schema.get("properties") or {}).get(key)
    if not isinstance(sub, Mapping) or sub.get("type") != "array":
        return False
    rows = data.get(key) if isinstance(data.get(key), list) else []
    if verb == "add":
        rows.append({} if (sub.get("items") or {}).get("type") == "object" else "")
    elif verb in ("remove", "removefile") and len(parts) == 2 and parts[1].isdigit():
        index = int(parts[1])
        if 0 <= index < len(rows):
            rows.pop(index)
    elif verb == "addall":
        source = options_source(sub, _ui_for(ui or {}, key), context)
        options = _get_path(context, source) if source else None
        item_props = ((sub.get("items") or {}).get("properties") or {}).keys()
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
    """Fill the form's ``estabelecimento_*`` fields from an establishment's register data."""
    props = schema.get("properties") or {}
    aliases = {"logradouro": "endereco"}
    filled = dict(data)
    for name in props:
        if not name.startswith("estabelecimento_"):
            continue
        key = name[len("estabelecimento_") :]
        value = register.get(aliases.get(key, key))
        if value:
            filled[name] = value
    return filled
