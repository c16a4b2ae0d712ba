"""Conditional fields: which fields of a form its conditions show, and the review step.

The rule (docs/adding-a-process.md, "Campos condicionais"): a condition is an ``if`` with a
``then`` and/or an ``else`` at the form's top level — on the schema itself or on an entry of
its ``allOf``, and again inside a branch (a condition nested in ``then`` applies only when
its parent holds). The fields a branch names in its ``required`` list, and that the form
does not require everywhere, are *conditional*: shown only when their branch applies
(``then`` when the ``if`` holds, ``else`` when it does not). A field several branches name is
shown when any of them applies.

A hidden field is dropped from the submitted data before validation: it is never validated
and never kept, so no error is ever shown on a field the user cannot see. ``dependentRequired``
hides nothing (both fields are on the page); it only makes its fields required together.

``x-review: true`` on the schema (or ``"ui:review": true`` in the UI hints) asks the task
page for a review step ("Resumo da solicitação") before the form is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator

from engine.forms.resolve import _views_of

__all__ = [
    "Condition",
    "check_conditions",
    "conditions",
    "controlling_fields",
    "drop_hidden",
    "hidden_fields",
    "show_rules",
    "shown_fields",
    "wants_review",
]

# A chain of conditions longer than this is not a form (and would never settle).
_MAX_CONDITIONS = 200


@dataclass(frozen=True, eq=False)
class Condition:
    """One ``if`` of the form, with what each of its branches shows."""

    when: Mapping[str, Any]
    then: tuple[str, ...]  # fields shown when the ``if`` holds
    otherwise: tuple[str, ...]  # fields shown when it does not
    parent: Condition | None = None
    parent_side: bool = True  # in the parent's then (True) or else (False)

    @cached_property
    def _validator(self) -> Draft202012Validator:
        return Draft202012Validator(dict(self.when))

    def holds(self, data: Mapping[str, Any]) -> bool:
        return self._validator.is_valid(dict(data))

    def applies(self, side: bool, data: Mapping[str, Any]) -> bool:
        """Whether the branch ``side`` (True: then, False: else) applies to ``data``."""
        if self.parent is not None and not self.parent.applies(self.parent_side, data):
            return False
        return self.holds(data) is side

    def simple(self) -> list[tuple[str, list[Any]]] | None:
        """The ``if`` as (field, allowed values) pairs all of which must hold, when it is
        that simple (``const``/``enum`` on required top-level fields); else None."""
        when = self.when
        if set(when) - {"properties", "required", "type"}:
            return None
        props = when.get("properties") if isinstance(when.get("properties"), dict) else {}
        required = set(when.get("required") or ())
        terms = []
        for name, sub in props.items():
            if not isinstance(sub, dict) or name not in required or set(sub) - {"const", "enum"}:
                return None
            if "const" in sub:
                terms.append((name, [sub["const"]]))
            elif isinstance(sub.get("enum"), list):
                terms.append((name, list(sub["enum"])))
            else:
                return None
        if set(required) - set(props):
            return None
        return terms


def _names(branch: Any) -> list[str]:
    listed = branch.get("required") if isinstance(branch, dict) else None
    return [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []


def _collect(
    schema: Any,
    everywhere: set[str],
    parent: Condition | None,
    side: bool,
    out: list[Condition],
    depth: int = 0,
) -> None:
    if not isinstance(schema, dict) or depth > 8 or len(out) >= _MAX_CONDITIONS:
        return
    parts = [schema] + [p for p in schema.get("allOf") or () if isinstance(p, dict)]
    for part in parts:
        if not isinstance(part.get("if"), dict):
            continue
        condition = Condition(
            when=part["if"],
            then=tuple(n for n in _names(part.get("then")) if n not in everywhere),
            otherwise=tuple(n for n in _names(part.get("else")) if n not in everywhere),
            parent=parent,
            parent_side=side,
        )
        out.append(condition)
        _collect(part.get("then"), everywhere, condition, True, out, depth + 1)
        _collect(part.get("else"), everywhere, condition, False, out, depth + 1)


def conditions(schema: Any) -> tuple[Condition, ...]:
    """The form's conditions (kept with the schema's views)."""
    views = _views_of(schema)

    def build() -> tuple[Condition, ...]:
        root = views.root if isinstance(views.root, dict) else {}
        everywhere = set(_names(root))
        out: list[Condition] = []
        _collect(root, everywhere, None, True, out)
        return tuple(out)

    return views.memo(("conditions",), build)


def _branches(schema: Any) -> dict[str, list[tuple[Condition, bool]]]:
    """Conditional field -> the branches that show it."""
    views = _views_of(schema)

    def build() -> dict[str, list[tuple[Condition, bool]]]:
        found: dict[str, list[tuple[Condition, bool]]] = {}
        for condition in conditions(schema):
            for name in condition.then:
                found.setdefault(name, []).append((condition, True))
            for name in condition.otherwise:
                found.setdefault(name, []).append((condition, False))
        return found

    return views.memo(("condition_branches",), build)


def shown_fields(schema: Any) -> frozenset[str]:
    """Every field some condition shows (and so hides when it does not apply)."""
    return frozenset(_branches(schema))


def controlling_fields(schema: Any) -> frozenset[str]:
    """The fields whose answers the conditions read (the page offers a round trip on them)."""
    names: set[str] = set()
    for condition in conditions(schema):
        names.update(condition.when.get("properties") or ())
        names.update(n for n in condition.when.get("required") or () if isinstance(n, str))
    return frozenset(names)


def hidden_fields(schema: Any, data: Mapping[str, Any]) -> set[str]:
    """The conditional fields hidden for ``data``. A hidden field's own value never shows
    another: its value is dropped and the conditions read again until nothing changes."""
    branches = _branches(schema)
    if not branches:
        return set()
    current = dict(data) if isinstance(data, Mapping) else {}
    hidden: set[str] = set()
    for _ in range(len(branches) + 1):
        hidden = {
            name
            for name, where in branches.items()
            if not any(c.applies(side, current) for c, side in where)
        }
        if not hidden & current.keys():
            break
        current = {k: v for k, v in current.items() if k not in hidden}
    return hidden


def drop_hidden(schema: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the values of the fields its conditions hide."""
    hidden = hidden_fields(schema, data)
    return {k: v for k, v in data.items() if k not in hidden}


