"""Cross-field rules (``x-rules``) and options from workflow data (``x-options-from``), run
over the cleaned data after the schema checks.

Rules sit on an object schema (the form itself or an array's ``items``), each
``{"rule": <name>, "fields": [...], ...}``:

- ``differ``: the two fields are not equal (a period of hours from 22:00 to 02:00 crosses
  midnight and is fine; from 10:00 to 10:00 is no period).
- ``lte``: the first field is at most the second (numbers, dates, times, IPv4 addresses).
- ``public_ip``: each field is a public IPv4 address.
- ``same_uf``: each item (or ``item_field`` of each item) of the array is the CNES of an
  establishment of the organization in the same UF as the instance's establishment.
- ``unique``: no two items (or ``item_field`` values) are the same.

A property may also carry ``x-required-unless-portfolio``: a list of portfolio codes for
which the property, required by the schema (``required`` or an if/then ``required``), may be
left out — the portal shows no identificador do solicitante for some portfolios. The code
is the workflow's ``portfolio.code``.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from engine import identifiers
from engine.forms.context import FormContext
from engine.forms.formats import DATE_RE, IPV4_RE, TIME_RE
from engine.forms.messages import (
    CNES_NOT_REGISTERED,
    IPV4_INVALID,
    OPTION_UNAVAILABLE,
    PUBLIC_IP,
    SAME_UF,
)
from engine.forms.resolve import View, _Views, field_view, title_of, view_format

RULES = frozenset({"differ", "lte", "public_ip", "same_uf", "unique"})
RULE_FIELDS = {"differ": 2, "lte": 2, "same_uf": 1, "unique": 1}  # how many fields each rule names
DEFAULT_OPTION_KEYS = ("operacao", "metodo")
UNLESS_PORTFOLIO = "x-required-unless-portfolio"

_MISSING = object()


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


def _has_error(errors: Mapping[str, str], path: str) -> bool:
    return any(p == path or p.startswith(path + ".") for p in errors)


def _comparable(value: Any, kind: str | None) -> tuple[str, Any] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return ("number", value)
    if not isinstance(value, str):
        return None
    if kind == "ipv4" or IPV4_RE.fullmatch(value):
        try:
            return ("ipv4", int(ipaddress.IPv4Address(value)))
        except ValueError:
            return None
    # Zero-padded ISO dates and HH:MM times sort as strings.
    if DATE_RE.fullmatch(value):
        return ("date", value)
    if TIME_RE.fullmatch(value):
        return ("time", value)
    return None


def _rule_lte(rule, obj, view, prefix, ctx, errors, views) -> None:
    fields = rule.get("fields")
    if not isinstance(fields, list) or len(fields) != 2:
        return
    a, b = fields
    a_view, b_view = field_view(view, a, views), field_view(view, b, views)
    if _has_error(errors, prefix + a) or _has_error(errors, prefix + b):
        return
    left = _comparable(_get(obj, a), view_format(a_view))
    right = _comparable(_get(obj, b), view_format(b_view))
    if left is None or right is None or left[0] != right[0]:
        return
    if left[1] > right[1]:
        message = rule.get("message") or f"Deve ser maior ou igual a {title_of(a_view, a)}."
        errors.setdefault(prefix + b, message)


def _rule_differ(rule, obj, view, prefix, ctx, errors, views) -> None:
    fields = rule.get("fields")
    if not isinstance(fields, list) or len(fields) != 2:
        return
    a, b = fields
    if _has_error(errors, prefix + a) or _has_error(errors, prefix + b):
        return
    left, right = _get(obj, a), _get(obj, b)
    if left is _MISSING or right is _MISSING or _unique_key(left) != _unique_key(right):
        return
    title = title_of(field_view(view, a, views), a)
    errors.setdefault(prefix + b, rule.get("message") or f"Deve ser diferente de {title}.")


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
        if not IPV4_RE.fullmatch(value):
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


def _ufs(ctx: FormContext, cnes: list[str]) -> Mapping[str, str | None]:
    """CNES -> UF of each establishment asked about: one query when the caller can make it."""
    wanted = list(dict.fromkeys(cnes))
    if not wanted:
        return {}
    if ctx.lookup_establishment_ufs is not None:
        found = ctx.lookup_establishment_ufs(wanted)
        return {c: found.get(c) for c in wanted}
    return {c: ctx.lookup_establishment_uf(c) for c in wanted}


def _rule_same_uf(rule, obj, view, prefix, ctx, errors, views) -> None:
    parent_uf = (ctx.establishment_uf or "").upper()
    items = [(p, v) for p, v in _list_items(rule, obj, prefix, errors) if isinstance(v, str)]
    ufs = _ufs(ctx, [value for _path, value in items])
    for path, value in items:
        uf = ufs.get(value)
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
        item_view = views.items(field_view(view, str(fields[0]), views), 0)
        if rule.get("item_field"):
            item_view = field_view(item_view, rule["item_field"], views)
        kind = view_format(item_view)
        message = f"{kind.upper()} repetido." if kind in identifiers.IDENTIFIER_KINDS else None
        message = message or "Valor repetido."
    seen: set[Any] = set()
    for path, value in list(_list_items(rule, obj, prefix, errors)):
        key = _unique_key(value)
        if key in seen:
            errors.setdefault(path, message)
        seen.add(key)


_RULE_FUNCTIONS = {
    "differ": _rule_differ,
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


def portfolio_code(data: Mapping[str, Any]) -> str | None:
    """The workflow's portfolio code, if it has one."""
    code = _get(data, "portfolio.code")
    return code if isinstance(code, str) else None


