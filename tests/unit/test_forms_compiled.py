"""The compiled validity of a form (engine.forms.compiled) says "valid" exactly when
jsonschema finds no error, on every deployed form and on each keyword's edge cases; and a
valid submission is not searched for errors."""

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import identifiers
from engine.forms import FileInfo, FormContext, FormInvalid, validate_form
from engine.forms.compiled import _BUILDERS, _KEYWORDS, _LEAVES, _unknown, compile_validity
from engine.forms.formats import format_checker
from engine.forms.keywords import FormValidator
from engine.forms.messages import REQUIRED

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
FORMS = sorted(PROCESSES.glob("**/*.schema.json"))

FILES = {
    "f-cer": FileInfo("f-cer", "application/pkix-cert", "certificate", 900),
    "f-pfx": FileInfo("f-pfx", "application/x-pkcs12", "certificate_with_key", 2400),
    "f-pdf": FileInfo("f-pdf", "application/pdf", "pdf", 1000),
    "f-big": FileInfo("f-big", "application/pdf", "pdf", 9_000_000),
    "f-png": FileInfo("f-png", "image/png", "png", 500),
}


def checker():
    return format_checker(
        FormContext(lookup_file=FILES.get, max_evidence_bytes=5_000_000)  # type: ignore[arg-type]
    )


def jsonschema_valid(schema, instance) -> bool:
    validator = FormValidator(schema, format_checker=checker())
    return next(iter(validator.iter_errors(instance)), None) is None


def compiled_valid(schema, instance) -> bool:
    return compile_validity(schema)(instance, checker())


# ------------------------------------------------------------------ values to try

_rng = random.Random(7)
_IDENTIFIERS = {
    "cpf": [identifiers.generate_cpf(_rng) for _ in range(2)] + ["12345678900", "abc"],
    "cnpj": [identifiers.generate_cnpj(_rng) for _ in range(2)] + ["11222333000180"],
    "cns": [identifiers.generate_cns(_rng) for _ in range(2)] + ["123456789012345"],
    "cnes": [identifiers.generate_cnes(_rng) for _ in range(2)] + ["12", "0000000"],
}
_BY_FORMAT = {
    **_IDENTIFIERS,
    "date": ["2026-12-05", "2026-02-30", "05/12/2026", "2026-1-5"],
    "time": ["09:30", "24:00", "9:30"],
    "email": ["gestor@saude.gov.br", "sem-arroba", "a@b"],
    "ipv4": ["200.10.20.30", "10.0.0.1", "300.1.1.1", "1.2.3"],
    "file": [*FILES, "f-none"],
    "password": ["segredo", ""],
}
_ANY = st.sampled_from([None, True, False, 0, 1, 1.0, 2.5, -3, "", "x", "texto livre", [], {}])


def values_for(schema, depth: int = 0) -> st.SearchStrategy:
    """Values near what the schema asks (its options, formats, bounds) and far from it."""
    if not isinstance(schema, dict):
        return _ANY
    options: list = []
    for key in ("enum", "examples"):
        options += [v for v in schema.get(key, []) if not isinstance(v, (dict, list))]
    if "const" in schema and not isinstance(schema["const"], (dict, list)):
        options.append(schema["const"])
    options += _BY_FORMAT.get(schema.get("format"), [])
    for bound in ("minLength", "maxLength"):
        if bound in schema:
            options += ["a" * max(0, schema[bound] + d) for d in (-1, 0, 1)]
    if "minimum" in schema:
        options += [schema["minimum"] + d for d in (-1, 0, 1)] + [float(schema["minimum"])]
    strategies = [_ANY]
    if options:
        strategies.append(st.sampled_from(options))
    kind = schema.get("type")
    if depth < 3 and (kind == "object" or "properties" in schema):
        strategies.append(objects_for(schema, depth + 1))
    if depth < 3 and (kind == "array" or "items" in schema):
        low, high = schema.get("minItems", 0), schema.get("maxItems", 3)
        items = values_for(schema.get("items", {}), depth + 1)
        strategies.append(st.lists(items, min_size=max(0, low - 1), max_size=min(high + 1, 5)))
    for part in schema.get("allOf", []) + [schema.get("then"), schema.get("else")]:
        if isinstance(part, dict) and "properties" in part and depth < 3:
            strategies.append(objects_for(part, depth + 1))
    return st.one_of(strategies)


def objects_for(schema: dict, depth: int) -> st.SearchStrategy:
    properties = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []) + [schema.get("then"), schema.get("else")]:
        if isinstance(part, dict):
            properties.update(part.get("properties", {}))
    fields = {name: values_for(sub, depth) for name, sub in properties.items()}
    return st.fixed_dictionaries({}, optional={**fields, "campo_extra": st.sampled_from(["x", 1])})


def _accepted_files(accepted) -> list[str]:
    return [
        file_id
        for file_id, info in FILES.items()
        if info.content_type in accepted
        or info.kind in accepted
        or (info.kind == "certificate_with_key" and "certificate" in accepted)
    ] or list(FILES)


