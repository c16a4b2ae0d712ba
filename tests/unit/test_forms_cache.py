"""The kept schema views, the batched file lookup and the uniqueItems shortcut of form
validation: never stale, never mutated, the same answers as without them."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.forms import (
    FileInfo,
    FormContext,
    FormInvalid,
    prefill,
    resolve,
    secret_fields,
    validate_form,
)
from engine.forms.keywords import FormValidator
from engine.forms.messages import FILE_NOT_FOUND


def form(max_length: int = 5, *, secret: bool = False) -> dict:
    """Forms of the same shape; only the constraint (or the secret flag) differs."""
    return {
        "type": "object",
        "required": ["nome"],
        "properties": {
            "nome": {"type": "string", "maxLength": max_length},
            "senha": {"type": "string", "x-secret": secret},
            "itens": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"valor": {"type": "integer", "maximum": max_length}},
                },
            },
        },
    }


def ctx(**fields) -> FormContext:
    return FormContext(lookup_file=lambda file_id: None, **fields)


def errors_of(schema: dict, submitted: dict, context: FormContext | None = None) -> dict:
    try:
        validate_form(schema, submitted, context or ctx())
    except FormInvalid as exc:
        return exc.errors
    return {}


SUBMITTED = {"nome": "abcdef", "itens": [{"valor": 4}, {"valor": 6}]}


# --- the kept views ------------------------------------------------------------------


def test_schemas_of_the_same_shape_with_other_constraints_give_their_own_answers():
    short, long_ = form(5), form(10)
    for _ in range(2):  # both orders, with both already kept
        assert errors_of(short, SUBMITTED) == {
            "nome": "No máximo 5 caracteres (você digitou 6).",
            "itens.1.valor": "Informe um valor menor ou igual a 5.",
        }
        assert errors_of(long_, SUBMITTED) == {}


def test_a_schema_changed_in_place_is_not_answered_from_its_old_views():
    schema = form(10)
    assert errors_of(schema, SUBMITTED) == {}
    assert secret_fields(schema) == set()
    schema["properties"]["nome"]["maxLength"] = 5
    schema["properties"]["senha"]["x-secret"] = True
    assert errors_of(schema, SUBMITTED)["nome"] == "No máximo 5 caracteres (você digitou 6)."
    assert secret_fields(schema) == {"senha"}


def test_an_equal_schema_in_another_object_gives_the_same_answers():
    first, second = form(5), form(5)
    assert errors_of(first, SUBMITTED) == errors_of(second, SUBMITTED)
    assert prefill(first, {"nome": "x"}) == prefill(second, {"nome": "x"}) == {"nome": "x"}


def test_validating_mutates_neither_the_schema_nor_what_is_kept():
    schema = form(5, secret=True)
    before = copy.deepcopy(schema)
    submitted = {"nome": " ab ", "senha": "s", "itens": [{"valor": 1}], "extra": 1}
    cleaned = validate_form(schema, submitted, ctx())
    errors_of(schema, SUBMITTED)
    prefill(schema, {"nome": "x", "senha": "s"})
    cleaned["itens"][0]["valor"] = 99  # the result is the caller's own
    cleaned["nome"] = "changed"
    assert schema == before
    assert resolve._views_of(schema).root == before
    assert validate_form(schema, submitted, ctx()) == {
        "nome": "ab",
        "senha": "s",
        "itens": [{"valor": 1}],
    }


def test_a_forms_references_are_resolved_once_and_answer_as_a_fresh_validator(monkeypatch):
    """The resolver kept with a form's views (its ``$ref``s, its ``$schema``) gives every
    validation the answers a validator built from scratch gives, and is built once."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["periodos"],
        "$defs": {
            "periodo": {
                "type": "object",
                "required": ["inicio"],
                "properties": {"inicio": {"type": "string", "format": "date"}},
            }
        },
        "properties": {
            "periodos": {"type": "array", "maxItems": 3, "items": {"$ref": "#/$defs/periodo"}},
            "nome": {"type": "string", "maxLength": 3},
        },
    }
    built = []
    real_init = FormValidator.__attrs_post_init__

    def counted(self):
        built.append(self._resolver is None)  # None: a registry and resolver to build
        real_init(self)

    monkeypatch.setattr(FormValidator, "__attrs_post_init__", counted)
    cases = [
        {"periodos": [{"inicio": "2026-01-31"}]},
        {"periodos": [{}, {"inicio": "31/01/2026"}], "nome": "abcd"},
        {"nome": "ab"},
        {"periodos": [{"inicio": "2026-01-31"}] * 4},
    ]
    twin = copy.deepcopy(schema)
    for submitted in cases * 2:
        found = errors_of(schema, submitted)
        fresh = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        assert bool(found) == (not fresh.is_valid(submitted)), submitted
        assert errors_of(twin, submitted) == found
    assert errors_of(schema, cases[1]) == {
        "periodos.0.inicio": "Campo obrigatório.",
        "periodos.1.inicio": "Data inválida (use dd/mm/aaaa).",
        "nome": "No máximo 3 caracteres (você digitou 4).",
    }
    # One resolver built per form (this one and its copy), never one per validation.
    assert built.count(True) == 2


