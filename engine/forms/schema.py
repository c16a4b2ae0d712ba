"""The schema view: one description of a task form, as validation, the task page, the task
service and the deploy check all see it.

``form_view(schema, ui)`` reads the form's JSON Schema (its $refs and allOf parts resolved)
and its UI hints once and keeps the result: every field with its dotted path, type, format,
the widget the page draws, required, options, and the flags the engine acts on —
``x-secret`` (never logged nor shown back), ``format: password`` (the password that opens the
form's uploaded certificate), ``format: file`` with ``x-accept``, ``readOnly`` (the process
owns the value), ``writeOnly`` (never kept), ``x-register`` (the establishment register's
field that fills it) — and what the page cannot draw (``problems``, refused at deploy).

Nothing here finds a field by its name: what a field is comes from what it declares.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.forms.resolve import (
    MAX_DEPTH,
    View,
    _Views,
    _views_of,
    describes_object,
    first,
    view_format,
)

__all__ = [
    "IDENTIFIER_MASKS",
    "MASKS",
    "WIDGET_HINTS",
    "FieldSpec",
    "FormView",
    "describe_form",
    "form_view",
    "ui_for",
    "widget_for",
]

# Input masks the task page knows (web/static/js/app.js); identifiers are shown formatted.
IDENTIFIER_MASKS = frozenset({"cpf", "cnpj", "cns", "cnes"})
MASKS = IDENTIFIER_MASKS | {"date", "time"}
# The ui:widget hints the page honours, and the types each may be given to.
WIDGET_HINTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "checkbox": frozenset({"boolean"}),
        "radio": frozenset({"boolean", "string", "integer", "number"}),
        "select": frozenset({"string", "integer", "number"}),
        "textarea": frozenset({"string"}),
        "password": frozenset({"string"}),
        "masked": frozenset({"string"}),
        "date": frozenset({"string"}),
        "time": frozenset({"string"}),
        "file": frozenset({"string", "array"}),
    }
)
# Keywords of a then/else branch that the page shows on the field itself (e.g. minItems
# when "yes"); the branch's other keywords only apply when it does.
_REFINED = ("minItems",)
# Beyond this many fields a schema is not described further (a $ref fan-out, not a form).
_MAX_FIELDS = 5000


def ui_for(ui: Any, key: str) -> dict[str, Any]:
    """The UI hints of one property (or of an array's ``items``)."""
    value = ui.get(key) if isinstance(ui, Mapping) else None
    return value if isinstance(value, dict) else {}


def _kind(value: Any) -> str | None:
    """A JSON Schema ``type`` as one name: a list's first type besides null."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return next((t for t in value if isinstance(t, str) and t != "null"), None)
    return None


def _widget(
    kind: str | None,
    fmt: str | None,
    has_enum: bool,
    hint: str,
    item_kind: str | None = None,
    item_format: str | None = None,
) -> str:
    """What the page draws for a field: rows, files, file, checkbox, yesno, select, radio,
    textarea, password, masked, date, time, number, email or text; ``list`` and ``object``
    are what it cannot draw (the deploy check refuses them)."""
    if kind == "array":
        if item_format == "file":
            return "files"
        return "rows" if item_kind == "object" else "list"
    if fmt == "file" or hint == "file":
        return "file"
    if kind == "boolean":
        return "checkbox" if hint == "checkbox" else "yesno"
    if has_enum:
        return "radio" if hint == "radio" else "select"
    if hint in ("textarea", "password", "select", "radio"):
        return hint
    if fmt == "password":
        return "password"
    if fmt in IDENTIFIER_MASKS or hint == "masked":
        return "masked"
    if fmt == "date" or hint == "date":
        return "date"
    if fmt == "time" or hint == "time":
        return "time"
    if kind in ("integer", "number"):
        return "number"
    if fmt == "email":
        return "email"
    if kind == "object":
        return "object"
    return "text"


def widget_for(schema: Mapping[str, Any], ui: Mapping[str, Any]) -> str:
    """The widget of one plain property schema (no $ref resolved) with its UI hints."""
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    hint = ui.get("ui:widget") if isinstance(ui, Mapping) else None
    return _widget(
        _kind(schema.get("type")),
        schema.get("format") if isinstance(schema.get("format"), str) else None,
        "enum" in schema,
        hint if isinstance(hint, str) else "",
        _kind(items.get("type")),
        items.get("format") if isinstance(items.get("format"), str) else None,
    )


@dataclass(frozen=True)
class FieldSpec:
    """One field of a form. ``path`` is dotted, ``*`` standing for any array index."""

    name: str
    path: str
    type: str | None
    format: str | None
    widget: str
    title: str
    description: str = ""
    help: str = ""
    placeholder: str = ""
    mask: str = ""
    required: bool = False
    readonly: bool = False
    write_only: bool = False
    secret: bool = False
    prefill: bool = True
    renewal: bool = False
    register: str | None = None
    accept: tuple[str, ...] = ()
    enum: tuple[Any, ...] | None = None
    options: tuple[tuple[Any, str], ...] = ()  # (value, label) of the enum
    max_length: int | None = None
    min_items: int = 0
    max_items: int | None = None
    options_from: str | None = None
    item: FieldSpec | None = None  # an array's items
    fields: tuple[FieldSpec, ...] = ()  # an object's properties, as declared
    order: tuple[str, ...] = ()  # the same names in the order the page shows them
    item_title: str = ""
    rules: tuple[str, ...] = ()  # the x-rules of this object, by name

    @property
    def password(self) -> bool:
        """The password that opens the form's uploaded certificate (``format: password``)."""
        return self.format == "password"

    @property
    def is_file(self) -> bool:
        return self.format == "file"

    @property
    def holds_files(self) -> bool:
        return self.item is not None and self.item.is_file

    @property
    def has_enum(self) -> bool:
        return self.enum is not None

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def displayed(self) -> list[FieldSpec]:
        """The object's fields in the order the page shows them."""
        by_name = {f.name: f for f in self.fields}
        return [by_name[name] for name in self.order]

    def accepts(self, kind: str) -> bool:
        """Whether this file field, or the files of this array, accept ``kind``."""
        return _accepted(kind, self.accept) or (
            self.item is not None and _accepted(kind, self.item.accept)
        )


# ``certificate_with_key`` is a certificate that came as a .pfx/.p12 with its private key (the
# PEC's Chaves folder needs one): a certificate field for everything but the key check.
WITH_KEY = "certificate_with_key"


def _accepted(kind: str, accept: tuple[str, ...]) -> bool:
    return kind in accept or (kind == "certificate" and WITH_KEY in accept)


def _flag(view: View, keyword: str) -> bool:
    return any(bool(s.get(keyword)) for s in view)


def _required(own: View) -> set[str]:
    names: set[str] = set()
    for schema in own:
        listed = schema.get("required")
        if isinstance(listed, list):
            names.update(n for n in listed if isinstance(n, str))
    return names


def _refinements(own: View) -> dict[str, dict[str, Any]]:
    """Plain keywords the object's then/else branches give its properties."""
    extra: dict[str, dict[str, Any]] = {}
    for schema in own:
        for branch in (schema.get("then"), schema.get("else")):
            props = branch.get("properties") if isinstance(branch, dict) else None
            for name, sub in props.items() if isinstance(props, dict) else ():
                if isinstance(sub, dict):
                    plain = {k: sub[k] for k in _REFINED if k in sub}
                    extra.setdefault(name, {}).update(plain)
    return extra


def _order(names: Iterable[str], ui: Mapping[str, Any]) -> tuple[str, ...]:
    names = list(names)
    wanted = ui.get("ui:order") if isinstance(ui, Mapping) else None
    order = [k for k in wanted if k in names] if isinstance(wanted, list) else []
    order = list(dict.fromkeys(order))
    return tuple(order + [k for k in names if k not in order])


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Builder:
    """Builds the field descriptions of one (schema, UI hints) pair, noting what the page
    cannot draw."""

    def __init__(self, views: _Views) -> None:
        self.views = views
        self.problems: list[str] = []
        self.count = 0

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '(formulário)'}: {message}")

    def object_fields(
        self, own: View, ui: Mapping[str, Any], prefix: str, ancestors: frozenset[tuple], depth: int
    ) -> tuple[tuple[FieldSpec, ...], tuple[str, ...]]:
        declared = self.views.declared(own)
        required = _required(own)
        refined = _refinements(own)
        fields = []
        for name, subs in declared.items():
            fields.append(
                self.field(
                    name,
                    subs,
                    ui_for(ui, name),
                    prefix + name,
                    required=name in required,
                    refined=refined.get(name, {}),
                    ancestors=ancestors,
                    depth=depth + 1,
                    in_item=bool(prefix) and "*" in prefix,
                )
            )
        return tuple(fields), _order(declared, ui)

    def field(
        self,
        name: str,
        declared: Iterable[Any],
        ui: Mapping[str, Any],
        path: str,
        *,
        required: bool = False,
        refined: Mapping[str, Any] | None = None,
        ancestors: frozenset[tuple] = frozenset(),
        depth: int = 0,
        in_item: bool = False,
    ) -> FieldSpec:
        views = self.views
        declared = tuple(declared)
        own = views.expand(declared, conditional=False)
        full = views.expand(declared)
        refined = refined or {}
        self.count += 1
        kind = _kind(first(own, "type"))
        if kind is None and describes_object(own):
            kind = "object"
        fmt = view_format(own)
        enum = first(own, "enum", list)
        hint = ui.get("ui:widget") if isinstance(ui.get("ui:widget"), str) else ""
        # Recursion through $refs (the same schemas again below themselves), or a fan-out no
        # form has, is not described further.
        ids = tuple(map(id, own))
        deeper = depth < MAX_DEPTH and ids not in ancestors and self.count < _MAX_FIELDS
        if not deeper and kind in ("object", "array"):
            self.problem(path, "esquema recursivo ou grande demais para ser desenhado.")
        item = None
        fields: tuple[FieldSpec, ...] = ()
        order: tuple[str, ...] = ()
        if kind == "array" and deeper:
            item_subs = views.items(own, 0, expand=False)
            item = self.field(
                "*",
                item_subs,
                ui_for(ui, "items"),
                f"{path}.*",
                ancestors=ancestors | {ids},
                depth=depth + 1,
                in_item=True,
            )
        elif kind == "object" and deeper:
            fields, order = self.object_fields(own, ui, path + ".", ancestors | {ids}, depth)
        names = ui.get("ui:enumNames") if isinstance(ui.get("ui:enumNames"), list) else []
        options = tuple(
            (v, str(names[i]) if i < len(names) else str(v)) for i, v in enumerate(enum or ())
        )
        widget = _widget(
            kind, fmt, enum is not None, hint, item.type if item else None,
            item.format if item else None,
        )  # fmt: skip
        accept = first(own, "x-accept", list) or ()
        rules = tuple(
            r["rule"]
            for s in own
            for r in (s.get("x-rules") if isinstance(s.get("x-rules"), list) else ())
            if isinstance(r, dict) and isinstance(r.get("rule"), str)
        )
        spec = FieldSpec(
            name=name,
            path=path,
            type=kind,
            format=fmt,
            widget=widget,
            title=str(first(own, "title", str) or ("" if name == "*" else name)),
            description=str(first(own, "description", str) or ""),
            help=str(ui.get("ui:help") or ""),
            placeholder=str(ui.get("ui:placeholder") or ""),
            mask=str(ui.get("ui:mask") or fmt or "") if widget == "masked" else "",
            required=required,
            readonly=_flag(own, "readOnly"),
            write_only=_flag(own, "writeOnly"),
            secret=_flag(full, "x-secret"),
            prefill=not any(s.get("x-prefill") is False or s.get("x-secret") for s in full),
            renewal=_flag(own, "x-renewal"),
            register=first(own, "x-register", str),
            accept=tuple(str(a) for a in accept),
            enum=tuple(enum) if enum is not None else None,
            options=options,
            max_length=_int(first(own, "maxLength")),
            min_items=_int(refined.get("minItems", first(own, "minItems"))) or 0,
            max_items=_int(first(own, "maxItems")),
            options_from=first(own, "x-options-from", str),
            item=item,
            fields=fields,
            order=order,
            item_title=(item.title if item else "") or "Item",
            rules=rules,
        )
        self.check(spec, hint, in_item)
        return spec

    def check(self, spec: FieldSpec, hint: str, in_item: bool) -> None:
        """Note what the page cannot draw or post back for this field."""
        path = spec.path
        if spec.type is None and spec.path.endswith("*"):
            return  # an array item's kind is judged by its array
        if hint and hint not in WIDGET_HINTS:
            known = ", ".join(sorted(WIDGET_HINTS))
            self.problem(path, f"ui:widget {hint!r} desconhecido (conhecidos: {known}).")
        elif hint and spec.type is not None and spec.type not in WIDGET_HINTS[hint]:
            self.problem(path, f"ui:widget {hint!r} não serve para um campo do tipo {spec.type}.")
        elif hint == "file" and not (spec.is_file or spec.holds_files):
            self.problem(path, 'ui:widget "file" exige format "file".')
        elif (
            hint in ("select", "radio")
            and spec.type != "boolean"
            and not spec.has_enum
            and not in_item  # a list's rows may take options from the workflow's data
        ):
            self.problem(path, f'ui:widget "{hint}" sem "enum" não tem opções a mostrar.')
        if spec.widget == "list":
            self.problem(
                path,
                "lista de valores simples não pode ser desenhada (use itens objeto ou arquivo).",
            )
        elif spec.widget == "object" and not path.endswith("*"):
            self.problem(path, "objeto fora de uma lista não pode ser desenhado.")
        elif spec.widget == "masked" and spec.mask not in MASKS:
            known = ", ".join(sorted(MASKS))
            self.problem(path, f"máscara {spec.mask!r} desconhecida (conhecidas: {known}).")
        if in_item and not path.endswith("*") and spec.widget in ("rows", "files", "file"):
            self.problem(path, "arquivos e listas dentro dos itens de uma lista não são enviados.")
        if spec.password and spec.type not in (None, "string"):
            self.problem(path, 'format "password" só vale em campos de texto.')