def valid_for(schema, depth: int = 0) -> st.SearchStrategy:
    """Values meant to pass the schema (options, good formats, lengths within bounds), so
    that the compiled "valid" is tried as often as its "invalid"."""
    if not isinstance(schema, dict) or depth > 4:
        return _ANY
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    fmt = schema.get("format")
    if fmt == "file":
        return st.sampled_from(_accepted_files(schema.get("x-accept", [])))
    if fmt in _BY_FORMAT:
        return st.sampled_from(_BY_FORMAT[fmt][:2])
    if "pattern" in schema:
        low, high = schema.get("minLength", 0), schema.get("maxLength", 200)
        return st.from_regex(schema["pattern"]).filter(lambda v: low <= len(v) <= high)
    if kind == "string":
        low = schema.get("minLength", 0)
        return st.text(min_size=low, max_size=max(low, schema.get("maxLength", low + 8)))
    if kind in ("integer", "number"):
        return st.integers(min_value=schema.get("minimum", -5), max_value=100)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        low, high = schema.get("minItems", 0), min(schema.get("maxItems", 3), 4)
        return st.lists(
            valid_for(schema.get("items", {}), depth + 1), min_size=low, max_size=max(low, high),
            unique_by=(lambda v: json.dumps(v, sort_keys=True)) if schema.get("uniqueItems") else None,
        )  # fmt: skip
    if kind == "object" or "properties" in schema:
        properties = dict(schema.get("properties", {}))
        required = set(schema.get("required", []))
        for part in schema.get("allOf", []) + [schema.get("then"), schema.get("else")]:
            if isinstance(part, dict):
                properties.update(part.get("properties", {}))
        fields = {name: valid_for(sub, depth + 1) for name, sub in properties.items()}
        # Every field, or the required ones and some others: a condition's "then" may need
        # fields the form does not require outright.
        return st.one_of(
            st.fixed_dictionaries(fields),
            st.fixed_dictionaries(
                {k: v for k, v in fields.items() if k in required},
                optional={k: v for k, v in fields.items() if k not in required},
            ),
        )
    return _ANY


def submissions_for(schema: dict) -> st.SearchStrategy:
    """Valid-looking submissions, the same with one field swapped for any value, and
    anything near the schema."""

    @st.composite
    def one_changed(draw):
        value = dict(draw(valid_for(schema)))
        names = sorted(set(value) | set(schema.get("properties", {})))
        if names:
            value[draw(st.sampled_from(names))] = draw(_ANY)
        return value

    return st.one_of(valid_for(schema), valid_for(schema), one_changed(), objects_for(schema, 0))


# ------------------------------------------------------------------ the deployed forms


def test_the_forms_are_found():
    assert len(FORMS) >= 30


