"""Our jsonschema validator: draft 2020-12 with ``required`` errors at the missing property,
the ``x-accept`` keyword for files, and a faster ``uniqueItems`` for lists of objects."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema import validators as jsonschema_validators

from engine.forms.context import FileInfo
from engine.forms.messages import KEY_MISSING, REQUIRED, accept_labels, evidence_too_large
from engine.forms.schema import WITH_KEY


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


# The kinds of evidence files (engine/files/content.py); certificates have no size limit here.
EVIDENCE = frozenset({"pdf", "png"})


def _file_matches(info: FileInfo, accepted: list) -> bool:
    if info.content_type in accepted or (info.kind is not None and info.kind in accepted):
        return True
    return info.kind == WITH_KEY and "certificate" in accepted  # a .pfx is a certificate too


def _x_accept(validator, accepted, instance, schema):
    if schema.get("format") != "file" or not isinstance(instance, str):
        return
    if not isinstance(accepted, list) or not accepted:
        return
    lookup = getattr(validator.format_checker, "lookup_file", None)
    info = lookup(instance) if lookup else None
    if info is not None and _file_matches(info, accepted):
        limit = getattr(validator.format_checker, "max_evidence_bytes", None)
        if limit and info.size is not None and info.size > limit and info.kind in EVIDENCE:
            yield ValidationError(evidence_too_large(info.size, limit))
        return
    if info is None:
        return
    if info.kind == "certificate" and WITH_KEY in accepted:  # a .cer where the key is needed
        yield ValidationError(KEY_MISSING)
    else:
        yield ValidationError(f"Tipo de arquivo não aceito. Envie: {accept_labels(accepted)}.")


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


FormValidator = jsonschema_validators.extend(
    Draft202012Validator,
    {
        "required": _required,
        "dependentRequired": _dependent_required,
        "uniqueItems": _unique_items,
        "x-accept": _x_accept,
    },
)