def test_secret_fields_gives_a_set_of_its_own_each_time():
    schema = form(5, secret=True)
    fields = secret_fields(schema)
    fields.add("nome")
    fields.discard("senha")
    assert secret_fields(schema) == {"senha"}


def test_kept_views_cannot_be_changed():
    views = resolve._views_of(form(5))
    root_view = views.expand((views.root,))
    props = views.properties(root_view)
    assert isinstance(root_view, tuple) and isinstance(props["nome"], tuple)
    with pytest.raises(TypeError):
        props["nome"] = ()
    with pytest.raises(TypeError):
        views.declared(root_view)["novo"] = ()


def test_an_id_taken_by_another_object_never_finds_the_old_views(monkeypatch):
    # As if a cached schema had been freed and a new one had been given its id.
    old, new = form(10), form(5)
    stale = resolve._Views(copy.deepcopy(old))
    monkeypatch.setitem(resolve._views_cache, id(new), (old, stale))
    assert resolve._views_of(new) is not stale
    assert errors_of(new, SUBMITTED)["nome"] == "No máximo 5 caracteres (você digitou 6)."


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(resolve, "_VIEWS_CACHE_SIZE", 3)
    monkeypatch.setattr(resolve, "_views_cache", type(resolve._views_cache)())
    schemas = [form(n) for n in range(1, 8)]
    for schema in schemas:
        errors_of(schema, SUBMITTED)
    assert len(resolve._views_cache) == 3
    assert (
        errors_of(schemas[0], {"nome": "ab"})["nome"] == "No máximo 1 caractere (você digitou 2)."
    )


def test_rules_reached_only_through_a_ref_still_run():
    schema = {
        "type": "object",
        "$defs": {
            "filho": {
                "type": "object",
                "properties": {"codigos": {"type": "array", "items": {"type": "string"}}},
                "x-rules": [{"rule": "unique", "fields": ["codigos"], "message": "Repetido."}],
            }
        },
        "properties": {"filho": {"$ref": "#/$defs/filho"}},
    }
    submitted = {"filho": {"codigos": ["a", "b", "a"]}}
    assert errors_of(schema, submitted) == {"filho.codigos.2": "Repetido."}


def test_options_are_checked_in_a_form_without_rules():
    schema = {
        "type": "object",
        "properties": {
            "servicos": {
                "type": "array",
                "x-options-from": "portfolio.operations",
                "items": {
                    "type": "object",
                    "properties": {"operacao": {"type": "string"}, "metodo": {"type": "string"}},
                },
            }
        },
    }
    data = {"portfolio": {"operations": [{"operacao": "Enviar", "metodo": "POST"}]}}
    submitted = {"servicos": [{"operacao": "Enviar", "metodo": "POST"}, {"operacao": "Enviar"}]}
    assert errors_of(schema, submitted, ctx(data=data)) == {
        "servicos.1": "Operação não disponível neste portfólio."
    }


# --- files looked up together ---------------------------------------------------------

