"""Resolving a form's JSON Schema: which schemas apply to one value, worked out once per form.

A property may be described in several places (allOf parts, if/then branches, $refs). A
"view" is the tuple of every schema that applies to one value. ``_views_of`` keeps the views
of each form it is asked about (found by identity, checked by equality), so validation, the
schema description (``engine.forms.schema``) and the model checks share one resolution.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

# Submitted JSON nested deeper than this is junk, and schemas deeper than this are not
# described: refusing it early keeps every recursive walk far from the recursion limit.
MAX_DEPTH = 32

_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_CONDITIONAL = ("if", "then", "else")

View = tuple[Any, ...]

# Keywords that make validation run engine.forms.rules over the cleaned data.
_RULE_KEYWORDS = ("x-rules", "x-options-from", "x-required-unless-portfolio")


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
    """(Any ``format: file``?, any of _RULE_KEYWORDS?, the x-rules' names) anywhere in
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
            rules = rules or any(k in node for k in _RULE_KEYWORDS)
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
        self.has_files, self.has_rules, self.rule_names = _mentions(root)

    def memo(self, key: tuple, build: Any) -> Any:
        """What ``build()`` gives, kept under ``key`` (for descriptions built on the views)."""
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = build()
        return value

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


# --- reading a view ------------------------------------------------------------------


def first(view: View, keyword: str, kind: type | tuple[type, ...] = object) -> Any:
    """The first value of ``keyword`` of the given type among the view's schemas."""
    for schema in view:
        value = schema.get(keyword)
        if value is not None and isinstance(value, kind):
            return value
    return None


def view_format(view: View) -> str | None:
    return first(view, "format", str)


def describes_object(view: View) -> bool:
    for schema in view:
        if schema.get("type") == "object":
            return True
        if any(k in schema for k in ("properties", "patternProperties", "additionalProperties")):
            return True
    return False


def field_view(view: View, dotted: str, views: _Views) -> View:
    for part in dotted.split("."):
        view = views.properties(view).get(part, ())
    return view


def title_of(view: View, fallback: str) -> str:
    for schema in view:
        if isinstance(schema.get("title"), str):
            return schema["title"]
    return fallback