@pytest.mark.parametrize("path", FORMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_deployed_form_compiles(path):
    # The fast path serves every form the product deploys: none falls back for good.
    assert compile_validity(json.loads(path.read_text())) is not _unknown


@pytest.mark.parametrize("path", FORMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_compiled_validity_agrees_with_jsonschema_on_deployed_forms(path):
    schema = json.loads(path.read_text())
    valid = compile_validity(schema)
    seen = {True: 0, False: 0}

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(submissions_for(schema))
    def agrees(instance):
        expected = jsonschema_valid(schema, instance)
        seen[expected] += 1
        assert valid(instance, checker()) is expected, instance

    agrees()
    assert seen[True] > 0 and seen[False] > 0  # both answers are tried on every form


# ------------------------------------------------------------------ each keyword's edges

CASES = [
    ({"type": "integer"}, [1, 1.0, 1.5, True, "1", None]),
    ({"type": "number"}, [1, 2.5, True, False, "2"]),
    ({"type": ["string", "null"]}, ["a", None, 0, []]),
    ({"type": "boolean"}, [True, False, 0, 1]),
    ({"enum": [1, "a", None]}, [1, 1.0, True, "a", None, False, "b"]),
    ({"enum": [True]}, [True, 1, 1.0]),
    ({"const": 0}, [0, 0.0, False, None]),
    ({"const": False}, [False, 0]),
    ({"minLength": 2, "maxLength": 3}, ["a", "ab", "abcd", ["a"], 5]),
    ({"minItems": 1, "maxItems": 2}, [[], [1], [1, 2, 3], "ab"]),
    ({"minimum": 3}, [2, 3, 3.0, 2.9, True, "1"]),
    ({"maximum": 3, "exclusiveMinimum": 0}, [0, 0.5, 3, 4]),
    ({"multipleOf": 2}, [4, 5, 4.0]),
    ({"pattern": "^[0-9]+$"}, ["123", "12a", 12]),
    ({"uniqueItems": True}, [[1, 2], [1, 1], [1, True], [{"a": 1}, {"a": 1.0}], [[1], [True]]]),
    ({"required": ["a"]}, [{"a": 1}, {}, [], "a"]),
    ({"dependentRequired": {"a": ["b"]}}, [{"a": 1}, {"a": 1, "b": 2}, {"b": 1}]),
    (
        {"properties": {"a": {"type": "string"}}, "additionalProperties": False},
        [{"a": "x"}, {"a": 1}, {"b": 1}, {}, []],
    ),
    (
        {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
        [{"a": "x", "b": 1}, {"b": "x"}],
    ),
    ({"additionalProperties": True}, [{"b": 1}]),
    ({"additionalProperties": {}}, [{"b": 1}]),
    ({"items": {"type": "integer"}}, [[1, 2], [1, "a"], [], {"0": "a"}]),
    ({"items": False}, [[], [1]]),
    ({"items": True}, [[1, "a"]]),
    ({"allOf": [{"minimum": 1}, {"maximum": 2}]}, [0, 1, 2, 3]),
    (
        {
            "if": {"properties": {"k": {"const": "sim"}}, "required": ["k"]},
            "then": {"required": ["v"]},
            "else": {"properties": {"v": False}},
        },
        [{"k": "sim"}, {"k": "sim", "v": 1}, {"k": "não", "v": 1}, {"k": "não"}],
    ),
    ({"if": {"const": 1}}, [1, 2]),
    ({"then": {"const": 1}}, [2]),
    ({"format": "cpf"}, [*_IDENTIFIERS["cpf"], 123]),
    ({"format": "date"}, ["2026-12-05", "2026-13-01", None]),
    ({"format": "desconhecido"}, ["qualquer"]),
    ({"format": "file", "x-accept": ["certificate"]}, ["f-cer", "f-pfx", "f-pdf", "f-none"]),
    ({"format": "file", "x-accept": ["certificate_with_key"]}, ["f-cer", "f-pfx"]),
    ({"format": "file", "x-accept": ["application/pdf"]}, ["f-pdf", "f-big", "f-png"]),
    ({"title": "só anotações", "x-secret": True, "readOnly": True, "examples": [1]}, [1, "a"]),
    (True, [1, None]),
    (False, [1, None]),
]


@pytest.mark.parametrize("schema, instances", CASES, ids=lambda c: json.dumps(c)[:60])
def test_each_keyword_agrees_with_jsonschema(schema, instances):
    for instance in instances:
        assert compiled_valid(schema, instance) is jsonschema_valid(schema, instance), instance


@pytest.mark.parametrize(
    "schema",
    [
        {"not": {"const": 1}},
        {"anyOf": [{"const": 1}]},
        {"$ref": "#/$defs/a", "$defs": {"a": {"const": 1}}},
        {"properties": {"a": {"oneOf": [{}]}}},
    ],
)
def test_a_keyword_not_written_out_leaves_the_whole_form_to_jsonschema(schema):
    # Its answer is "not known valid" even for valid data, so jsonschema always runs.
    assert compile_validity(schema) is _unknown
    assert compiled_valid(schema, {"a": 2}) is False


def test_every_keyword_of_the_validator_is_written_out_or_refused():
    # A keyword jsonschema gains (or we add to FormValidator) must not be skipped silently.
    handled = set(_BUILDERS) | _LEAVES
    refused = {"$ref", "$dynamicRef", "anyOf", "oneOf", "not", "contains", "dependentSchemas",
               "patternProperties", "prefixItems", "propertyNames", "unevaluatedItems",
               "unevaluatedProperties"}  # fmt: skip
    assert set(_KEYWORDS) == handled | refused
    for keyword in refused:
        assert compile_validity({keyword: {}}) is _unknown


def test_a_surprise_while_checking_sends_the_data_to_jsonschema():
    # A format check that raises something unexpected: the answer is "not known valid".
    valid = compile_validity({"type": "string", "format": "file"})
    assert valid("f-pdf", checker()) is True
    assert valid("f-pdf", object()) is False  # type: ignore[arg-type]


# ------------------------------------------------------------------ validate_form uses it


SCHEMA = {
    "type": "object",
    "required": ["cpf", "nome"],
    "properties": {
        "cpf": {"type": "string", "format": "cpf"},
        "nome": {"type": "string", "minLength": 2},
    },
}


def test_a_valid_submission_is_not_searched_for_errors(monkeypatch):
    def searched(*args, **kwargs):
        raise AssertionError("jsonschema searched a valid submission")

    monkeypatch.setattr(FormValidator, "iter_errors", searched)
    cpf = _IDENTIFIERS["cpf"][0]
    ctx = FormContext(lookup_file=FILES.get)  # type: ignore[arg-type]
    assert validate_form(SCHEMA, {"cpf": cpf, "nome": "Ana"}, ctx) == {"cpf": cpf, "nome": "Ana"}


def test_an_invalid_submission_still_gets_its_messages_at_the_fields():
    ctx = FormContext(lookup_file=FILES.get)  # type: ignore[arg-type]
    with pytest.raises(FormInvalid) as raised:
        validate_form(SCHEMA, {"cpf": "12345678900", "nome": "A"}, ctx)
    assert set(raised.value.errors) == {"cpf", "nome"}
    assert raised.value.errors["cpf"] == "Dígitos verificadores do CPF não conferem."
    with pytest.raises(FormInvalid) as raised:
        validate_form(SCHEMA, {"nome": "Ana"}, ctx)
    assert raised.value.errors == {"cpf": REQUIRED}
