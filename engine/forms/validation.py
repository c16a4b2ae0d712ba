"""Server-side validation of task form data.

A form is a JSON Schema (draft 2020-12) kept beside the BPMN. We validate with
``jsonschema`` plus formats that are really enforced (``cpf``, ``cnpj``, ``cns``,
``cnes``, ``date``, ``time``, ``email``, ``ipv4``, ``file``) and a few extensions:

- ``x-accept``: on a ``format: file`` property, the accepted content types (or file
  kinds, e.g. ``"certificate"``).
- ``x-rules``: cross-field rules on an object schema (the form itself or an array's
  ``items``), each ``{"rule": <name>, "fields": [...], ...}``; see ``RULES``.
- ``x-options-from``: on an array property, the dotted path in the workflow data
  whose list holds the allowed items (e.g. ``"portfolio.operations"``).
- ``x-secret`` (value must never be logged or shown back), ``x-prefill: false``
  (do not prefill from workflow data), ``x-messages`` (``{keyword: message}``
  overriding our message for one property).

Errors come back as ``{field path: message}``; paths are dotted
(``filhos.0.cnes``) and ``""`` means the form as a whole.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema import validators as jsonschema_validators
from jsonschema.exceptions import best_match

from engine import identifiers

__all__ = [
    "FORM_PATH",
    "KNOWN_FORMATS",
    "RULES",
    "FileInfo",
    "FormContext",
    "FormInvalid",
    "check_form_schema",
    "prefill",
    "secret_fields",
    "strip_secrets",
    "validate_form",
]

FORM_PATH = ""  # error key for problems with the form as a whole

KNOWN_FORMATS = frozenset({"cpf", "cnpj", "cns", "cnes", "date", "time", "email", "ipv4", "file"})
RULES = frozenset({"lte", "public_ip", "same_uf", "unique"})

DEFAULT_OPTION_KEYS = ("operacao", "metodo")

# Submitted JSON nested deeper than this is junk; refusing it early keeps every
# recursive comparison (ours and jsonschema's) far from Python's recursion limit.
MAX_DEPTH = 32
MAX_INT_BITS = 1024

REQUIRED = "Campo obrigatório."
INVALID = "Valor inválido."
FORM_INVALID = "Dados do formulário inválidos."
CHECK_REQUIRED = "É preciso marcar esta opção."
DATE_INVALID = "Data inválida (use dd/mm/aaaa)."
TIME_INVALID = "Hora inválida (use hh:mm)."
EMAIL_INVALID = "E-mail inválido."
IPV4_INVALID = "Endereço IPv4 inválido."
FILE_NOT_FOUND = "Arquivo não encontrado. Envie o arquivo novamente."
PUBLIC_IP = "Informe um IP público (não privado, reservado ou de loopback)."
CNES_NOT_REGISTERED = "CNES não cadastrado na organização."
SAME_UF = "Estabelecimento filho deve ser da mesma UF ({uf}) do estabelecimento cessionário."
OPTION_UNAVAILABLE = "Operação não disponível neste portfólio."

_TYPE_MESSAGES = {
    "integer": "Informe um número inteiro.",
    "number": "Informe um número.",
    "string": "Informe um texto.",
    "boolean": "Escolha sim ou não.",
    "array": "Informe uma lista de itens.",
}
_FORMAT_MESSAGES = {
    "cpf": "CPF inválido.",
    "cnpj": "CNPJ inválido.",
    "cns": "CNS inválido.",
    "cnes": "CNES inválido.",
    "date": DATE_INVALID,
    "time": TIME_INVALID,
    "email": EMAIL_INVALID,
    "ipv4": IPV4_INVALID,
    "file": FILE_NOT_FOUND,
}
_ACCEPT_LABELS = {
    "application/pdf": "PDF",
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "certificate": "certificado digital (.cer, .crt, .pem, .pfx, .p12)",
}

# [0-9] rather than \d: \d matches any Unicode digit.
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME_RE = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_EMAIL_CHAR = r"[^@\s\x00-\x1f\x7f"
_EMAIL_RE = re.compile(rf"{_EMAIL_CHAR}]+@{_EMAIL_CHAR}.]+(?:\.{_EMAIL_CHAR}.]+)+")
_FILE_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

_MISSING = object()


# --- public types --------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    """What validation needs to know about an uploaded file."""

    id: str
    content_type: str
    kind: str | None = None  # e.g. "certificate", "evidence"


@dataclass
class FormContext:
    # file id -> FileInfo, or None when unknown or of another organization
    lookup_file: Callable[[str], FileInfo | None]
    establishment_uf: str | None = None
    # CNES -> UF of that establishment in the organization, None if not registered
    lookup_establishment_uf: Callable[[str], str | None] = lambda cnes: None
    data: Mapping[str, Any] = field(default_factory=dict)  # current workflow data
    # file ids -> FileInfo of those known in the organization, in one query; when given,
    # the files of a form are looked up together rather than one by one
    lookup_files: Callable[[list[str]], Mapping[str, FileInfo]] | None = None


class FormInvalid(Exception):
    """The submitted data did not pass; ``errors`` maps field paths to pt-BR messages."""

    def __init__(self, errors: dict[str, str], data: dict | None = None) -> None:
        super().__init__(
            "; ".join(f"{path or '(formulário)'}: {msg}" for path, msg in errors.items())
        )
        self.errors = errors
        self.data = data  # the cleaned data, useful to re-render the form


# --- schema views --------------------------------------------------------------------
# A property may be described in several places (allOf parts, if/then branches,
# $refs). A "view" is the tuple of every schema that applies to one value.

_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_CONDITIONAL = ("if", "then", "else")

View = tuple[Any, ...]


def _resolve_ref(ref: str, root: Any) -> Any:
    # Only local JSON pointers; check_form_schema reports anything else.
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _expand(schemas: Iterable[Any], root: Any, conditional: bool = True) -> View:
    out: list[dict] = []
    seen: set[int] = set()
    stack = list(schemas)[::-1]
    while stack:
        schema = stack.pop()
        if not isinstance(schema, dict) or id(schema) in seen:
            continue
        seen.add(id(schema))
        out.append(schema)
        more: list[Any] = []
        ref = schema.get("$ref")
        if isinstance(ref, str):
            more.append(_resolve_ref(ref, root))
        keys = _SUBSCHEMA_LISTS if conditional else ("allOf",)
        for key in keys:
            if isinstance(schema.get(key), list):
                more.extend(schema[key])
        if conditional:
            more.extend(schema.get(key) for key in _CONDITIONAL)
            if isinstance(schema.get("dependentSchemas"), dict):
                more.extend(schema["dependentSchemas"].values())
        stack.extend(reversed(more))
    return tuple(out)


def _declared(view: View) -> dict[str, list]:
    props: dict[str, list] = {}
    for schema in view:
        declared = schema.get("properties")
        if isinstance(declared, dict):
            for name, sub in declared.items():
                props.setdefault(name, []).append(sub)
    return props


def _mentions(root: Any) -> tuple[bool, bool, frozenset[str]]:
    """(Any ``format: file``?, any x-rules or x-options-from?, the x-rules' names) anywhere in
    ``root``, $refs' targets included: without them, validation skips the file prefetch and
    the rules; the names tell callers which context a form needs."""
    files = rules = False
    names: set[str] = set()
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            files = files or node.get("format") == "file"
            rules = rules or "x-rules" in node or "x-options-from" in node
            listed = node.get("x-rules")
            for rule in listed if isinstance(listed, list) else ():
                if isinstance(rule, dict) and isinstance(rule.get("rule"), str):
                    names.add(rule["rule"])
            stack.extend(node.values())
        else:
            stack.extend(node)
    return files, rules, frozenset(names)


class _Views:
    """The views of one schema, each worked out once and then kept.

    Memo keys are the ids of the schema's parts. ``root`` holds every one of them, so no
    id is reused by another object while this lives; ``root`` is never handed out nor
    changed. Views are tuples and property maps read-only: what is kept cannot be mutated.
    """

    def __init__(self, root: Any) -> None:
        self.root = root
        self._memo: dict[tuple, Any] = {}
        self._secrets: frozenset[str] | None = None
        self.has_files, self.has_rules, self.rule_names = _mentions(root)

    def expand(self, schemas: Iterable[Any], conditional: bool = True) -> View:
        schemas = tuple(schemas)
        key = ("expand", conditional, *map(id, schemas))
        view = self._memo.get(key)
        if view is None:
            view = self._memo[key] = _expand(schemas, self.root, conditional)
        return view

    def properties(self, view: View) -> Mapping[str, View]:
        """Property name -> the expanded view of that property."""
        key = ("properties", *map(id, view))
        props = self._memo.get(key)
        if props is None:
            expanded = {name: self.expand(subs) for name, subs in _declared(view).items()}
            props = self._memo[key] = MappingProxyType(expanded)
        return props

    def declared(self, view: View) -> Mapping[str, View]:
        """Property name -> the schemas declared for it, not expanded."""
        key = ("declared", *map(id, view))
        props = self._memo.get(key)
        if props is None:
            raw = {name: tuple(subs) for name, subs in _declared(view).items()}
            props = self._memo[key] = MappingProxyType(raw)
        return props

    def items(self, view: View, index: int, expand: bool = True) -> View:
        subs = []
        for schema in view:
            prefix = schema.get("prefixItems")
            if isinstance(prefix, list) and index < len(prefix):
                subs.append(prefix[index])
            elif "items" in schema:
                subs.append(schema["items"])
        return self.expand(subs) if expand else tuple(subs)

    def secret_fields(self) -> frozenset[str]:
        if self._secrets is None:
            self._secrets = frozenset(_secret_paths(self))
        return self._secrets


_VIEWS_CACHE_SIZE = 256  # far more forms than all deployed versions of the processes have
_views_cache: OrderedDict[int, tuple[Any, _Views]] = OrderedDict()
_views_lock = threading.Lock()


def _views_of(schema: Any) -> _Views:
    """The kept views of ``schema``, found by identity.

    A deployed form is the same object at every completion (the spec cache holds it).
    The entry holds that object, so its id cannot be reused by another one while cached;
    the views are of a private copy, compared with the schema at every use, so a schema
    changed in place gets fresh views, never stale ones.
    """
    key = id(schema)
    with _views_lock:
        entry = _views_cache.get(key)
        if entry is not None:
            _views_cache.move_to_end(key)
    if entry is not None and entry[0] is schema and entry[1].root == schema:
        return entry[1]
    views = _Views(copy.deepcopy(schema))
    with _views_lock:
        _views_cache[key] = (schema, views)
        _views_cache.move_to_end(key)
        while len(_views_cache) > _VIEWS_CACHE_SIZE:
            _views_cache.popitem(last=False)
    return views


def _view_format(view: View) -> str | None:
    for schema in view:
        if isinstance(schema.get("format"), str):
            return schema["format"]
    return None


def _describes_object(view: View) -> bool:
    for schema in view:
        if schema.get("type") == "object":
            return True
        if any(k in schema for k in ("properties", "patternProperties", "additionalProperties")):
            return True
    return False


def _keeps_extra(view: View, key: str) -> bool:
    for schema in view:
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict) and any(re.search(p, key) for p in patterns):
            return True
        extra = schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            return True
    return False


# --- cleaning ------------------------------------------------------------------------


def _is_junk(value: Any) -> bool:
    # Iterative, so the check itself cannot hit the recursion limit.
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(node, str):
            continue  # the common case, before the slower isinstance of an abstract class
        # repr() of an int over 4300 digits raises, and jsonschema's messages use repr().
        if isinstance(node, int):
            if node.bit_length() > MAX_INT_BITS:
                return True
        elif isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)
    return False


def _clean(view: View, value: Any, views: _Views, file_ids: list[str]) -> Any:
    """The cleaned value; the values of ``format: file`` fields are added to ``file_ids``."""
    if isinstance(value, str):
        value = value.strip()
        kind = _view_format(view)
        if value and kind in identifiers.IDENTIFIER_KINDS:
            # When it does not normalize it is kept as typed; the format check reports it.
            with contextlib.suppress(ValueError):
                value = identifiers.normalize_identifier(kind, value)
        if value and views.has_files and any(s.get("format") == "file" for s in view):
            file_ids.append(value)
        return value
    if isinstance(value, Mapping) and _describes_object(view):
        props = views.properties(view)
        cleaned = {}
        for key, item in value.items():
            if not isinstance(key, str):
                continue
            if key in props:
                item = _clean(props[key], item, views, file_ids)
            elif not _keeps_extra(view, key):
                continue  # input the form does not ask for is ignored, never stored
            # A blank field is an unanswered one: "required" catches it, optional
            # fields with a format are not failed for being empty.
            if isinstance(item, str) and not item:
                continue
            cleaned[key] = item
        return cleaned
    if isinstance(value, list):
        return [_clean(views.items(view, i), item, views, file_ids) for i, item in enumerate(value)]
    return value


# --- formats -------------------------------------------------------------------------


class _FormFormatChecker(FormatChecker):
    """A FormatChecker that also carries the file lookup for the x-accept keyword."""

    lookup_file: _FileLookup


def _check_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_RE.fullmatch(value):
        raise ValueError(DATE_INVALID)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(DATE_INVALID) from None
    return True


def _check_time(value: object) -> bool:
    if isinstance(value, str) and not _TIME_RE.fullmatch(value):
        raise ValueError(TIME_INVALID)
    return True


def _check_email(value: object) -> bool:
    if isinstance(value, str) and (len(value) > 254 or not _EMAIL_RE.fullmatch(value)):
        raise ValueError(EMAIL_INVALID)
    return True


def _check_ipv4(value: object) -> bool:
    if isinstance(value, str) and not _IPV4_RE.fullmatch(value):
        raise ValueError(IPV4_INVALID)
    return True


def _identifier_check(kind: str) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if isinstance(value, str):
            identifiers.validate_identifier(kind, value)  # raises with the specific message
        return True

    return check


class _FileLookup:
    """The caller's file lookup, asked once per id; ``prefetch`` asks for many at once."""

    def __init__(self, ctx: FormContext) -> None:
        self._ctx = ctx
        self._known: dict[str, FileInfo | None] = {}

    def prefetch(self, file_ids: Iterable[str]) -> None:
        lookup_files = self._ctx.lookup_files
        wanted = [
            file_id
            for file_id in dict.fromkeys(file_ids)
            if file_id not in self._known and _FILE_ID_RE.fullmatch(file_id)
        ]
        if lookup_files is None or not wanted:
            return
        try:
            found = lookup_files(wanted)
        except ValueError:
            return  # e.g. a malformed UUID among them: each id is then asked alone
        for file_id in wanted:
            self._known[file_id] = found.get(file_id)

    def __call__(self, file_id: str) -> FileInfo | None:
        if file_id not in self._known:
            info = None
            # Only plausible ids reach the caller's lookup (no 100 KB or control chars).
            if _FILE_ID_RE.fullmatch(file_id):
                try:
                    info = self._ctx.lookup_file(file_id)
                except ValueError:
                    info = None  # e.g. a malformed UUID: an unknown file
            self._known[file_id] = info
        return self._known[file_id]


# format -> (check, what it raises), as FormatChecker keeps them; "file" is per form
_CHECKS: dict[str, tuple[Callable[[object], bool], type[Exception]]] = {
    "date": (_check_date, ValueError),
    "time": (_check_time, ValueError),
    "email": (_check_email, ValueError),
    "ipv4": (_check_ipv4, ValueError),
    **{kind: (_identifier_check(kind), ValueError) for kind in identifiers.IDENTIFIER_KINDS},
}


def _format_checker(ctx: FormContext) -> _FormFormatChecker:
    checker = _FormFormatChecker(formats=())
    checker.lookup_file = _FileLookup(ctx)

    def check_file(value: object) -> bool:
        if isinstance(value, str) and checker.lookup_file(value) is None:
            raise ValueError(FILE_NOT_FOUND)
        return True

    checker.checkers.update(_CHECKS)
    checker.checks("file", raises=ValueError)(check_file)
    return checker


# --- keywords of our validator -------------------------------------------------------


def _required(validator, required, instance, schema):
    # Like the standard keyword, but the error sits at the missing property's path.
    if not validator.is_type(instance, "object"):
        return
    for name in required:
        if name not in instance:
            yield ValidationError(REQUIRED, path=[name])


def _dependent_required(validator, dependent, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for name, needed in dependent.items():
        if name in instance:
            for each in needed:
                if each not in instance:
                    yield ValidationError(REQUIRED, path=[each])


def _file_matches(info: FileInfo, accepted: list) -> bool:
    return info.content_type in accepted or (info.kind is not None and info.kind in accepted)


def _accept_labels(accepted: list) -> str:
    labels = [_ACCEPT_LABELS.get(a, str(a)) for a in accepted]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " ou " + labels[-1]


def _x_accept(validator, accepted, instance, schema):
    if schema.get("format") != "file" or not isinstance(instance, str):
        return
    if not isinstance(accepted, list) or not accepted:
        return
    lookup = getattr(validator.format_checker, "lookup_file", None)
    info = lookup(instance) if lookup else None
    if info is not None and not _file_matches(info, accepted):
        yield ValidationError(f"Tipo de arquivo não aceito. Envie: {_accept_labels(accepted)}.")


def _json_key(value: Any) -> Any:
    """A hashable key of a JSON value: two keys are equal exactly when jsonschema's
    ``equal`` holds for the values (true is not 1, 1 is 1.0). TypeError for other types."""
    kind = type(value)
    if kind is str:
        return ("s", value)
    if kind is bool:
        return ("b", value)
    if kind is int or kind is float:
        return ("n", value)
    if value is None:
        return ("z",)
    if kind is list:
        return ("l", tuple(_json_key(item) for item in value))
    if kind is dict and all(type(k) is str for k in value):
        return ("d", frozenset((k, _json_key(v)) for k, v in value.items()))
    raise TypeError(kind)


_draft_unique_items = Draft202012Validator.VALIDATORS["uniqueItems"]


def _unique_items(validator, unique, instance, schema):
    # jsonschema compares unsortable items (objects) pairwise, n² calls of its equal();
    # hashing each item to a key that is equal exactly when equal() holds gives the same
    # answer at once. Lists it can sort, or with other types, are left to it.
    if (
        unique
        and validator.is_type(instance, "array")
        and len(instance) > 1
        and any(type(item) is dict for item in instance)
    ):
        try:
            keys = {_json_key(item) for item in instance}
        except TypeError:
            pass
        else:
            if len(keys) < len(instance):
                yield ValidationError(f"{instance!r} has non-unique elements")
            return
    yield from _draft_unique_items(validator, unique, instance, schema)


_FormValidator = jsonschema_validators.extend(
    Draft202012Validator,
    {
        "required": _required,
        "dependentRequired": _dependent_required,
        "uniqueItems": _unique_items,
        "x-accept": _x_accept,
    },
)


# --- error messages ------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace(".", ",")


def _plural(count: Any, singular: str, plural: str) -> str:
    return f"{_number(count)} {singular if count == 1 else plural}"


def _option_label(option: Any) -> str:
    if option is True:
        return "sim"
    if option is False:
        return "não"
    return str(option)


def _choose_from(labels: list[str]) -> str:
    text = ", ".join(labels)
    if not labels or len(labels) > 15 or len(text) > 300:
        return "Escolha uma das opções disponíveis."
    return f"Escolha uma das opções: {text}."


def _const_choices(branches: Any) -> list[str] | None:
    # oneOf: [{"const": ..., "title": ...}, ...] is how forms list options with labels.
    if not isinstance(branches, list) or not branches:
        return None
    if not all(isinstance(b, dict) and "const" in b for b in branches):
        return None
    return [str(b.get("title", _option_label(b["const"]))) for b in branches]


def _missing_property_schema(error: ValidationError) -> dict:
    schema = error.schema if isinstance(error.schema, dict) else {}
    props = schema.get("properties")
    prop = props.get(error.path[-1]) if isinstance(props, dict) and error.path else None
    return prop if isinstance(prop, dict) else {}


def _custom_message(error: ValidationError) -> str | None:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("required", "dependentRequired"):
        # The override lives on the missing property's own schema.
        schema = _missing_property_schema(error)
        if schema.get("const") is True:
            return CHECK_REQUIRED  # an unticked checkbox is simply absent from the post
    custom = schema.get("x-messages")
    if isinstance(custom, dict) and isinstance(custom.get(error.validator), str):
        return custom[error.validator]
    return None


def _message(error: ValidationError) -> str:
    custom = _custom_message(error)
    if custom:
        return custom
    kind = error.validator
    value = error.validator_value
    instance = error.instance
    if kind in ("required", "dependentRequired", "x-accept"):
        return error.message
    if kind == "type":
        types = [value] if isinstance(value, str) else [t for t in value if t != "null"]
        return _TYPE_MESSAGES.get(types[0], INVALID) if len(types) == 1 else INVALID
    if kind == "enum":
        return _choose_from([_option_label(o) for o in value if o is not None])
    if kind == "const":
        return CHECK_REQUIRED if value is True else INVALID
    if kind in ("oneOf", "anyOf"):
        choices = _const_choices(value)
        return _choose_from(choices) if choices else INVALID
    if kind == "format":
        cause = error.cause
        if isinstance(cause, ValueError) and cause.args and isinstance(cause.args[0], str):
            return cause.args[0]
        return _FORMAT_MESSAGES.get(value, "Formato inválido.")
    if kind == "maxLength":
        typed = len(instance) if isinstance(instance, str) else 0
        return f"No máximo {_plural(value, 'caractere', 'caracteres')} (você digitou {typed})."
    if kind == "minLength":
        return f"No mínimo {_plural(value, 'caractere', 'caracteres')}."
    if kind == "minItems":
        return f"Adicione pelo menos {_plural(value, 'item', 'itens')}."
    if kind == "maxItems":
        return f"No máximo {_plural(value, 'item', 'itens')}."
    if kind == "uniqueItems":
        return "Há itens repetidos."
    if kind == "pattern":
        return "Formato inválido."
    if kind == "minimum":
        return f"Informe um valor maior ou igual a {_number(value)}."
    if kind == "maximum":
        return f"Informe um valor menor ou igual a {_number(value)}."
    if kind == "exclusiveMinimum":
        return f"Informe um valor maior que {_number(value)}."
    if kind == "exclusiveMaximum":
        return f"Informe um valor menor que {_number(value)}."
    if kind == "multipleOf":
        return f"Informe um múltiplo de {_number(value)}."
    if kind in (None, "additionalProperties", "unevaluatedProperties", "propertyNames"):
        return "Campo não permitido."
    if kind == "not":
        return "Valor não permitido."
    return INVALID


def _path(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path)


def _describe(error: ValidationError) -> tuple[str, str]:
    choosing = error.validator in ("oneOf", "anyOf") and error.context
    if choosing and _const_choices(error.validator_value) is None:
        best = best_match(error.context)
        if best is not None:
            return _describe(best)
    return _path(error), _message(error)


def _schema_errors(validator: Any, instance: Any) -> dict[str, str]:
    # A type error says the most; other errors on the same value are noise then.
    found = sorted(validator.iter_errors(instance), key=lambda e: e.validator != "type")
    errors: dict[str, str] = {}
    for error in found:
        path, message = _describe(error)
        errors.setdefault(path, message)  # one message per path, the first
    return errors


# --- x-rules and x-options-from ------------------------------------------------------


def _get(obj: Any, dotted: str) -> Any:
    node = obj
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _field_view(view: View, dotted: str, views: _Views) -> View:
    for part in dotted.split("."):
        view = views.properties(view).get(part, ())
    return view


def _title(view: View, fallback: str) -> str:
    for schema in view:
        if isinstance(schema.get("title"), str):
            return schema["title"]
    return fallback


def _has_error(errors: Mapping[str, str], path: str) -> bool:
    return any(p == path or p.startswith(path + ".") for p in errors)


def _comparable(value: Any, kind: str | None) -> tuple[str, Any] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return ("number", value)
    if not isinstance(value, str):
        return None
    if kind == "ipv4" or _IPV4_RE.fullmatch(value):
        try:
            return ("ipv4", int(ipaddress.IPv4Address(value)))
        except ValueError:
            return None
    # Zero-padded ISO dates and HH:MM times sort as strings.
    if _DATE_RE.fullmatch(value):
        return ("date", value)
    if _TIME_RE.fullmatch(value):
        return ("time", value)
    return None


def _rule_lte(rule, obj, view, prefix, ctx, errors, views) -> None:
    fields = rule.get("fields")
    if not isinstance(fields, list) or len(fields) != 2:
        return
    a, b = fields
    a_view, b_view = _field_view(view, a, views), _field_view(view, b, views)
    if _has_error(errors, prefix + a) or _has_error(errors, prefix + b):
        return
    left = _comparable(_get(obj, a), _view_format(a_view))
    right = _comparable(_get(obj, b), _view_format(b_view))
    if left is None or right is None or left[0] != right[0]:
        return
    if left[1] > right[1]:
        message = rule.get("message") or f"Deve ser maior ou igual a {_title(a_view, a)}."
        errors.setdefault(prefix + b, message)


def _is_public_ipv4(value: str) -> bool:
    address = ipaddress.IPv4Address(value)
    # is_global alone lets multicast through.
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _rule_public_ip(rule, obj, view, prefix, ctx, errors, views) -> None:
    fields = rule.get("fields")
    for name in fields if isinstance(fields, list) else ():
        value = _get(obj, name)
        if not isinstance(value, str) or _has_error(errors, prefix + name):
            continue
        if not _IPV4_RE.fullmatch(value):
            errors.setdefault(prefix + name, IPV4_INVALID)
        elif not _is_public_ipv4(value):
            errors.setdefault(prefix + name, rule.get("message") or PUBLIC_IP)


def _list_items(rule, obj, prefix, errors):
    """(path, value) of each item (or item field) of the rule's array, skipping invalid ones."""
    fields = rule.get("fields")
    if not isinstance(fields, list) or len(fields) != 1:
        return
    name = fields[0]
    items = _get(obj, name)
    # Errors inside some items do not stop the rule for the others.
    if not isinstance(items, list) or prefix + name in errors:
        return
    item_field = rule.get("item_field")
    for index, item in enumerate(items):
        path = f"{prefix}{name}.{index}"
        value = item
        if item_field:
            value = _get(item, item_field)
            path = f"{path}.{item_field}"
        if value is _MISSING or _has_error(errors, path):
            continue
        yield path, value


def _rule_same_uf(rule, obj, view, prefix, ctx, errors, views) -> None:
    parent_uf = (ctx.establishment_uf or "").upper()
    for path, value in list(_list_items(rule, obj, prefix, errors)):
        if not isinstance(value, str):
            continue
        uf = ctx.lookup_establishment_uf(value)
        if uf is None:
            errors.setdefault(path, CNES_NOT_REGISTERED)
        elif parent_uf and uf.upper() != parent_uf:
            errors.setdefault(path, rule.get("message") or SAME_UF.format(uf=parent_uf))


def _unique_key(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return (type(value).__name__, value)
    return json.dumps(value, sort_keys=True, default=str)


def _rule_unique(rule, obj, view, prefix, ctx, errors, views) -> None:
    message = rule.get("message")
    if not message:
        fields = rule.get("fields") or [""]
        item_view = views.items(_field_view(view, str(fields[0]), views), 0)
        if rule.get("item_field"):
            item_view = _field_view(item_view, rule["item_field"], views)
        kind = _view_format(item_view)
        message = f"{kind.upper()} repetido." if kind in identifiers.IDENTIFIER_KINDS else None
        message = message or "Valor repetido."
    seen: set[Any] = set()
    for path, value in list(_list_items(rule, obj, prefix, errors)):
        key = _unique_key(value)
        if key in seen:
            errors.setdefault(path, message)
        seen.add(key)


_RULE_FUNCTIONS = {
    "lte": _rule_lte,
    "public_ip": _rule_public_ip,
    "same_uf": _rule_same_uf,
    "unique": _rule_unique,
}


def _option_key(item: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(item, Mapping):
        return tuple(_unique_key(item.get(k)) for k in keys)
    return _unique_key(item)


def _check_options(view, items, path, ctx, errors) -> None:
    # view: the array property's own schemas (not conditional branches)
    source = next(
        (s["x-options-from"] for s in view if isinstance(s.get("x-options-from"), str)), None
    )
    if source is None or path in errors:
        return
    raw_keys = next(
        (s["x-options-key"] for s in view if isinstance(s.get("x-options-key"), list)), None
    )
    keys = tuple(raw_keys) if raw_keys else DEFAULT_OPTION_KEYS
    options = _get(ctx.data, source)
    allowed = {_option_key(o, keys) for o in options} if isinstance(options, list) else set()
    message = next(
        (s["x-options-message"] for s in view if isinstance(s.get("x-options-message"), str)),
        OPTION_UNAVAILABLE,
    )
    for index, item in enumerate(items):
        item_path = f"{path}.{index}"
        if not _has_error(errors, item_path) and _option_key(item, keys) not in allowed:
            errors.setdefault(item_path, message)


def _apply_rules(raw: View, value, prefix, ctx, errors, views: _Views) -> None:
    """Run x-rules and x-options-from over the cleaned data, after the schema checks.

    ``raw`` are the schemas declared for this value. Rules are read from them, their
    $refs and allOf parts, never from if/then/else or anyOf/oneOf branches, which
    may not apply to this value.
    """
    # Rules and options are of objects and arrays: other values are not looked into.
    own = views.expand(raw, conditional=False)
    if isinstance(value, dict):
        for schema in own:
            for rule in schema.get("x-rules") or ():
                func = _RULE_FUNCTIONS.get(rule.get("rule")) if isinstance(rule, dict) else None
                if func is not None:
                    func(rule, value, views.expand(raw), prefix, ctx, errors, views)
        props = views.declared(own)
        for key, item in value.items():
            if key in props and isinstance(item, dict | list):
                _apply_rules(props[key], item, f"{prefix}{key}.", ctx, errors, views)
    elif isinstance(value, list):
        _check_options(own, value, prefix[:-1], ctx, errors)
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                subs = views.items(own, index, expand=False)
                _apply_rules(subs, item, f"{prefix}{index}.", ctx, errors, views)


# --- public API ----------------------------------------------------------------------


def validate_form(schema: dict, submitted: Mapping, ctx: FormContext) -> dict:
    """Clean and validate submitted form data; return the cleaned data or raise FormInvalid.

    Cleaning strips strings, drops blank strings and properties the schema does not
    declare, and stores identifiers normalized. Secret values are kept in the result:
    the caller removes them (``strip_secrets``) before logging or auditing.
    """
    if not isinstance(submitted, Mapping) or _is_junk(submitted):
        raise FormInvalid({FORM_PATH: FORM_INVALID})
    views = _views_of(schema)
    root = views.root  # the same content as schema
    file_ids: list[str] = []
    cleaned = _clean(views.expand((root,)), submitted, views, file_ids)
    cleaned = dict(cleaned)  # a root schema that says nothing about objects keeps a Mapping
    checker = _format_checker(ctx)
    checker.lookup_file.prefetch(file_ids)
    validator = _FormValidator(root, format_checker=checker)
    errors = _schema_errors(validator, cleaned)
    if views.has_rules:
        _apply_rules((root,), cleaned, "", ctx, errors, views)
    if errors:
        raise FormInvalid(errors, cleaned)
    return cleaned


def prefill(schema: dict, data: Mapping) -> dict:
    """Initial values for the form's top-level properties, taken from workflow data."""
    views = _views_of(schema)
    values = {}
    for name, view in views.properties(views.expand((views.root,))).items():
        if name not in data:
            continue
        if any(s.get("x-prefill") is False or s.get("x-secret") for s in view):
            continue
        values[name] = copy.deepcopy(data[name])
    return values


def uses_rule(schema: dict, rule: str) -> bool:
    """Whether any x-rules entry of the form (or of a schema it refers to) is ``rule``."""
    return rule in _views_of(schema).rule_names


def secret_fields(schema: dict) -> set[str]:
    """Dotted paths of x-secret properties; ``*`` stands for any array index."""
    return set(_views_of(schema).secret_fields())


def _secret_paths(views: _Views) -> set[str]:
    found: set[str] = set()

    def walk(view: View, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        for name, sub in views.properties(view).items():
            path = prefix + name
            if any(s.get("x-secret") for s in sub):
                found.add(path)
                continue
            walk(sub, path + ".", depth + 1)
            item_view = views.expand([s["items"] for s in sub if "items" in s])
            if item_view:
                walk(item_view, path + ".*.", depth + 1)

    walk(views.expand((views.root,)), "", 0)
    return found


def strip_secrets(schema: dict, data: Mapping) -> dict:
    """A copy of data without the x-secret values (for logs, audit payloads, pages)."""
    result = copy.deepcopy(dict(data))
    for path in secret_fields(schema):
        _remove_path(result, path.split("."))
    return result


def _remove_path(node: Any, parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if head == "*":
        children = node if isinstance(node, list) else []
        for child in children:
            if rest:
                _remove_path(child, rest)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _remove_path(node[head], rest)
    else:
        del node[head]


# --- model checks --------------------------------------------------------------------

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_SINGLE = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_SCHEMA_SEQUENCES = ("allOf", "anyOf", "oneOf", "prefixItems")


# Keywords whose subschemas may not apply to the value: rules there are never run.
_BRANCHES = frozenset({"if", "then", "else", "not", "anyOf", "oneOf", "dependentSchemas"})


def _walk_schemas(schema: Any, pointer: str = "", in_branch: bool = False, depth: int = 0):
    """(JSON pointer, subschema, inside a conditional branch?) for every subschema."""
    if not isinstance(schema, dict) or depth > 64:
        return
    yield pointer, schema, in_branch
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            branch = in_branch or key in _BRANCHES
            for name, sub in schema[key].items():
                yield from _walk_schemas(sub, f"{pointer}/{key}/{name}", branch, depth + 1)
    for key in _SCHEMA_SINGLE:
        branch = in_branch or key in _BRANCHES
        yield from _walk_schemas(schema.get(key), f"{pointer}/{key}", branch, depth + 1)
    for key in _SCHEMA_SEQUENCES:
        if isinstance(schema.get(key), list):
            branch = in_branch or key in _BRANCHES
            for index, sub in enumerate(schema[key]):
                yield from _walk_schemas(sub, f"{pointer}/{key}/{index}", branch, depth + 1)


def _check_rules(rules: Any, at: str, schema: dict, views: _Views) -> list[str]:
    if not isinstance(rules, list):
        return [f"{at}: x-rules deve ser uma lista."]
    problems = []
    view = views.expand((schema,), conditional=False)
    props = views.properties(view)
    for index, rule in enumerate(rules):
        where = f"{at}/x-rules/{index}"
        if not isinstance(rule, dict):
            problems.append(f"{where}: cada regra deve ser um objeto.")
            continue
        name = rule.get("rule")
        if name not in RULES:
            problems.append(f"{where}: regra desconhecida {name!r} (conhecidas: {sorted(RULES)}).")
            continue
        fields = rule.get("fields")
        if (
            not isinstance(fields, list)
            or not fields
            or not all(isinstance(f, str) for f in fields)
        ):
            problems.append(f"{where}: 'fields' deve ser uma lista de nomes de campos.")
            continue
        expected = {"lte": 2, "same_uf": 1, "unique": 1}.get(name)
        if expected is not None and len(fields) != expected:
            problems.append(f"{where}: a regra {name} usa exatamente {expected} campo(s).")
        for name_ in fields:
            if not _field_view(view, name_, views):
                problems.append(f"{where}: campo {name_!r} não existe no esquema.")
        if "message" in rule and not isinstance(rule["message"], str):
            problems.append(f"{where}: 'message' deve ser um texto.")
        item_field = rule.get("item_field")
        if item_field is not None:
            if not isinstance(item_field, str) or name not in ("same_uf", "unique"):
                problems.append(f"{where}: 'item_field' só vale como texto em same_uf e unique.")
            elif fields and fields[0] in props:
                item_view = views.items(props[fields[0]], 0)
                if not _field_view(item_view, item_field, views):
                    problems.append(f"{where}: campo {item_field!r} não existe nos itens.")
    return problems


def check_form_schema(schema: Any) -> list[str]:
    """Problems that make a form schema unusable; an empty list means it is fine."""
    if not isinstance(schema, dict):
        return ["O esquema do formulário deve ser um objeto JSON."]
    meta = jsonschema_validators.validator_for(Draft202012Validator.META_SCHEMA)
    meta_validator = meta(Draft202012Validator.META_SCHEMA)
    problems = [
        f"/{'/'.join(str(p) for p in error.absolute_path)}: esquema inválido: {error.message}"
        for error in meta_validator.iter_errors(schema)
    ]
    if problems:
        return problems[:20]
    if schema.get("type") != "object":
        problems.append('O esquema do formulário deve ter "type": "object".')
    views = _Views(schema)  # deploy time: not kept
    for pointer, sub, in_branch in _walk_schemas(schema):
        at = pointer or "/"
        fmt = sub.get("format")
        if fmt is not None and fmt not in KNOWN_FORMATS:
            problems.append(
                f"{at}: formato desconhecido {fmt!r} (conhecidos: {sorted(KNOWN_FORMATS)})."
            )
        if "pattern" in sub:
            try:
                re.compile(sub["pattern"])
            except (re.error, TypeError):
                problems.append(f"{at}: expressão regular inválida em 'pattern'.")
        ref = sub.get("$ref")
        if isinstance(ref, str) and _resolve_ref(ref, schema) is None:
            problems.append(f"{at}: $ref {ref!r} não encontrada (só referências locais).")
        if "x-accept" in sub:
            accept = sub["x-accept"]
            if fmt != "file":
                problems.append(f'{at}: x-accept só vale em campos com format "file".')
            if (
                not isinstance(accept, list)
                or not accept
                or not all(isinstance(a, str) for a in accept)
            ):
                problems.append(f"{at}: x-accept deve ser uma lista não vazia de tipos.")
        for flag in ("x-secret", "x-prefill"):
            if flag in sub and not isinstance(sub[flag], bool):
                problems.append(f"{at}: {flag} deve ser true ou false.")
        if "x-messages" in sub:
            messages = sub["x-messages"]
            if not isinstance(messages, dict) or not all(
                isinstance(v, str) for v in messages.values()
            ):
                problems.append(f"{at}: x-messages deve mapear palavra-chave para texto.")
        options_from = sub.get("x-options-from", "")
        if not isinstance(options_from, str) or (options_from and sub.get("type") != "array"):
            problems.append(f"{at}: x-options-from deve ser um caminho (texto) em um array.")
        if "x-rules" in sub and in_branch:
            problems.append(f"{at}: x-rules dentro de if/then/else, anyOf ou oneOf não é aplicada.")
        elif "x-rules" in sub:
            problems.extend(_check_rules(sub["x-rules"], at, sub, views))
    return problems