def waived(schemas: View, data: Mapping[str, Any]) -> bool:
    """Whether ``x-required-unless-portfolio`` of these schemas names the workflow's
    portfolio: the property may then be left out."""
    code = portfolio_code(data)
    return code is not None and any(
        isinstance(s.get(UNLESS_PORTFOLIO), list) and code in s[UNLESS_PORTFOLIO] for s in schemas
    )


def _waive_required(props, value, prefix, ctx, errors) -> None:
    # A property left out can only have been refused as missing.
    for name, schemas in props.items():
        path = prefix + name
        if name not in value and path in errors and waived(schemas, ctx.data):
            del errors[path]


def apply_rules(raw: View, value, prefix, ctx, errors, views: _Views) -> None:
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
        _waive_required(props, value, prefix, ctx, errors)
        for key, item in value.items():
            if key in props and isinstance(item, dict | list):
                apply_rules(props[key], item, f"{prefix}{key}.", ctx, errors, views)
    elif isinstance(value, list):
        _check_options(own, value, prefix[:-1], ctx, errors)
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                subs = views.items(own, index, expand=False)
                apply_rules(subs, item, f"{prefix}{index}.", ctx, errors, views)


# --- the schema served with a task ------------------------------------------------------


def _limit_items(node: dict[str, Any], data: Mapping[str, Any]) -> None:
    """Limit an ``x-options-from`` array's items to the options in ``data``: ``enum`` when an
    item is nothing but its option keys (or a plain value), else ``anyOf`` one ``const`` per
    key and option, the item's other properties left as declared."""
    options = _get(data, node["x-options-from"])
    raw_keys = node.get("x-options-key")
    keys = tuple(raw_keys) if isinstance(raw_keys, list) and raw_keys else DEFAULT_OPTION_KEYS
    allowed: list[Any] = []
    for option in options if isinstance(options, list) else ():
        item = (
            {k: option[k] for k in keys if k in option} if isinstance(option, Mapping) else option
        )
        if item not in allowed:
            allowed.append(item)
    items = dict(node["items"]) if isinstance(node.get("items"), dict) else {}
    declared = items.get("properties")
    only_keys = not isinstance(declared, dict) or (
        set(declared) <= set(keys) and items.get("additionalProperties") is False
    )
    if only_keys or not all(isinstance(a, Mapping) for a in allowed):
        items["enum"] = allowed
    else:
        items["anyOf"] = [
            {"properties": {k: {"const": v} for k, v in a.items()}, "required": list(a)}
            for a in allowed
        ] or [False]
    node["items"] = items


def _drop_required(node: Any, names: set[str]) -> None:
    """Remove ``names`` from the ``required`` lists of one object schema (its allOf parts and
    if/then/else branches too, not its properties' own schemas)."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get("required"), list):
        node["required"] = [n for n in node["required"] if n not in names]
    for key in ("allOf", "anyOf", "oneOf"):
        for part in node.get(key) if isinstance(node.get(key), list) else ():
            _drop_required(part, names)
    for key in ("if", "then", "else"):
        _drop_required(node.get(key), names)


# Values a copy may share: nothing can change them in place.
_SHARED = (str, int, float, bool, type(None), date, datetime, time, Decimal, tuple, bytes)


def copied(node: Any) -> Any:
    """What ``copy.deepcopy`` gives for a JSON-like value (a schema, workflow data), at a
    fraction of its cost: dicts and lists copied by a plain walk (no memo, no dispatch),
    values nothing can change in place shared, anything else deep-copied."""
    if isinstance(node, dict):
        return {k: copied(v) for k, v in node.items()}
    if isinstance(node, list):
        return [copied(v) for v in node]
    if isinstance(node, _SHARED) and (not isinstance(node, tuple) or _all_shared(node)):
        return node
    return copy.deepcopy(node)


def _all_shared(values: tuple[Any, ...]) -> bool:
    return all(
        isinstance(v, _SHARED) and (not isinstance(v, tuple) or _all_shared(v)) for v in values
    )


def served_schema(
    schema: Mapping[str, Any], data: Mapping[str, Any], *, limit_options: bool = True
) -> dict[str, Any]:
    """The form's schema as it applies to one task, for clients that read only the schema:
    each ``x-options-from`` array's items are limited to the options in the workflow's
    ``data`` (``items.enum`` or ``items.anyOf``), and a property whose ``x-required-unless-portfolio`` names the
    workflow's portfolio is no longer required. Validation accepts exactly what this schema
    describes for these two keywords; the source schema is not changed. The page asks for the
    required part only (``limit_options=False``): it draws the options from the context."""
    served = copied(dict(schema))
    stack: list[Any] = [served]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if limit_options and isinstance(node.get("x-options-from"), str):
            _limit_items(node, data)
        props = node.get("properties")
        if isinstance(props, dict):
            names = {
                n for n, sub in props.items() if isinstance(sub, dict) and waived((sub,), data)
            }
            if names:
                _drop_required(node, names)
        stack.extend(node.values())
    return served