FILES = {
    "f-pdf": FileInfo("f-pdf", "application/pdf", "evidence"),
    "f-png": FileInfo("f-png", "image/png", "evidence"),
    "f-exe": FileInfo("f-exe", "application/x-msdownload", "evidence"),
}
FILE_FORM = {
    "type": "object",
    "properties": {
        "principal": {"type": "string", "format": "file", "x-accept": ["application/pdf"]},
        "anexo": {"type": "string", "format": "file"},
        "evidencias": {
            "type": "array",
            "items": {"type": "string", "format": "file", "x-accept": ["image/png"]},
        },
        "nome": {"type": "string"},
    },
}
FILE_SUBMISSION = {
    "principal": "f-png",
    "anexo": " f-pdf ",
    "evidencias": ["f-png", "f-exe", "nao-existe", "f-png", "../../etc/passwd"],
    "nome": "f-pdf-is-not-a-file-field",
}
FILE_ERRORS = {
    "principal": "Tipo de arquivo não aceito. Envie: PDF.",
    "evidencias.1": "Tipo de arquivo não aceito. Envie: PNG.",
    "evidencias.2": FILE_NOT_FOUND,
    "evidencias.4": FILE_NOT_FOUND,
}


def test_files_of_a_form_are_looked_up_together_with_the_same_answers():
    asked_one, asked_many = [], []

    def lookup_file(file_id):
        asked_one.append(file_id)
        return FILES.get(file_id)

    def lookup_files(file_ids):
        asked_many.append(list(file_ids))
        return {i: FILES[i] for i in file_ids if i in FILES}

    one_by_one = FormContext(lookup_file=lookup_file)
    assert errors_of(FILE_FORM, FILE_SUBMISSION, one_by_one) == FILE_ERRORS
    assert sorted(asked_one) == ["f-exe", "f-pdf", "f-png", "nao-existe"]
    asked_one.clear()
    together = FormContext(lookup_file=lookup_file, lookup_files=lookup_files)
    assert errors_of(FILE_FORM, FILE_SUBMISSION, together) == FILE_ERRORS
    # each plausible id once, only values of file fields, nothing asked one by one
    assert asked_many == [["f-png", "f-pdf", "f-exe", "nao-existe"]]
    assert asked_one == []


def test_a_failing_batch_falls_back_to_one_by_one():
    def lookup_files(file_ids):
        raise ValueError("badly formed hexadecimal UUID string")

    context = FormContext(lookup_file=FILES.get, lookup_files=lookup_files)
    assert errors_of(FILE_FORM, FILE_SUBMISSION, context) == FILE_ERRORS


def test_a_form_without_file_values_does_not_ask():
    asked = []
    context = FormContext(lookup_file=FILES.get, lookup_files=lambda ids: asked.append(ids))
    assert validate_form(FILE_FORM, {"nome": "x", "evidencias": []}, context) == {
        "nome": "x",
        "evidencias": [],
    }
    assert asked == []


# --- uniqueItems ---------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, 1, 1.0, 0.0, -0.0, 2]) | st.sampled_from("ab"),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xy"), inner, max_size=2)
    ),
    max_leaves=8,
)
UNIQUE = {"type": "array", "uniqueItems": True}


@settings(max_examples=400, deadline=None)
@given(st.lists(json_values, max_size=6))
def test_unique_items_answers_as_jsonschema_does(items):
    ours = list(FormValidator(UNIQUE).iter_errors(items))
    theirs = list(Draft202012Validator(UNIQUE).iter_errors(items))
    assert [e.message for e in ours] == [e.message for e in theirs]


def test_repeated_objects_are_found_and_true_is_not_one():
    check = FormValidator(UNIQUE)
    assert not check.is_valid([{"a": 1}, {"a": [1, {"b": None}]}, {"a": 1.0}])
    assert check.is_valid([{"a": 1}, {"a": True}, {"a": [0]}, {"a": [False]}])


def test_uses_rule_finds_rules_behind_refs_and_only_by_name() -> None:
    from engine import forms as forms_mod

    schema = {
        "type": "object",
        "$defs": {"svc": {"type": "object", "x-rules": [{"rule": "same_uf", "fields": ["a"]}]}},
        "properties": {"s": {"$ref": "#/$defs/svc"}, "note": {"type": "string",
                                                            "description": "same_uf"}},
    }  # fmt: skip
    assert forms_mod.uses_rule(schema, "same_uf")
    assert not forms_mod.uses_rule(schema, "unique")
    assert not forms_mod.uses_rule({"type": "object", "description": "same_uf"}, "same_uf")
