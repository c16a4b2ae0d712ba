"""Issue 14, fidelity to the seeds: the request forms as the Portal de Serviços asks them
(items 6, 7 and 10), validated by the engine over the deployed schemas."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from engine.demo import samples
from engine.forms import FileInfo, FormContext, FormInvalid, served_schema, validate_form

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
RNDS = PROCESSES / "credenciamento-rnds"
ALT = PROCESSES / "alteracao-credencial"
RIRA = {"code": "RIRA", "operations": [{"operacao": "/token", "metodo": "POST"}]}


def _schema(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _context(portfolio: dict = RIRA, **data) -> FormContext:
    return FormContext(
        lookup_file=lambda file_id: FileInfo(file_id, "application/pkix-cert", "certificate"),
        establishment_uf="PR",
        data={"portfolio": portfolio, **data},
    )


def _errors(schema: dict, data: dict, ctx: FormContext) -> dict[str, str]:
    with pytest.raises(FormInvalid) as exc:
        validate_form(schema, data, ctx)
    return exc.value.errors


def _request(**change) -> dict:
    ctx = {"estabelecimento": {"cnes": "2077485", "uf": "PR"}, "portfolio": RIRA}
    return {**samples.answer("solicitar_acesso_homologacao", ctx), **change}


# ------------------------------------------------------------------ item 6


@pytest.mark.parametrize("web", [True, False])
def test_item6_ip_range_required_whatever_the_system(web):
    data = {k: v for k, v in _request(aplicacao_web=web).items() if not k.startswith("ip_")}
    schema = _schema(RNDS / "solicitar-acesso-homologacao.schema.json")
    errors = _errors(schema, data, _context())
    assert errors == {"ip_inicial": "Campo obrigatório.", "ip_final": "Campo obrigatório."}
    adjust = _schema(RNDS / "ajustar-solicitacao-acesso.schema.json")
    errors = _errors(adjust, {**data, "decision": "ajustar"}, _context())
    assert errors == {"ip_inicial": "Campo obrigatório.", "ip_final": "Campo obrigatório."}


def test_item6_every_form_collecting_the_range_requires_it():
    for path in [*RNDS.glob("*.schema.json"), *ALT.glob("*.schema.json")]:
        schema = _schema(path)
        if "ip_inicial" not in schema.get("properties", {}):
            continue
        if schema["properties"]["ip_inicial"].get("readOnly"):
            continue
        text = json.dumps(schema.get("required", [])) + json.dumps(schema.get("allOf", []))
        assert '"ip_inicial", "ip_final"' in text, path.name
        assert "dependentRequired" not in schema, path.name


# ------------------------------------------------------------------ item 7


@pytest.mark.parametrize("number", ["4836", "3804/2024"])
@pytest.mark.parametrize(
    "form", [RNDS / "avaliar-solicitacao-acesso.schema.json", ALT / "avaliar-alteracao.schema.json"]
)
def test_item7_request_number_as_the_portal_shows_it(form, number):
    data = {
        "decision": "aprovada",
        "numero_solicitacao": number,
        "identificador_solicitante": "40111",
        "operacoes_aprovadas": [{"operacao": "/token", "metodo": "POST"}],
    }
    schema = _schema(form)
    data = {k: v for k, v in data.items() if k in schema["properties"]}
    assert validate_form(schema, data, _context())["numero_solicitacao"] == number
    assert "numero_solicitacao" in _errors(
        schema, {**data, "numero_solicitacao": "38/24"}, _context()
    )


@pytest.mark.parametrize("code", ["CNS-CERTDIG", "RNDS-TERCEIROS"])
def test_item7_identificador_optional_for_portfolios_that_show_none(code):
    portfolio = {"code": code, "operations": RIRA["operations"]}
    ops = [{"operacao": "/token", "metodo": "POST"}]
    approve = {
        "decision": "aprovada",
        "numero_solicitacao": "1197/2024",
        "operacoes_aprovadas": ops,
    }
    evaluate = _schema(RNDS / "avaliar-solicitacao-acesso.schema.json")
    assert "identificador_solicitante" not in validate_form(evaluate, approve, _context(portfolio))
    # ... still required for the others, and still checked when given
    assert _errors(evaluate, approve, _context()) == {
        "identificador_solicitante": "Campo obrigatório."
    }
    bad = {**approve, "identificador_solicitante": "abc"}
    assert set(_errors(evaluate, bad, _context(portfolio))) == {"identificador_solicitante"}
    access = _schema(RNDS / "obter-dados-acesso.schema.json")
    data = {"operacoes_aprovadas": ops, "confirmacao": True}
    ctx = _context(portfolio, operacoes_aprovadas=ops)
    assert validate_form(access, data, ctx) == data
    assert set(_errors(access, data, _context(operacoes_aprovadas=ops))) == {
        "identificador_solicitante"
    }
    # The served schema says the same.
    served = served_schema(evaluate, {"portfolio": portfolio})
    assert "identificador_solicitante" not in served["allOf"][0]["then"]["required"]
    served = served_schema(evaluate, {"portfolio": RIRA})
    assert "identificador_solicitante" in served["allOf"][0]["then"]["required"]


# ------------------------------------------------------------------ item 10


@pytest.mark.parametrize(
    "form",
    [
        RNDS / "solicitar-acesso-homologacao.schema.json",
        RNDS / "ajustar-solicitacao-acesso.schema.json",
    ],
)
def test_item10_peak_periods_across_midnight_yes_empty_no(form):
    schema = _schema(form)
    extra = {"decision": "ajustar"} if "ajustar" in form.name else {}
    night = _request(
        periodos_maior_acesso=[{"periodo": "Noite", "inicio": "22:00", "fim": "02:00"}]
    )
    assert (
        validate_form(schema, {**night, **extra}, _context())["periodos_maior_acesso"][0]["fim"]
        == "02:00"
    )
    empty = _request(periodos_maior_acesso=[
        {"periodo": "Manhã", "inicio": "08:00", "fim": "12:00"},
        {"periodo": "Tarde", "inicio": "14:00", "fim": "14:00"},
    ])  # fmt: skip
    assert _errors(schema, {**empty, **extra}, _context()) == {
        "periodos_maior_acesso.1.fim": "O fim do período deve ser diferente do início."
    }


def test_item10_the_request_sample_stays_valid():
    schema = _schema(RNDS / "solicitar-acesso-homologacao.schema.json")
    assert (
        validate_form(schema, _request(), _context())["data_inicio"] <= date(2027, 1, 1).isoformat()
    )
