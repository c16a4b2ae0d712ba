"""Cleaning submitted form data before it is validated and stored.

Strings are stripped and identifiers normalized; blank strings and properties the form does
not declare are dropped; numbers are stored so that their JSON text reads back the same on
PostgreSQL (JSONB) and SQLite: an integral float becomes an int (``1e20`` ->
100000000000000000000, ``-0.0`` -> 0) and a non-finite one (NaN, Infinity) is refused at
its field.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from typing import Any

from engine import identifiers
from engine.forms.messages import NOT_FINITE
from engine.forms.resolve import MAX_DEPTH, View, _Views, describes_object, view_format

MAX_INT_BITS = 1024


def is_junk(value: Any) -> bool:
    """Nested deeper than MAX_DEPTH, or an int too big to print: never a form's data."""
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


def _keeps_extra(view: View, key: str) -> bool:
    for schema in view:
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict) and any(re.search(p, key) for p in patterns):
            return True
        extra = schema.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            return True
    return False


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class Cleaner:
    """Cleans one submission; ``file_ids`` gets the values of ``format: file`` fields and
    ``errors`` what cleaning itself refuses (non-finite numbers), by field path."""

    def __init__(self, views: _Views) -> None:
        self.views = views
        self.file_ids: list[str] = []
        self.errors: dict[str, str] = {}

    def number(self, value: float, path: str) -> float | int:
        if not math.isfinite(value):
            self.errors.setdefault(path, NOT_FINITE)
            return value
        # -0.0 and 1e20 are integers: stored as ints, their JSON reads back unchanged.
        return int(value) if value.is_integer() else value

    def numbers(self, value: Any, path: str) -> Any:
        """``value`` with its numbers cleaned, nothing else changed (data the form keeps
        without describing it)."""
        if isinstance(value, float):
            return self.number(value, path)
        if isinstance(value, Mapping):
            return {k: self.numbers(v, _join(path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.numbers(v, _join(path, i)) for i, v in enumerate(value)]
        return value

    def clean(self, view: View, value: Any, path: str = "") -> Any:
        """The cleaned value of ``value``, which ``view`` describes."""
        views = self.views
        if isinstance(value, str):
            value = value.strip()
            kind = view_format(view)
            if value and kind in identifiers.IDENTIFIER_KINDS:
                # When it does not normalize it is kept as typed; the format check reports it.
                with contextlib.suppress(ValueError):
                    value = identifiers.normalize_identifier(kind, value)
            if value and views.has_files and any(s.get("format") == "file" for s in view):
                self.file_ids.append(value)
            return value
        if isinstance(value, float):
            return self.number(value, path)
        if isinstance(value, Mapping) and describes_object(view):
            props = views.properties(view)
            cleaned = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    continue
                if key in props:
                    item = self.clean(props[key], item, _join(path, key))
                elif _keeps_extra(view, key):
                    item = self.numbers(item, _join(path, key))
                else:
                    continue  # input the form does not ask for is ignored, never stored
                # A blank field is an unanswered one: "required" catches it, optional
                # fields with a format are not failed for being empty.
                if isinstance(item, str) and not item:
                    continue
                cleaned[key] = item
            return cleaned
        if isinstance(value, list):
            return [
                self.clean(views.items(view, i), item, _join(path, i))
                for i, item in enumerate(value)
            ]
        return self.numbers(value, path)