def _page_value(value: Any) -> str:
    """A value as the task page posts it (booleans as "true"/"false")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def show_rules(schema: Any) -> dict[str, str | None]:
    """For the page's script: field -> when it shows, as JSON (a list of alternatives, each
    a list of ``[field, [values], side]`` terms: the field's posted value is among the
    values, or is not when side is false); None when a condition is too complex for the
    script (the page then leaves it to the server's round trip)."""
    out: dict[str, str | None] = {}
    for name, where in _branches(schema).items():
        alternatives = []
        for condition, side in where:
            terms: list[list[Any]] | None = []
            node: Condition | None = condition
            wanted = side
            while node is not None and terms is not None:
                simple = node.simple()
                if simple is None or (len(simple) != 1 and not wanted):
                    terms = None
                    break
                for field, values in simple:
                    terms.append([field, [_page_value(v) for v in values], wanted])
                wanted = node.parent_side
                node = node.parent
            if terms is None:
                alternatives = None
                break
            alternatives.append(terms)
        out[name] = json.dumps(alternatives) if alternatives is not None else None
    return out


def wants_review(schema: Any, ui: Mapping[str, Any] | None = None) -> bool:
    """Whether the page shows a summary to confirm before sending (``x-review: true``)."""
    flagged = isinstance(schema, dict) and schema.get("x-review") is True
    return flagged or (isinstance(ui, Mapping) and ui.get("ui:review") is True)


def _condition_fields(part: dict) -> list[tuple[str, Any]]:
    """(where, field name) for every field a condition names."""
    named: list[tuple[str, Any]] = []
    when = part.get("if") if isinstance(part.get("if"), dict) else {}
    for name in when.get("properties") or {}:
        named.append(("if/properties", name))
    for name in when.get("required") or ():
        named.append(("if/required", name))
    for key in ("then", "else"):
        branch = part.get(key) if isinstance(part.get(key), dict) else {}
        for name in branch.get("required") or ():
            named.append((f"{key}/required", name))
        for name in branch.get("properties") or {}:
            named.append((f"{key}/properties", name))
    return named


def check_conditions(schema: Any, ui: Any = None) -> list[str]:
    """Deploy check: every field a top-level condition or ``dependentRequired`` names exists;
    ``x-review`` is true or false."""
    if not isinstance(schema, dict):
        return []
    views = _views_of(schema)
    known = set(views.declared(views.expand((schema,), conditional=False)))
    problems: list[str] = []

    def walk(node: Any, at: str, depth: int) -> None:
        if not isinstance(node, dict) or depth > 8:
            return
        parts = [(at or "/", node)] + [
            (f"{at}/allOf/{i}", p)
            for i, p in enumerate(node.get("allOf") or ())
            if isinstance(p, dict)
        ]
        for where, part in parts:
            if "if" not in part:
                continue
            for key, name in _condition_fields(part):
                if name not in known:
                    problems.append(f"{where}/{key}: condição com campo desconhecido {name!r}.")
            for key in ("then", "else"):
                walk(part.get(key), f"{where}/{key}", depth + 1)

    walk(schema, "", 0)
    depends = schema.get("dependentRequired")
    for key, listed in depends.items() if isinstance(depends, dict) else ():
        for name in [key, *(listed if isinstance(listed, list) else [])]:
            if name not in known:
                problems.append(f"/dependentRequired: campo desconhecido {name!r}.")
    if "x-review" in schema and not isinstance(schema["x-review"], bool):
        problems.append("/x-review deve ser true ou false.")
    if isinstance(ui, dict) and "ui:review" in ui and not isinstance(ui["ui:review"], bool):
        problems.append("ui:review deve ser true ou false.")
    return problems
