"""Conditional fields: what a form's top-level if/then/else shows, what validation drops,
what the deploy check refuses, and the review flag (engine.forms.conditions)."""

import copy
import json
from pathlib import Path

import pytest

from engine.forms import FormContext, FormInvalid, check_form, conditions, validate_form

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
RNDS = PROCESSES / "credenciamento-rnds"

FORM = {
    "type": "object",
    "properties": {
        "nome": {"type": "string", "minLength": 1},
        "possui_filhos": {"type": "boolean"},
        "filhos": {
            "type": "array",
            "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {"cnes": {"type": "string", "format": "cnes"}},
                "required": ["cnes"],
            },
        },
        "aplicacao_web": {"type": "boolean"},
        "ip_inicial": {"type": "string", "format": "ipv4"},
        "ip_final": {"type": "string", "format": "ipv4"},
        "canal": {"type": "string", "enum": ["email", "telefone"]},
        "telefone": {"type": "string", "minLength": 8},
        "email": {"type": "string", "format": "email"},
    },
    "required": ["nome", "possui_filhos", "aplicacao_web"],
    "if": {"properties": {"canal": {"const": "telefone"}}, "required": ["canal"]},
    "then": {"required": ["telefone"]},
    "else": {"required": ["email"]},
    "allOf": [
        {
            "if": {"properties": {"possui_filhos": {"const": True}}, "required": ["possui_filhos"]},
            "then": {"required": ["filhos"], "properties": {"filhos": {"minItems": 1}}},
        },
        {
            "if": {"properties": {"aplicacao_web": {"const": True}}, "required": ["aplicacao_web"]},
            "then": {"required": ["ip_inicial", "ip_final"]},
        },
    ],
}
VALID = {"nome": "LIS", "possui_filhos": False, "aplicacao_web": False, "email": "a@b.gov.br"}


def ctx() -> FormContext:
    return FormContext(lookup_file=lambda _id: None)


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(FormInvalid) as caught:
        validate_form(FORM, data, ctx())
    return caught.value.errors


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_fields_a_branch_requires_are_the_ones_it_shows():
    assert conditions.shown_fields(FORM) == {
        "filhos",
        "ip_inicial",
        "ip_final",
        "telefone",
        "email",
    }
    assert conditions.controlling_fields(FORM) == {"possui_filhos", "aplicacao_web", "canal"}
    assert conditions.hidden_fields(FORM, VALID) == {"filhos", "ip_inicial", "ip_final", "telefone"}
    both = dict(VALID, possui_filhos=True, aplicacao_web=True, canal="telefone")
    assert conditions.hidden_fields(FORM, both) == {"email"}


def test_a_hidden_field_is_dropped_and_never_validated():
    junk = dict(VALID, filhos="not a list", ip_inicial="10.0.0.1x", telefone="1")
    cleaned = validate_form(FORM, junk, ctx())
    assert cleaned == {"nome": "LIS", "possui_filhos": False, "aplicacao_web": False,
                       "email": "a@b.gov.br"}  # fmt: skip


def test_a_shown_field_is_required_and_validated():
    assert errors_of(dict(VALID, possui_filhos=True)) == {"filhos": "Campo obrigatório."}
    errors = errors_of(dict(VALID, aplicacao_web=True, ip_inicial="300.1.1.1"))
    assert set(errors) == {"ip_inicial", "ip_final"}
    assert errors["ip_final"] == "Campo obrigatório."
    assert set(errors_of(dict(VALID, possui_filhos=True, filhos=[]))) == {"filhos"}
    # The else branch: e-mail when the channel is not the phone, the phone when it is.
    assert errors_of({k: v for k, v in VALID.items() if k != "email"}) == {
        "email": "Campo obrigatório."
    }
    assert errors_of(dict(VALID, canal="telefone")) == {"telefone": "Campo obrigatório."}
    cleaned = validate_form(FORM, dict(VALID, canal="telefone", telefone="41999998888"), ctx())
    assert "email" not in cleaned and cleaned["telefone"] == "41999998888"