@dataclass(frozen=True)
class FormView:
    """A whole form: its top-level fields and what the engine asks of it."""

    title: str
    description: str
    fields: tuple[FieldSpec, ...]  # as declared
    order: tuple[str, ...]  # the names in the order the page shows them
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # ui:groups: (title, field names)
    secret_paths: frozenset[str]
    prefill_names: tuple[str, ...]  # top-level, in every branch, as declared
    rule_names: frozenset[str]
    has_files: bool
    has_rules: bool
    problems: tuple[str, ...]
    views: _Views = field(repr=False, compare=False)

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def displayed(self) -> list[FieldSpec]:
        by_name = {f.name: f for f in self.fields}
        return [by_name[name] for name in self.order]

    @property
    def readonly_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.readonly)

    @property
    def upload_password(self) -> str | None:
        """The field whose value opens a .pfx uploaded with this form (``format: password``)."""
        return next((f.name for f in self.fields if f.password), None)

    @property
    def takes_certificate(self) -> bool:
        """Whether the form has a certificate upload (``x-accept: ["certificate"]``)."""
        return any(f.accepts("certificate") for f in self.fields)

    @property
    def takes_evidence(self) -> bool:
        """Whether the form takes evidence files (PDF or PNG): the portfolio's limit applies."""
        return any(f.accepts("application/pdf") or f.accepts("image/png") for f in self.fields)

    @property
    def certificate_fields(self) -> tuple[FieldSpec, ...]:
        """Single-file fields that take a certificate: what the task registers."""
        return tuple(f for f in self.fields if f.is_file and _accepted("certificate", f.accept))

    @property
    def uploads(self) -> dict[str, bool]:
        """Top-level fields the page uploads files to: name -> True when it holds a list."""
        out = {}
        for f in self.fields:
            if f.readonly:
                continue
            if f.is_file:
                out[f.name] = False
            elif f.type == "array" and f.holds_files:
                out[f.name] = True
        return out

    @property
    def register_fields(self) -> dict[str, str]:
        """Field name -> the establishment register's key that fills it (``x-register``)."""
        return {f.name: f.register for f in self.fields if f.register}

    def register_field(self, key: str) -> str | None:
        return next((f.name for f in self.fields if f.register == key), None)

    def file_values(self, data: Any) -> list[str]:
        """Every value in ``data`` that the form declares as ``format: file``."""
        found: list[str] = []
        if isinstance(data, Mapping):
            for spec in self.fields:
                if spec.name in data:
                    _file_values(spec, data[spec.name], found)
        return found


