"""Server-side validation of task form data: the entry point.

A form is a JSON Schema (draft 2020-12) kept beside the BPMN. We validate with
``jsonschema`` (``engine.forms.keywords``) plus formats that are really enforced
(``engine.forms.formats``) and a few extensions:

- ``x-accept``: on a ``format: file`` property, the accepted content types (or file
  kinds, e.g. ``"certificate"``).
- ``x-rules``: cross-field rules on an object schema (the form itself or an array's
  ``items``); see ``engine.forms.rules``.
- ``x-options-from``: on an array property, the dotted path in the workflow data
  whose list holds the allowed items (e.g. ``"portfolio.operations"``).
- ``x-secret`` (value must never be logged or shown back), ``x-prefill: false``
  (do not prefill from workflow data), ``x-messages`` (``{keyword: message}``
  overriding our message for one property).

What a form declares is read once, by the schema view (``engine.forms.schema``). Errors come
back as ``{field path: message}``; paths are dotted (``filhos.0.cnes``) and ``""`` means the
form as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.forms.cleaning import Cleaner, is_junk
from engine.forms.compiled import compile_validity
from engine.forms.conditions import hidden_fields
from engine.forms.context import FormContext, FormInvalid
from engine.forms.formats import format_checker
from engine.forms.keywords import FormValidator
from engine.forms.messages import FORM_INVALID, FORM_PATH, schema_errors
from engine.forms.rules import apply_rules, copied
from engine.forms.schema import form_view

__all__ = ["prefill", "secret_fields", "strip_secrets", "uses_rule", "validate_form"]


def validate_form(schema: dict, submitted: Mapping, ctx: FormContext) -> dict:
    """Clean and validate submitted form data; return the cleaned data or raise FormInvalid.

    Cleaning strips strings, drops blank strings, properties the schema does not
    declare and fields their condition hides, stores identifiers normalized and integral numbers as ints. Secret values are
    kept in the result: the caller removes them (``strip_secrets``) before logging or
    auditing.
    """
    if not isinstance(submitted, Mapping) or is_junk(submitted):
        raise FormInvalid({FORM_PATH: FORM_INVALID})
    view = form_view(schema)
    views = view.views
    root = views.root  # the same content as schema
    cleaner = Cleaner(views)
    cleaned = cleaner.clean(views.expand((root,)), submitted)
    cleaned = dict(cleaned)  # a root schema that says nothing about objects keeps a Mapping
    # A field its condition hides is neither validated nor kept (engine.forms.conditions).
    hidden = hidden_fields(root, cleaned)
    cleaned = {k: v for k, v in cleaned.items() if k not in hidden}
    checker = format_checker(ctx)
    checker.lookup_file.prefetch(cleaner.file_ids)
    errors = {p: m for p, m in cleaner.errors.items() if p.split(".", 1)[0] not in hidden}
    # Most submissions are valid: the compiled schema says so without jsonschema's search
    # for errors (engine.forms.compiled), which runs only when it cannot.
    valid = views.memo(("validity",), lambda: compile_validity(root))
    if not valid(cleaned, checker):
        # The schema's resolver (its registry, with the form as root) is built once per form
        # and kept with its views: it depends on the schema only, and building it was an
        # eighth of a validation. The validator is made per call, with this call's checker.
        resolver = views.memo(("resolver",), lambda: FormValidator(root)._resolver)
        validator = FormValidator(root, format_checker=checker, _resolver=resolver)
        for path, message in schema_errors(validator, cleaned).items():
            errors.setdefault(path, message)
    if view.has_rules:
        apply_rules((root,), cleaned, "", ctx, errors, views)
    if errors:
        raise FormInvalid(errors, cleaned)
    return cleaned


def prefill(schema: dict, data: Mapping) -> dict:
    """Initial values for the form's top-level properties, taken from workflow data."""
    names = form_view(schema).prefill_names
    return {name: copied(data[name]) for name in names if name in data}


def uses_rule(schema: dict, rule: str) -> bool:
    """Whether any x-rules entry of the form (or of a schema it refers to) is ``rule``."""
    return rule in form_view(schema).rule_names


def secret_fields(schema: dict) -> set[str]:
    """Dotted paths of x-secret properties; ``*`` stands for any array index."""
    return set(form_view(schema).secret_paths)


def strip_secrets(schema: dict, data: Mapping) -> dict:
    """A copy of data without the x-secret values (for logs, audit payloads, pages)."""
    result = copied(dict(data))
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
