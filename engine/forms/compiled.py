"""A form's schema compiled to one question: is this data valid?

``jsonschema`` finds every error of a submission, with its path, so that each field gets its
message. A task completion's data is nearly always valid, and then all that machinery (a
validator per call, an error generator per keyword and per value, the scope and path kept
for errors that never come) answers "no errors" at a tenth of a completion's own work. So a
form is compiled once into nested closures that answer only whether the data is valid; when
they say yes the errors are not looked for, and when they say no ``jsonschema`` looks for
them as before (``engine.forms.validation``).

The closures hold exactly when ``FormValidator`` finds no error (a hypothesis test checks it
on every deployed form): the keywords that descend are written out here with jsonschema's
own rules, the others run jsonschema's own keyword functions (ours among them, ``x-accept``
and ``dependentRequired``), and formats go through the call's format checker. A schema with
a keyword of the validator this does not know (``$ref``, ``anyOf``, ``not``…) is not
compiled: its answer is always "not known to be valid", which sends it the whole way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import FormatChecker

from engine.forms.keywords import FormValidator

__all__ = ["Validity", "compile_validity"]

# (data, the call's format checker) -> whether FormValidator would find no error
Validity = Callable[[Any, FormatChecker], bool]
_Check = Callable[[Any, "_Env"], bool]

_TYPES = FormValidator.TYPE_CHECKER
_KEYWORDS = FormValidator.VALIDATORS

# Keywords that look at the value alone (no subschema): jsonschema's own function runs.
_LEAVES = frozenset(
    {
        "enum",
        "const",
        "uniqueItems",
        "pattern",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "x-accept",
    }
)


class _Env:
    """What a keyword function asks of its validator: types, and this call's format checker."""

    __slots__ = ("format_checker",)

    def __init__(self, format_checker: FormatChecker) -> None:
        self.format_checker = format_checker

    @staticmethod
    def is_type(instance: Any, kind: str) -> bool:
        return _TYPES.is_type(instance, kind)


class _NotCompiled(Exception):
    """The schema uses a keyword this module does not write out."""


def compile_validity(schema: Any) -> Validity:
    """The validity function of a form's schema (``schema`` is never changed afterwards: the
    caller keeps it with the form's views)."""
    try:
        check = _compile(schema)
    except _NotCompiled:
        return _unknown

    def valid(instance: Any, format_checker: FormatChecker) -> bool:
        try:
            return check(instance, _Env(format_checker))
        except Exception:  # noqa: BLE001 - any surprise: let jsonschema say what is wrong
            return False

    return valid


def _unknown(instance: Any, format_checker: FormatChecker) -> bool:
    return False


def _always(instance: Any, env: _Env) -> bool:
    return True


def _never(instance: Any, env: _Env) -> bool:
    return False


def _all(checks: list[_Check]) -> _Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    checks_ = tuple(checks)

    def check(instance: Any, env: _Env) -> bool:
        return all(each(instance, env) for each in checks_)

    return check


def _compile(schema: Any) -> _Check:
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, Mapping):
        raise _NotCompiled
    checks: list[_Check] = []
    for keyword, value in schema.items():
        if keyword not in _KEYWORDS:
            continue  # an annotation (title, x-secret…), or "then"/"else", read with "if"
        build = _BUILDERS.get(keyword)
        if build is not None:
            checks.append(build(value, schema))
        elif keyword in _LEAVES:
            checks.append(_leaf(_KEYWORDS[keyword], value, schema))
        else:
            raise _NotCompiled
    return _all(checks)


def _leaf(function: Any, value: Any, schema: Any) -> _Check:
    def check(instance: Any, env: _Env) -> bool:
        for _error in function(env, value, instance, schema):
            return False
        return True

    return check


# ------------------------------------------------------------------ the written-out keywords


def _type(value: Any, schema: Any) -> _Check:
    if not isinstance(value, (str, list)):
        raise _NotCompiled
    kinds = (value,) if isinstance(value, str) else tuple(value)
    if kinds == ("string",):
        return lambda instance, env: isinstance(instance, str)
    if kinds == ("object",):
        return lambda instance, env: isinstance(instance, dict)
    if kinds == ("array",):
        return lambda instance, env: isinstance(instance, list)
    is_type = _TYPES.is_type
    return lambda instance, env: any(is_type(instance, kind) for kind in kinds)


def _required(value: Any, schema: Any) -> _Check:
    names = tuple(value)

    def check(instance: Any, env: _Env) -> bool:
        if not isinstance(instance, dict):
            return True
        return all(name in instance for name in names)

    return check


def _properties(value: Any, schema: Any) -> _Check:
    if not isinstance(value, Mapping):
        raise _NotCompiled
    subs = tuple((name, _compile(sub)) for name, sub in value.items())

    def check(instance: Any, env: _Env) -> bool:
        if not isinstance(instance, dict):
            return True
        return all(name not in instance or sub(instance[name], env) for name, sub in subs)

    return check


def _additional_properties(value: Any, schema: Any) -> _Check:
    if "patternProperties" in schema:
        raise _NotCompiled
    declared = frozenset(schema.get("properties", {}))
    if value is True or (isinstance(value, Mapping) and not value):
        return _always
    if isinstance(value, Mapping):
        sub = _compile(value)

        def each_extra(instance: Any, env: _Env) -> bool:
            if not isinstance(instance, dict):
                return True
            for name, item in instance.items():
                if name not in declared and not sub(item, env):
                    return False
            return True

        return each_extra
    if value:  # a truthy non-schema: jsonschema lets any extra through
        return _always

    def no_extra(instance: Any, env: _Env) -> bool:
        if not isinstance(instance, dict):
            return True
        return all(name in declared for name in instance)

    return no_extra


def _items(value: Any, schema: Any) -> _Check:
    if "prefixItems" in schema:
        raise _NotCompiled
    sub = _compile(value)

    def check(instance: Any, env: _Env) -> bool:
        if not isinstance(instance, list):
            return True
        return all(sub(item, env) for item in instance)

    return check


def _length(bound: str, kind: type) -> Callable[[Any, Any], _Check]:
    def build(value: Any, schema: Any) -> _Check:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _NotCompiled
        if bound == "min":
            return lambda instance, env: not isinstance(instance, kind) or len(instance) >= value
        return lambda instance, env: not isinstance(instance, kind) or len(instance) <= value

    return build


def _minimum(value: Any, schema: Any) -> _Check:
    is_type = _TYPES.is_type
    return lambda instance, env: not is_type(instance, "number") or not instance < value


def _format(value: Any, schema: Any) -> _Check:
    return lambda instance, env: env.format_checker.conforms(instance, value)


def _all_of(value: Any, schema: Any) -> _Check:
    if not isinstance(value, list):
        raise _NotCompiled
    return _all([_compile(sub) for sub in value])


def _if(value: Any, schema: Any) -> _Check:
    condition = _compile(value)
    then = _compile(schema["then"]) if "then" in schema else _always
    otherwise = _compile(schema["else"]) if "else" in schema else _always

    def check(instance: Any, env: _Env) -> bool:
        return (then if condition(instance, env) else otherwise)(instance, env)

    return check


_BUILDERS: dict[str, Callable[[Any, Any], _Check]] = {
    "type": _type,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "items": _items,
    "minLength": _length("min", str),
    "maxLength": _length("max", str),
    "minItems": _length("min", list),
    "maxItems": _length("max", list),
    "minimum": _minimum,
    "format": _format,
    "allOf": _all_of,
    "if": _if,
}
