"""The schema view (engine.forms.schema): one description of a form for validation, the page,
the task service and the deploy check; and the deploy check's refusals that come with it."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definitions.check import check_paths
from engine.definitions.service import form_problems, read_bundle
from engine.forms import (
    FileInfo,
    FormContext,
    FormInvalid,
    check_form,
    check_form_schema,
    form_view,
    validate_form,
)
from engine.forms.messages import NOT_FINITE

PROCESSES = Path(__file__).resolve().parents[2] / "processes"


def ctx(**fields) -> FormContext:
    return FormContext(lookup_file=lambda file_id: None, **fields)


def errors_of(schema: dict, submitted: dict, context: FormContext | None = None) -> dict:
    with pytest.raises(FormInvalid) as excinfo:
        validate_form(schema, submitted, context or ctx())
    return excinfo.value.errors


# --- what a field is comes from what it declares --------------------------------------

CERTIFICATE_FORM = {
    "type": "object",
    "properties": {
        "arquivo": {"type": "string", "format": "file", "x-accept": ["certificate"]},
        # Named like a password, but a token: never the certificate's password.
        "senha_token": {"type": "string", "x-secret": True},
        "chave": {"type": "string", "format": "password", "x-secret": True, "writeOnly": True},
        "cnes_do_lugar": {"type": "string", "format": "cnes", "x-register": "cnes"},
        "anexos": {
            "type": "array",
            "maxItems": 5,
            "items": {"type": "string", "format": "file", "x-accept": ["application/pdf"]},
        },
        "fixo": {"type": "string", "readOnly": True},
    },
}


def test_the_password_field_is_the_declared_one_whatever_its_name():
    view = form_view(CERTIFICATE_FORM)
    assert view.upload_password == "chave"
    assert view.field("chave").password and view.field("chave").write_only
    assert not view.field("senha_token").password
    assert view.field("chave").widget == "password"  # drawn hidden without a UI hint
    renamed = json.loads(json.dumps(CERTIFICATE_FORM).replace('"chave"', '"xyz"'))
    assert form_view(renamed).upload_password == "xyz"
    without = json.loads(json.dumps(CERTIFICATE_FORM).replace('"format": "password", ', ""))
    assert form_view(without).upload_password is None


def test_the_view_describes_files_certificates_register_and_readonly_fields():
    view = form_view(CERTIFICATE_FORM)
    assert view.takes_certificate
    assert [f.name for f in view.certificate_fields] == ["arquivo"]
    assert view.uploads == {"arquivo": False, "anexos": True}
    assert view.register_fields == {"cnes_do_lugar": "cnes"}
    assert view.register_field("cnes") == "cnes_do_lugar"
    assert view.readonly_names == ("fixo",)
    assert view.secret_paths == {"senha_token", "chave"}
    data = {"arquivo": "f-1", "anexos": ["f-2", 3, "f-3"], "fixo": "f-4", "extra": "f-5"}
    assert view.file_values(data) == ["f-1", "f-2", "f-3"]
    anexos = view.field("anexos")
    assert anexos.widget == "files" and anexos.item.path == "anexos.*"
    assert anexos.max_items == 5 and anexos.accepts("application/pdf")


def test_fields_behind_refs_and_all_of_are_described_with_their_paths():
    schema = {
        "type": "object",
        "$defs": {
            "filho": {
                "type": "object",
                "required": ["cnes"],
                "properties": {"cnes": {"type": "string", "format": "cnes", "title": "CNES"}},
                "x-rules": [{"rule": "unique", "fields": ["cnes"]}],
            }
        },
        "allOf": [
            {
                "properties": {
                    "filhos": {"type": "array", "maxItems": 9, "items": {"$ref": "#/$defs/filho"}}
                }
            },
            {"if": {"required": ["x"]}, "then": {"properties": {"filhos": {"minItems": 2}}}},
        ],
    }
    ui = {"filhos": {"items": {"cnes": {"ui:placeholder": "0000000"}}}}
    filhos = form_view(schema, ui).field("filhos")
    assert filhos.widget == "rows" and filhos.min_items == 2
    cnes = filhos.item.field("cnes")
    assert (cnes.path, cnes.required, cnes.widget, cnes.mask) == (
        "filhos.*.cnes",
        True,
        "masked",
        "cnes",
    )
    assert cnes.placeholder == "0000000"
    assert filhos.item.rules == ("unique",)


def test_the_view_is_kept_and_cannot_be_changed():
    ui = {"ui:order": ["fixo", "arquivo"]}
    view = form_view(CERTIFICATE_FORM, ui)
    assert form_view(CERTIFICATE_FORM, dict(ui)) is view
    assert view.order[:2] == ("fixo", "arquivo")
    with pytest.raises(FrozenInstanceError):
        view.field("chave").secret = False
    ui["ui:order"] = ["arquivo"]  # hints changed in place get their own description
    assert form_view(CERTIFICATE_FORM, ui).order[0] == "arquivo"
    assert view.order[0] == "fixo"


def test_a_recursive_schema_is_described_without_end():
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#"}, "b": {"$ref": "#"}, "c": {"type": "string"}},
    }
    view = form_view(schema)
    assert [f.name for f in view.fields] == ["a", "b", "c"]
    assert any("recursivo" in p for p in view.problems)


# --- the deploy check refuses what the page cannot draw --------------------------------

DRAWABLE = {
    "type": "object",
    "properties": {
        "nome": {"type": "string", "title": "Nome"},
        "itens": {
            "type": "array",
            "maxItems": 3,
            "items": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    },
}


@pytest.mark.parametrize(
    ("change", "ui", "expected"),
    [
        ({}, {"nome": {"ui:widget": "slider"}}, "campo nome: ui:widget 'slider' desconhecido"),
        ({"nome": {"type": "integer"}}, {"nome": {"ui:widget": "textarea"}},
         "campo nome: ui:widget 'textarea' não serve para um campo do tipo integer"),
        ({"nome": {"type": "boolean"}}, {"nome": {"ui:widget": "select"}},
         "não serve para um campo do tipo boolean"),
        ({}, {"nome": {"ui:widget": "file"}}, 'ui:widget "file" exige format "file"'),
        ({}, {"nome": {"ui:widget": "select"}}, 'ui:widget "select" sem "enum"'),
        ({}, {"nome": {"ui:widget": "masked", "ui:mask": "placa"}}, "máscara 'placa' desconhecida"),
        ({"nome": {"type": "object", "properties": {"a": {"type": "string"}}}}, {},
         "campo nome: objeto fora de uma lista não pode ser desenhado"),
        ({"nome": {"type": "array", "maxItems": 2, "items": {"type": "string"}}}, {},
         "campo nome: lista de valores simples não pode ser desenhada"),
        ({"itens": {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {
            "doc": {"type": "string", "format": "file"}}}}}, {},
         "campo itens.*.doc: arquivos e listas dentro dos itens de uma lista não são enviados"),
        ({"nome": {"type": "integer", "format": "password"}}, {},
         'format "password" só vale em campos de texto'),
    ],
)  # fmt: skip
def test_what_the_page_cannot_draw_is_refused(change, ui, expected):
    schema = json.loads(json.dumps(DRAWABLE))
    schema["properties"].update(change)
    assert check_form(DRAWABLE, {}) == []
    problems = check_form(schema, ui)
    assert any(expected in p for p in problems), problems


def test_two_password_fields_are_refused():
    schema = json.loads(json.dumps(DRAWABLE))
    schema["properties"]["a"] = {"type": "string", "format": "password"}
    assert check_form(schema) == []
    schema["properties"]["b"] = {"type": "string", "format": "password"}
    assert any('mais de um campo com format "password"' in p for p in check_form(schema))


def test_a_field_only_a_branch_declares_is_refused():
    schema = json.loads(json.dumps(DRAWABLE))
    schema["then"] = {"properties": {"escondido": {"type": "string"}}}
    schema["if"] = {"required": ["nome"]}
    assert any("escondido: declarado só em if/then/else" in p for p in check_form(schema)), (
        check_form(schema)
    )


def test_unbounded_arrays_are_refused_wherever_they_are():
    assert check_form_schema(DRAWABLE) == []
    unbounded = json.loads(json.dumps(DRAWABLE))
    del unbounded["properties"]["itens"]["maxItems"]
    unbounded["$defs"] = {"lista": {"type": ["array", "null"], "items": {"type": "string"}}}
    problems = check_form_schema(unbounded)
    assert '/properties/itens: lista sem limite de itens (declare "maxItems").' in problems
    assert '/$defs/lista: lista sem limite de itens (declare "maxItems").' in problems


def test_every_array_of_the_shipped_processes_is_bounded():
    arrays = 0
    for path in PROCESSES.glob("*/*.schema.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        for name, prop in schema["properties"].items():
            if prop.get("type") == "array":
                arrays += 1
                assert isinstance(prop.get("maxItems"), int), (path.name, name)
                assert 1 <= prop["maxItems"] <= 500, (path.name, name)
    assert arrays >= 10


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    name = "credenciamento-rnds"
    shutil.copy(PROCESSES / f"{name}.bpmn", tmp_path / f"{name}.bpmn")
    shutil.copytree(PROCESSES / name, tmp_path / name)
    return tmp_path / f"{name}.bpmn"


def test_processes_check_and_deploy_refuse_a_form_the_page_cannot_draw(bundle_copy: Path):
    assert check_paths([bundle_copy]) == []
    assert form_problems(read_bundle(bundle_copy)) == []
    ui_path = bundle_copy.with_suffix("") / "criar-conta-govbr.ui.json"
    ui = json.loads(ui_path.read_text(encoding="utf-8"))
    ui["nivel_conta"] = {"ui:widget": "carrossel"}
    ui_path.write_text(json.dumps(ui), encoding="utf-8")
    expected = (
        "criar-conta-govbr.schema.json: campo nivel_conta: ui:widget 'carrossel' desconhecido"
    )
    assert any(expected in p for p in check_paths([bundle_copy])), check_paths([bundle_copy])
    assert any(expected in p for p in form_problems(read_bundle(bundle_copy)))


def test_processes_check_and_deploy_refuse_an_unbounded_array(bundle_copy: Path):
    path = bundle_copy.with_suffix("") / "solicitar-acesso-homologacao.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    del schema["properties"]["filhos"]["maxItems"]
    path.write_text(json.dumps(schema), encoding="utf-8")
    expected = '/properties/filhos: lista sem limite de itens (declare "maxItems").'
    assert any(expected in p for p in check_paths([bundle_copy]))
    assert any(expected in p for p in form_problems(read_bundle(bundle_copy)))


# --- numbers are stored as they read back -----------------------------------------------

NUMBERS = {
    "type": "object",
    "properties": {
        "inteiro": {"type": "integer"},
        "numero": {"type": "number"},
        "livre": {},
        "linhas": {
            "type": "array",
            "maxItems": 5,
            "items": {"type": "object", "properties": {"valor": {"type": "number"}}},
        },
        "extra": {"type": "object", "additionalProperties": True},
    },
}


def test_integral_floats_become_ints():
    cleaned = validate_form(
        NUMBERS,
        {
            "inteiro": 1e20,
            "numero": -0.0,
            "livre": 3.0,
            "linhas": [{"valor": 2.0}, {"valor": 2.5}],
            "extra": {"a": [1e3, 0.5]},
        },
        ctx(),
    )
    assert cleaned == {
        "inteiro": 100000000000000000000,
        "numero": 0,
        "livre": 3,
        "linhas": [{"valor": 2}, {"valor": 2.5}],
        "extra": {"a": [1000, 0.5]},
    }
    assert type(cleaned["inteiro"]) is int and type(cleaned["numero"]) is int
    assert math.copysign(1, cleaned["numero"]) == 1  # not -0.0
    assert json.dumps(cleaned) == (
        '{"inteiro": 100000000000000000000, "numero": 0, "livre": 3, '
        '"linhas": [{"valor": 2}, {"valor": 2.5}], "extra": {"a": [1000, 0.5]}}'
    )


def test_an_integral_float_is_an_integer_for_the_schema():
    assert validate_form(NUMBERS, {"inteiro": -0.0}, ctx()) == {"inteiro": 0}
    assert errors_of(NUMBERS, {"inteiro": 1.5}) == {"inteiro": "Informe um número inteiro."}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_at_their_field(value):
    submitted = {
        "inteiro": value,
        "numero": value,
        "livre": value,
        "linhas": [{"valor": 1}, {"valor": value}],
        "extra": {"a": [value]},
    }
    assert errors_of(NUMBERS, submitted) == {
        "inteiro": NOT_FINITE,
        "numero": NOT_FINITE,
        "livre": NOT_FINITE,
        "linhas.1.valor": NOT_FINITE,
        "extra.a.0": NOT_FINITE,
    }
    assert NOT_FINITE == "Informe um número finito."


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30))
def test_what_is_stored_reads_back_identically(value):
    schema = {"type": "object", "properties": {"n": {"type": "number"}}}
    try:
        cleaned = validate_form(schema, {"n": value}, ctx())
    except FormInvalid as exc:
        assert not math.isfinite(value)
        assert exc.errors == {"n": NOT_FINITE}
        return
    text = json.dumps(cleaned, allow_nan=False)
    assert json.loads(text) == cleaned
    assert json.dumps(json.loads(text)) == text
    # An int where the value is integral: JSONB and SQLite give back the same text.
    assert isinstance(cleaned["n"], int) == (value == int(value))


# --- same_uf asks once for all the items -------------------------------------------------

SAME_UF_FORM = {
    "type": "object",
    "properties": {
        "filhos": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "properties": {"cnes": {"type": "string", "format": "cnes"}},
            },
        }
    },
    "x-rules": [{"rule": "same_uf", "fields": ["filhos"], "item_field": "cnes"}],
}


def test_same_uf_looks_up_every_item_in_one_call():
    ufs = {f"{n:07d}": "SP" for n in range(1, 50)} | {"0000050": "RJ"}
    asked: list[list[str]] = []

    def lookup_ufs(cnes):
        asked.append(list(cnes))
        return {c: ufs[c] for c in cnes if c in ufs}

    def one_by_one(cnes):
        raise AssertionError("asked one by one")

    filhos = [{"cnes": c} for c in ufs] + [{"cnes": "0000051"}, {"cnes": "0000001"}]
    context = ctx(
        establishment_uf="SP",
        lookup_establishment_uf=one_by_one,
        lookup_establishment_ufs=lookup_ufs,
    )
    assert errors_of(SAME_UF_FORM, {"filhos": filhos}, context) == {
        "filhos.49.cnes": "Estabelecimento filho deve ser da mesma UF (SP) do estabelecimento cessionário.",
        "filhos.50.cnes": "CNES não cadastrado na organização.",
    }  # fmt: skip
    assert len(asked) == 1 and asked[0] == [*ufs, "0000051"]  # each CNES once


def test_same_uf_is_not_asked_beyond_max_items():
    asked = []
    context = ctx(lookup_establishment_ufs=lambda cnes: asked.append(cnes) or {})
    filhos = [{"cnes": f"{n:07d}"} for n in range(501)]
    assert errors_of(SAME_UF_FORM, {"filhos": filhos}, context) == {
        "filhos": "No máximo 500 itens."
    }
    assert asked == []


def test_file_info_is_still_what_validation_takes():
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": "file"}}}
    context = FormContext(lookup_file={"f": FileInfo("f", "application/pdf")}.get)
    assert validate_form(schema, {"a": "f"}, context) == {"a": "f"}