def test_nested_condition_applies_only_under_its_parent():
    ajustar = load(RNDS / "ajustar-solicitacao-acesso.schema.json")
    data = {"decision": "desistir", "motivo": "Sem orçamento", "possui_filhos": True,
            "filhos": [{"cnes": "x"}], "sistema_nome": "LIS"}  # fmt: skip
    hidden = conditions.hidden_fields(ajustar, data)
    assert {"filhos", "sistema_nome", "possui_filhos"} <= hidden and "motivo" not in hidden
    shown = conditions.hidden_fields(ajustar, dict(data, decision="ajustar"))
    assert "filhos" not in shown and "motivo" in shown
    # A value hidden by its own hidden controller does not show anything.
    assert "filhos" in conditions.hidden_fields(ajustar, dict(data, decision=None))


def test_show_rules_for_the_script():
    rules = conditions.show_rules(FORM)
    assert json.loads(rules["filhos"]) == [[["possui_filhos", ["true"], True]]]
    assert json.loads(rules["email"]) == [[["canal", ["telefone"], False]]]
    ajustar = load(RNDS / "ajustar-solicitacao-acesso.schema.json")
    assert json.loads(conditions.show_rules(ajustar)["filhos"]) == [
        [["possui_filhos", ["true"], True], ["decision", ["ajustar"], True]]
    ]
    complex_form = copy.deepcopy(FORM)
    complex_form["allOf"][0]["if"] = {"properties": {"possui_filhos": {"type": "boolean"}}}
    assert conditions.show_rules(complex_form)["filhos"] is None  # left to the server


def test_seed_pairs_in_the_credentialing_forms():
    homologation = load(RNDS / "solicitar-acesso-homologacao.schema.json")
    # the IP range is asked whatever the kind of system (seed 003 marks both "*")
    assert conditions.controlling_fields(homologation) == {"possui_filhos",
                                                           "integra_outros_sistemas"}  # fmt: skip
    assert conditions.shown_fields(homologation) == {"filhos", "integracoes"}
    for name in ("solicitar-acesso-homologacao", "ajustar-solicitacao-acesso",
                 "solicitar-acesso-producao"):  # fmt: skip
        assert conditions.wants_review(load(RNDS / f"{name}.schema.json")), name
    change = load(PROCESSES / "alteracao-credencial" / "solicitar-alteracao.schema.json")
    assert conditions.wants_review(change)
    assert not conditions.wants_review(load(RNDS / "avaliar-solicitacao-acesso.schema.json"))


def test_deploy_check_refuses_a_condition_naming_an_unknown_field():
    assert conditions.check_conditions(FORM) == []
    assert check_form(FORM) == []
    bad = copy.deepcopy(FORM)
    bad["allOf"][0]["then"]["required"] = ["filhoz"]
    bad["allOf"][1]["if"]["properties"] = {"aplicacao": {"const": True}}
    bad["dependentRequired"] = {"ip_inicial": ["ip_fim"]}
    bad["x-review"] = "sim"
    problems = check_form(bad)
    assert any("'filhoz'" in p and "/allOf/0/then/required" in p for p in problems), problems
    assert any("'aplicacao'" in p and "if/properties" in p for p in problems), problems
    assert any("dependentRequired" in p and "'ip_fim'" in p for p in problems), problems
    assert any("x-review" in p for p in problems), problems
    nested = load(RNDS / "ajustar-solicitacao-acesso.schema.json")
    nested["allOf"][1]["then"]["allOf"][0]["then"]["required"] = ["filhos_x"]
    assert any("'filhos_x'" in p for p in check_form(nested))


def test_dependent_required_hides_nothing_and_requires_the_pair():
    form = {
        "type": "object",
        "properties": {"ip_inicial": {"type": "string"}, "ip_final": {"type": "string"}},
        "dependentRequired": {"ip_inicial": ["ip_final"], "ip_final": ["ip_inicial"]},
    }
    assert conditions.shown_fields(form) == frozenset()
    assert validate_form(form, {}, ctx()) == {}
    with pytest.raises(FormInvalid) as caught:
        validate_form(form, {"ip_inicial": "200.1.1.1"}, ctx())
    assert caught.value.errors == {"ip_final": "Campo obrigatório."}