def _file_values(spec: FieldSpec, value: Any, found: list[str]) -> None:
    if spec.is_file and isinstance(value, str):
        found.append(value)
    elif isinstance(value, Mapping):
        for sub in spec.fields:
            if sub.name in value:
                _file_values(sub, value[sub.name], found)
    elif isinstance(value, list) and spec.item is not None:
        for each in value:
            _file_values(spec.item, each, found)


def _secret_paths(views: _Views) -> frozenset[str]:
    """Dotted paths of x-secret properties, in every branch; ``*`` for any array index."""
    found: set[str] = set()
    budget = [_MAX_FIELDS]

    def walk(view: View, prefix: str, depth: int, ancestors: frozenset[tuple]) -> None:
        # A view met again below itself is a $ref cycle: its fields are already named.
        key = tuple(map(id, view))
        if depth > MAX_DEPTH or key in ancestors or budget[0] <= 0:
            return
        ancestors = ancestors | {key}
        for name, sub in views.properties(view).items():
            budget[0] -= 1
            path = prefix + name
            if any(s.get("x-secret") for s in sub):
                found.add(path)
                continue
            walk(sub, path + ".", depth + 1, ancestors)
            item_view = views.expand([s["items"] for s in sub if "items" in s])
            if item_view:
                walk(item_view, path + ".*.", depth + 1, ancestors)

    walk(views.expand((views.root,)), "", 0, frozenset())
    return frozenset(found)


def _prefill_names(views: _Views) -> tuple[str, ...]:
    """Top-level properties prefilled from workflow data: not x-prefill false, not secret."""
    props = views.properties(views.expand((views.root,)))
    return tuple(
        name
        for name, view in props.items()
        if not any(s.get("x-prefill") is False or s.get("x-secret") for s in view)
    )


def _groups(ui: Mapping[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    listed = ui.get("ui:groups") if isinstance(ui, Mapping) else None
    out = []
    for group in listed if isinstance(listed, list) else ():
        if isinstance(group, dict):
            names = group.get("fields") if isinstance(group.get("fields"), list) else []
            out.append((str(group.get("title") or ""), tuple(str(n) for n in names)))
    return tuple(out)


def _build(views: _Views, ui: Mapping[str, Any]) -> FormView:
    root = views.root if isinstance(views.root, dict) else {}
    builder = _Builder(views)
    own = views.expand((root,), conditional=False)
    fields, order = builder.object_fields(own, ui, "", frozenset({tuple(map(id, own))}), 0)
    # A property only a conditional branch declares is validated but never drawn.
    drawn = {f.name for f in fields}
    for name in views.properties(views.expand((root,))):
        if name not in drawn:
            builder.problem(name, "declarado só em if/then/else, anyOf ou oneOf: a página não o mostra.")  # fmt: skip
    return FormView(
        title=str(root.get("title") or ""),
        description=str(root.get("description") or ""),
        fields=fields,
        order=order,
        groups=_groups(ui),
        secret_paths=views.memo(("secret_paths",), lambda: _secret_paths(views)),
        prefill_names=views.memo(("prefill_names",), lambda: _prefill_names(views)),
        rule_names=views.rule_names,
        has_files=views.has_files,
        has_rules=views.has_rules,
        problems=tuple(builder.problems),
        views=views,
    )


def describe_form(schema: Any, ui: Mapping[str, Any] | None = None) -> FormView:
    """The description of a form, not kept (the deploy check's forms are read once)."""
    key = json.dumps(ui, sort_keys=True, default=str) if ui else ""
    return _build(_Views(copy.deepcopy(schema)), json.loads(key) if key else {})


def form_view(schema: Any, ui: Mapping[str, Any] | None = None) -> FormView:
    """The description of a form, kept with the schema's views (one per set of UI hints).

    The hints are keyed by their JSON text, so hints changed in place are never answered
    from what was kept for the old ones; the description is built from that text, a copy
    no caller holds.
    """
    views = _views_of(schema)
    key = json.dumps(ui, sort_keys=True, default=str) if ui else ""
    return views.memo(("form", key), lambda: _build(views, json.loads(key) if key else {}))
