"""Server-side validation of task forms: formats, messages, x-rules, files, fuzzing."""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.forms import (
    FORM_PATH,
    FileInfo,
    FormContext,
    FormInvalid,
    check_form_schema,
    prefill,
    secret_fields,
    strip_secrets,
    validate_form,
)

FILES = {
    "f-pdf": FileInfo("f-pdf", "application/pdf", "evidence"),
    "f-png": FileInfo("f-png", "image/png", "evidence"),
    "f-exe": FileInfo("f-exe", "application/x-msdownload", "evidence"),
    "f-cert": FileInfo("f-cert", "application/x-pkcs12", "certificate"),
}
ESTABLISHMENT_UFS = {"1234567": "SP", "2345678": "SP", "7654321": "RJ"}
PORTFOLIO = {
    "portfolio": {
        "operations": [
            {"operacao": "Enviar RAC", "metodo": "POST", "descricao": "Registro"},
            {"operacao": "Consultar paciente", "metodo": "GET"},
        ]
    }
}

# A realistic form: a cut of "Solicitar acesso (homologação)".
SOLICITACAO = {
    "type": "object",
    "required": ["origem", "gestor_cpf", "gestor_cns", "gestor_email", "aceite_termo"],
    "properties": {
        "origem": {"type": "string", "title": "Origem", "enum": ["Ministério da Saúde", "Outros"]},
        "cnpj": {"type": "string", "format": "cnpj", "title": "CNPJ"},
        "gestor_cpf": {"type": "string", "format": "cpf", "title": "CPF do gestor"},
        "gestor_cns": {"type": "string", "format": "cns", "title": "CNS do gestor"},
        "gestor_email": {"type": "string", "format": "email", "title": "E-mail"},
        "resumo": {"type": "string", "maxLength": 400, "title": "Resumo"},
        "tipo_equipe": {
            "type": "string",
            "title": "Tipo de equipe",
            "oneOf": [
                {"const": "propria", "title": "Própria"},
                {"const": "terceirizada", "title": "Terceirizada"},
                {"const": "outros", "title": "Outros"},
            ],
        },
        "tem_filhos": {"type": "boolean", "title": "Possui estabelecimentos filhos?"},
        "filhos": {
            "type": "array",
            "title": "Estabelecimentos filhos",
            "maxItems": 500,
            "items": {
                "type": "object",
                "required": ["cnes"],
                "properties": {"cnes": {"type": "string", "format": "cnes", "title": "CNES"}},
            },
        },
        "ip_inicial": {"type": "string", "format": "ipv4", "title": "IP inicial"},
        "ip_final": {"type": "string", "format": "ipv4", "title": "IP final"},
        "periodos": {
            "type": "array",
            "title": "Períodos de maior acesso",
            "maxItems": 10,
            "items": {
                "type": "object",
                "required": ["turno", "inicio", "fim"],
                "properties": {
                    "turno": {"type": "string", "enum": ["Manhã", "Tarde", "Noite"]},
                    "inicio": {"type": "string", "format": "time", "title": "Início"},
                    "fim": {"type": "string", "format": "time", "title": "Fim"},
                },
                "x-rules": [{"rule": "lte", "fields": ["inicio", "fim"]}],
            },
        },
        "atendimentos_min": {"type": "integer", "minimum": 0, "title": "Mínimo de atendimentos"},
        "atendimentos_max": {"type": "integer", "minimum": 0, "maximum": 1000000},
        "data_inicio": {"type": "string", "format": "date", "title": "Data de início"},
        "data_fim": {"type": "string", "format": "date", "title": "Data fim"},
        "servicos": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "x-options-from": "portfolio.operations",
            "items": {
                "type": "object",
                "required": ["operacao", "metodo"],
                "properties": {"operacao": {"type": "string"}, "metodo": {"type": "string"}},
            },
        },
        "evidencia": {
            "type": "string",
            "format": "file",
            "x-accept": ["application/pdf", "image/png"],
        },
        "certificado": {"type": "string", "format": "file", "x-accept": ["certificate"]},
        "senha_certificado": {"type": "string", "x-secret": True},
        "numero_solicitacao": {
            "type": "string",
            "pattern": "^[0-9]+/[0-9]{4}$",
            "x-prefill": False,
            "x-messages": {"pattern": "Use o formato número/ano, por exemplo 3804/2024."},
        },
        "aceite_termo": {"type": "boolean", "const": True, "title": "Aceite do termo de uso"},
    },
    "if": {"properties": {"tem_filhos": {"const": True}}, "required": ["tem_filhos"]},
    "then": {"required": ["filhos"]},
    "x-rules": [
        {"rule": "lte", "fields": ["ip_inicial", "ip_final"]},
        {"rule": "public_ip", "fields": ["ip_inicial", "ip_final"]},
        {"rule": "lte", "fields": ["atendimentos_min", "atendimentos_max"]},
        {
            "rule": "lte",
            "fields": ["data_inicio", "data_fim"],
            "message": "A data fim deve ser igual ou posterior à data de início.",
        },
        {"rule": "same_uf", "fields": ["filhos"], "item_field": "cnes"},
        {"rule": "unique", "fields": ["filhos"], "item_field": "cnes"},
    ],
}

VALID = {
    "origem": "Outros",
    "gestor_cpf": "390.533.447-05",
    "gestor_cns": "207 2848 0160 0008",
    "gestor_email": "gestor@saude.sp.gov.br",
    "aceite_termo": True,
}


def make_ctx(**overrides) -> FormContext:
    values = {
        "lookup_file": FILES.get,
        "establishment_uf": "SP",
        "lookup_establishment_uf": ESTABLISHMENT_UFS.get,
        "data": PORTFOLIO,
    }
    values.update(overrides)
    return FormContext(**values)


def errors_of(submitted, schema=SOLICITACAO, ctx=None) -> dict[str, str]:
    with pytest.raises(FormInvalid) as excinfo:
        validate_form(schema, submitted, ctx or make_ctx())
    return excinfo.value.errors


def valid_with(**fields):
    return {**VALID, **fields}


# --- cleaning ------------------------------------------------------------------------


def test_valid_form_is_cleaned():
    submitted = valid_with(
        cnpj="12.abc.345/01de-35",
        resumo="  Sistema de prontuário  ",
        extra="ignored",
        senha_certificado="segredo",
        ip_inicial="",
    )
    cleaned = validate_form(SOLICITACAO, submitted, make_ctx())
    assert cleaned == {
        "origem": "Outros",
        "gestor_cpf": "39053344705",
        "gestor_cns": "207284801600008",
        "gestor_email": "gestor@saude.sp.gov.br",
        "aceite_termo": True,
        "cnpj": "12ABC34501DE35",
        "resumo": "Sistema de prontuário",
        "senha_certificado": "segredo",  # kept: the caller strips secrets
    }


def test_submitted_data_is_not_mutated():
    submitted = valid_with(filhos=[{"cnes": " 1234567 ", "junk": 1}], tem_filhos=True)
    before = copy.deepcopy(submitted)
    cleaned = validate_form(SOLICITACAO, submitted, make_ctx())
    assert submitted == before
    assert cleaned["filhos"] == [{"cnes": "1234567"}]


def test_blank_optional_identifier_is_not_an_error():
    cleaned = validate_form(SOLICITACAO, valid_with(cnpj="   "), make_ctx())
    assert "cnpj" not in cleaned


def test_formatted_identifier_with_bad_characters_keeps_input_and_reports():
    errors = errors_of(valid_with(gestor_cpf="390.533.447-0５"))
    assert errors == {"gestor_cpf": "CPF contém caracteres inválidos (use apenas números)."}


# --- messages per keyword ------------------------------------------------------------


def test_required_errors_sit_at_the_missing_property():
    errors = errors_of({})
    assert errors == {
        "origem": "Campo obrigatório.",
        "gestor_cpf": "Campo obrigatório.",
        "gestor_cns": "Campo obrigatório.",
        "gestor_email": "Campo obrigatório.",
        "aceite_termo": "É preciso marcar esta opção.",  # an unticked box is absent
    }


def test_blank_required_field_is_missing():
    assert errors_of(valid_with(gestor_email="  ")) == {"gestor_email": "Campo obrigatório."}


def test_required_inside_if_then():
    assert errors_of(valid_with(tem_filhos=True)) == {"filhos": "Campo obrigatório."}
    assert validate_form(SOLICITACAO, valid_with(tem_filhos=False), make_ctx())


def test_required_inside_array_items_uses_item_path():
    errors = errors_of(
        valid_with(
            periodos=[{"turno": "Manhã", "inicio": "08:00", "fim": "09:00"}, {"turno": "Tarde"}]
        )
    )
    assert errors == {
        "periodos.1.inicio": "Campo obrigatório.",
        "periodos.1.fim": "Campo obrigatório.",
    }


def test_type_messages():
    errors = errors_of(
        valid_with(atendimentos_min="10", tem_filhos=True, filhos={"cnes": "1234567"}, resumo=5)
    )
    assert errors == {
        "atendimentos_min": "Informe um número inteiro.",
        "filhos": "Informe uma lista de itens.",
        "resumo": "Informe um texto.",
    }


def test_booleans_are_not_integers():
    assert errors_of(valid_with(atendimentos_min=True)) == {
        "atendimentos_min": "Informe um número inteiro."
    }


def test_enum_message_lists_options():
    assert errors_of(valid_with(origem="DATASUS")) == {
        "origem": "Escolha uma das opções: Ministério da Saúde, Outros."
    }


def test_one_of_const_message_uses_titles():
    assert errors_of(valid_with(tipo_equipe="freelancer")) == {
        "tipo_equipe": "Escolha uma das opções: Própria, Terceirizada, Outros."
    }


def test_const_true_asks_to_check_the_box():
    assert errors_of(valid_with(aceite_termo=False)) == {
        "aceite_termo": "É preciso marcar esta opção."
    }


def test_max_length_message_counts_characters():
    assert errors_of(valid_with(resumo="a" * 412)) == {
        "resumo": "No máximo 400 caracteres (você digitou 412)."
    }


def test_max_length_counts_after_stripping():
    assert validate_form(SOLICITACAO, valid_with(resumo=" " * 50 + "a" * 400), make_ctx())


def test_min_items_message():
    assert errors_of(valid_with(servicos=[])) == {"servicos": "Adicione pelo menos 1 item."}
    schema = {"type": "object", "properties": {"l": {"type": "array", "minItems": 2}}}
    assert errors_of({"l": [1]}, schema) == {"l": "Adicione pelo menos 2 itens."}


def test_pattern_message_and_x_messages_override():
    assert errors_of(valid_with(numero_solicitacao="3804-2024")) == {
        "numero_solicitacao": "Use o formato número/ano, por exemplo 3804/2024."
    }
    schema = {"type": "object", "properties": {"uf": {"type": "string", "pattern": "^[A-Z]{2}$"}}}
    assert errors_of({"uf": "São Paulo"}, schema) == {"uf": "Formato inválido."}


def test_minimum_and_maximum_messages():
    errors = errors_of(valid_with(atendimentos_min=-1, atendimentos_max=2000000))
    assert errors == {
        "atendimentos_min": "Informe um valor maior ou igual a 0.",
        "atendimentos_max": "Informe um valor menor ou igual a 1000000.",
    }
    schema = {"type": "object", "properties": {"x": {"type": "number", "maximum": 2.5}}}
    assert errors_of({"x": 3}, schema) == {"x": "Informe um valor menor ou igual a 2,5."}


def test_x_messages_for_required_on_the_property():
    schema = {
        "type": "object",
        "required": ["motivo"],
        "properties": {
            "motivo": {"type": "string", "x-messages": {"required": "Informe o motivo."}}
        },
    }
    assert errors_of({}, schema) == {"motivo": "Informe o motivo."}


def test_one_message_per_path():
    schema = {
        "type": "object",
        "properties": {"x": {"type": "string", "maxLength": 3, "pattern": "^[0-9]+$"}},
    }
    errors = errors_of({"x": "abcdef"}, schema)
    assert errors == {"x": "No máximo 3 caracteres (você digitou 6)."}


# --- formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gestor_cpf", "39053344706", "Dígitos verificadores do CPF não conferem."),
        ("gestor_cpf", "111.111.111-11", "CPF com todos os dígitos iguais não é válido."),
        ("gestor_cpf", "3905334470", "CPF deve ter 11 dígitos."),
        ("gestor_cns", "207284801600009", "Dígito verificador do CNS não confere."),
        ("cnpj", "10302910000183", "Dígitos verificadores do CNPJ não conferem."),
        ("gestor_email", "gestor@saude", "E-mail inválido."),
        ("gestor_email", "ges tor@saude.gov.br", "E-mail inválido."),
        ("gestor_email", "a@b@c.com", "E-mail inválido."),
        ("gestor_email", "a@b..com", "E-mail inválido."),
        ("gestor_email", "a\x00@b.com", "E-mail inválido."),
        ("data_inicio", "2024-02-30", "Data inválida (use dd/mm/aaaa)."),
        ("data_inicio", "30/01/2024", "Data inválida (use dd/mm/aaaa)."),
        ("data_inicio", "20240101", "Data inválida (use dd/mm/aaaa)."),
        ("data_inicio", "2024-1-01", "Data inválida (use dd/mm/aaaa)."),
        ("data_inicio", "２024-01-01", "Data inválida (use dd/mm/aaaa)."),
        ("ip_inicial", "192.168.01.1", "Endereço IPv4 inválido."),
        ("ip_inicial", "256.1.1.1", "Endereço IPv4 inválido."),
        ("ip_inicial", "1.2.3", "Endereço IPv4 inválido."),
        ("ip_inicial", "١.1.1.1", "Endereço IPv4 inválido."),
        ("ip_inicial", "8.8.8.8/24", "Endereço IPv4 inválido."),
    ],
)
def test_format_messages(field, value, message):
    assert errors_of(valid_with(**{field: value})) == {field: message}


@pytest.mark.parametrize("value", ["24:00", "9:00", "12:60", "12h30", "12:30:00"])
def test_invalid_times(value):
    errors = errors_of(valid_with(periodos=[{"turno": "Noite", "inicio": value, "fim": "23:59"}]))
    assert errors == {"periodos.0.inicio": "Hora inválida (use hh:mm)."}


def test_valid_edge_values_pass():
    cleaned = validate_form(
        SOLICITACAO,
        valid_with(
            data_inicio="2024-02-29",
            data_fim="2024-02-29",
            periodos=[{"turno": "Manhã", "inicio": "00:00", "fim": "23:59"}],
            ip_inicial="200.1.2.3",
            ip_final="200.1.2.3",
        ),
        make_ctx(),
    )
    assert cleaned["data_inicio"] == "2024-02-29"


# --- files ---------------------------------------------------------------------------


def test_file_of_accepted_type_passes():
    cleaned = validate_form(
        SOLICITACAO, valid_with(evidencia="f-png", certificado="f-cert"), make_ctx()
    )
    assert cleaned["evidencia"] == "f-png"


def test_file_of_wrong_type():
    assert errors_of(valid_with(evidencia="f-exe", certificado="f-pdf")) == {
        "evidencia": "Tipo de arquivo não aceito. Envie: PDF ou PNG.",
        "certificado": (
            "Tipo de arquivo não aceito. Envie: certificado digital (.cer, .crt, .pem, .pfx, .p12)."
        ),
    }


def test_file_not_found():
    assert errors_of(valid_with(evidencia="f-missing")) == {
        "evidencia": "Arquivo não encontrado. Envie o arquivo novamente."
    }


def test_implausible_file_ids_never_reach_the_lookup():
    seen = []

    def lookup(file_id):
        seen.append(file_id)
        return None

    errors = errors_of(valid_with(evidencia="x" * 100_000), ctx=make_ctx(lookup_file=lookup))
    assert errors == {"evidencia": "Arquivo não encontrado. Envie o arquivo novamente."}
    assert seen == []


def test_file_lookup_value_error_means_unknown():
    def lookup(file_id):
        raise ValueError("badly formed hexadecimal UUID string")

    errors = errors_of(valid_with(evidencia="abc"), ctx=make_ctx(lookup_file=lookup))
    assert errors == {"evidencia": "Arquivo não encontrado. Envie o arquivo novamente."}


def test_file_lookup_is_called_once_per_id():
    calls = []

    def lookup(file_id):
        calls.append(file_id)
        return FILES.get(file_id)

    validate_form(SOLICITACAO, valid_with(evidencia="f-pdf"), make_ctx(lookup_file=lookup))
    assert calls == ["f-pdf"]


def test_file_must_be_a_string():
    assert errors_of(valid_with(evidencia=123)) == {"evidencia": "Informe um texto."}


# --- x-rules -------------------------------------------------------------------------


def test_lte_on_ipv4_as_integers():
    # "8.8.8.10" < "8.8.8.9" as text, but not as addresses.
    assert validate_form(
        SOLICITACAO, valid_with(ip_inicial="8.8.8.9", ip_final="8.8.8.10"), make_ctx()
    )
    assert errors_of(valid_with(ip_inicial="8.8.8.10", ip_final="8.8.8.9")) == {
        "ip_final": "Deve ser maior ou igual a IP inicial."
    }


def test_lte_on_numbers_dates_and_times():
    errors = errors_of(
        valid_with(
            atendimentos_min=10,
            atendimentos_max=9,
            data_inicio="2025-01-02",
            data_fim="2025-01-01",
            periodos=[
                {"turno": "Manhã", "inicio": "08:00", "fim": "12:00"},
                {"turno": "Tarde", "inicio": "18:00", "fim": "13:00"},
            ],
        )
    )
    assert errors == {
        "atendimentos_max": "Deve ser maior ou igual a Mínimo de atendimentos.",
        "data_fim": "A data fim deve ser igual ou posterior à data de início.",
        "periodos.1.fim": "Deve ser maior ou igual a Início.",
    }


def test_lte_is_skipped_when_a_field_is_missing_or_invalid():
    assert validate_form(SOLICITACAO, valid_with(data_inicio="2025-01-02"), make_ctx())
    errors = errors_of(valid_with(data_inicio="2025-13-01", data_fim="2025-01-01"))
    assert errors == {"data_inicio": "Data inválida (use dd/mm/aaaa)."}


NON_GLOBAL_ADDRESSES = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.0.1",
    "127.0.0.1",
    "100.64.0.1",
    "169.254.1.1",
    "0.0.0.0",  # noqa: S104 - a value under test, nothing binds to it
    "224.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "240.0.0.1",
]


@pytest.mark.parametrize("address", NON_GLOBAL_ADDRESSES)
def test_public_ip_rejects_non_global_addresses(address):
    assert errors_of(valid_with(ip_inicial=address)) == {
        "ip_inicial": "Informe um IP público (não privado, reservado ou de loopback)."
    }


def test_public_ip_accepts_global_addresses():
    cleaned = validate_form(SOLICITACAO, valid_with(ip_inicial="200.160.2.3"), make_ctx())
    assert cleaned["ip_inicial"] == "200.160.2.3"


def test_same_uf_and_unique_on_children():
    filhos = [{"cnes": c} for c in ["1234567", "7654321", "1234567", "9999999", "123"]]
    errors = errors_of(valid_with(tem_filhos=True, filhos=filhos))
    assert errors == {
        "filhos.1.cnes": (
            "Estabelecimento filho deve ser da mesma UF (SP) do estabelecimento cessionário."
        ),
        "filhos.2.cnes": "CNES repetido.",
        "filhos.3.cnes": "CNES não cadastrado na organização.",
        "filhos.4.cnes": "CNES deve ter 7 dígitos.",
    }


def test_same_uf_passes_for_children_of_the_same_uf():
    filhos = [{"cnes": "1234567"}, {"cnes": "2345678"}]
    cleaned = validate_form(SOLICITACAO, valid_with(tem_filhos=True, filhos=filhos), make_ctx())
    assert cleaned["filhos"] == filhos


def test_rules_skip_only_the_invalid_items():
    calls = []

    def lookup_uf(cnes):
        calls.append(cnes)
        return "SP"

    errors = errors_of(
        valid_with(tem_filhos=True, filhos=[{"cnes": "<script>"}, {"cnes": "1234567"}]),
        ctx=make_ctx(lookup_establishment_uf=lookup_uf),
    )
    assert errors == {"filhos.0.cnes": "CNES contém caracteres inválidos (use apenas números)."}
    assert calls == ["1234567"]


def test_unique_on_plain_values_with_default_message():
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "x-rules": [{"rule": "unique", "fields": ["tags"]}],
    }
    assert errors_of({"tags": ["a", "b", " a "]}, schema) == {"tags.2": "Valor repetido."}


# --- x-options-from ------------------------------------------------------------------


def test_options_from_portfolio():
    ok = [
        {"operacao": "Enviar RAC", "metodo": "POST"},
        {"operacao": "Consultar paciente", "metodo": "GET"},
    ]
    assert validate_form(SOLICITACAO, valid_with(servicos=ok), make_ctx())["servicos"] == ok
    bad = [ok[0], {"operacao": "Enviar RAC", "metodo": "DELETE"}]
    assert errors_of(valid_with(servicos=bad)) == {
        "servicos.1": "Operação não disponível neste portfólio."
    }


def test_options_from_missing_data_accepts_nothing():
    errors = errors_of(
        valid_with(servicos=[{"operacao": "Enviar RAC", "metodo": "POST"}]), ctx=make_ctx(data={})
    )
    assert errors == {"servicos.0": "Operação não disponível neste portfólio."}


# --- secrets and prefill -------------------------------------------------------------


def test_secret_fields_and_strip_secrets():
    schema = {
        "type": "object",
        "properties": {
            "token": {"type": "string", "x-secret": True},
            "contra_chave": {"type": "string", "x-secret": True},
            "nome": {"type": "string"},
            "acessos": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"senha": {"type": "string", "x-secret": True}},
                },
            },
        },
    }
    assert secret_fields(schema) == {"token", "contra_chave", "acessos.*.senha"}
    data = {"token": "t", "nome": "n", "acessos": [{"senha": "s", "u": 1}]}
    assert strip_secrets(schema, data) == {"nome": "n", "acessos": [{"u": 1}]}
    assert data["token"] == "t"  # the original is untouched
    assert secret_fields(SOLICITACAO) == {"senha_certificado"}


def test_prefill_skips_x_prefill_false_and_secrets():
    data = {
        "origem": "Outros",
        "numero_solicitacao": "3804/2024",
        "senha_certificado": "segredo",
        "filhos": [{"cnes": "1234567"}],
        "not_in_form": 1,
    }
    values = prefill(SOLICITACAO, data)
    assert values == {"origem": "Outros", "filhos": [{"cnes": "1234567"}]}
    values["filhos"].append({"cnes": "x"})
    assert data["filhos"] == [{"cnes": "1234567"}]  # a copy, not the workflow's list


# --- hostile input -------------------------------------------------------------------


def test_script_tags_pass_as_plain_data():
    # Escaping is the template's job; validation stores text as typed.
    cleaned = validate_form(SOLICITACAO, valid_with(resumo="<script>alert(1)</script>"), make_ctx())
    assert cleaned["resumo"] == "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "field", ["gestor_cpf", "gestor_cns", "cnpj", "gestor_email", "ip_inicial", "data_inicio",
              "numero_solicitacao", "resumo", "origem", "evidencia", "tipo_equipe"],
)  # fmt: skip
def test_huge_strings_give_errors_not_crashes(field):
    errors = errors_of(valid_with(**{field: "9" * 100_000}))
    assert set(errors) == {field}
    assert len(errors[field]) < 300


@pytest.mark.parametrize("value", ["\x00", "a\x00b", "\u202e", "\ud800", "\x1b[31m", "\r\n\t"])
def test_control_characters_never_crash(value):
    for field in ("gestor_cpf", "gestor_email", "resumo", "ip_inicial", "evidencia"):
        try:
            validate_form(SOLICITACAO, valid_with(**{field: value}), make_ctx())
        except FormInvalid as exc:
            assert all(isinstance(m, str) and m for m in exc.errors.values())


@pytest.mark.parametrize("submitted", [None, [], "text", 42, [VALID]])
def test_non_object_submission(submitted):
    assert errors_of(submitted) == {FORM_PATH: "Dados do formulário inválidos."}


def test_absurdly_nested_submission():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert errors_of(valid_with(resumo=deep)) == {FORM_PATH: "Dados do formulário inválidos."}


def test_absurdly_large_integer_submission():
    # Cannot come from json.loads, but a Python caller could pass it.
    for value in (10**5000, -(10**5000)):
        errors = errors_of(valid_with(atendimentos_min=value))
        assert errors == {FORM_PATH: "Dados do formulário inválidos."}
    errors = errors_of(valid_with(atendimentos_max=10**300))
    assert errors == {"atendimentos_max": "Informe um valor menor ou igual a 1000000."}


def test_form_invalid_carries_cleaned_data():
    with pytest.raises(FormInvalid) as excinfo:
        validate_form(SOLICITACAO, valid_with(resumo=" x ", origem="?"), make_ctx())
    assert excinfo.value.data["resumo"] == "x"
    assert "origem" in str(excinfo.value)


# --- fuzzing -------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
plausible = st.sampled_from(
    ["39053344705", "390.533.447-05", "207284801600008", "1234567", "7654321", "12ABC34501DE35",
     "8.8.8.8", "10.0.0.1", "2024-02-29", "2024-02-30", "23:59", "08:00", "a@b.com", "f-pdf",
     "f-exe", "f-cert", "Manhã", "Outros", "POST", "Enviar RAC", "propria", "", " "]
)  # fmt: skip
field_values = json_values | plausible | st.booleans()
item_objects = st.fixed_dictionaries(
    {},
    optional={
        k: field_values for k in ("cnes", "turno", "inicio", "fim", "operacao", "metodo", "x")
    },
)
shaped_forms = st.fixed_dictionaries(
    {},
    optional={
        **{name: field_values for name in SOLICITACAO["properties"]},
        "filhos": st.lists(item_objects, max_size=4) | json_values,
        "periodos": st.lists(item_objects, max_size=4) | json_values,
        "servicos": st.lists(item_objects, max_size=4) | json_values,
    },
)


def assert_returns_dict_or_form_invalid(submitted):
    try:
        result = validate_form(SOLICITACAO, submitted, make_ctx())
    except FormInvalid as exc:
        assert exc.errors
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in exc.errors.items())
    else:
        assert isinstance(result, dict)
        assert set(result) <= set(SOLICITACAO["properties"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_arbitrary_json(submitted):
    assert_returns_dict_or_form_invalid(submitted)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(shaped_forms)
def test_fuzz_form_shaped_json(submitted):
    assert_returns_dict_or_form_invalid(submitted)


@settings(max_examples=100)
@given(st.dictionaries(st.sampled_from(list(VALID)), field_values))
def test_fuzz_around_a_valid_form(changes):
    assert_returns_dict_or_form_invalid({**VALID, **changes})


# --- model checks --------------------------------------------------------------------


def test_check_form_schema_accepts_the_realistic_form():
    assert check_form_schema(SOLICITACAO) == []


def test_check_form_schema_catches_an_invalid_schema():
    problems = check_form_schema({"type": "objeto", "properties": {"x": {"type": "texto"}}})
    assert problems and all("esquema inválido" in p for p in problems)
    assert check_form_schema([]) == ["O esquema do formulário deve ser um objeto JSON."]


def test_check_form_schema_catches_unknown_format_and_rule():
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "format": "cpff"},
            "b": {"type": "string", "format": "file", "x-accept": "application/pdf"},
            "c": {"type": "string", "x-secret": "yes"},
        },
        "x-rules": [
            {"rule": "greater_than", "fields": ["a", "b"]},
            {"rule": "lte", "fields": ["a"]},
            {"rule": "lte", "fields": ["a", "nope"]},
        ],
    }
    problems = "\n".join(check_form_schema(schema))
    assert "formato desconhecido 'cpff'" in problems
    assert "regra desconhecida 'greater_than'" in problems
    assert "a regra lte usa exatamente 2 campo(s)" in problems
    assert "campo 'nope' não existe" in problems
    assert "x-accept deve ser uma lista" in problems
    assert "x-secret deve ser true ou false" in problems


def test_check_form_schema_catches_rules_on_items_and_bad_refs():
    schema = {
        "type": "object",
        "properties": {
            "l": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"x": {"type": "string"}},
                    "x-rules": [{"rule": "unique", "fields": ["y"]}],
                },
            },
            "r": {"$ref": "#/$defs/missing"},
            "o": {"type": "string", "x-options-from": "portfolio.operations"},
        },
        "x-rules": [{"rule": "same_uf", "fields": ["l"], "item_field": "cnes"}],
    }
    problems = "\n".join(check_form_schema(schema))
    assert "/properties/l/items/x-rules/0: campo 'y' não existe" in problems
    assert "$ref '#/$defs/missing' não encontrada" in problems
    assert "campo 'cnes' não existe nos itens" in problems
    assert "x-options-from deve ser um caminho" in problems


def test_rules_in_conditional_branches_are_flagged_and_not_run():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "if": {"required": ["a"]},
        "then": {"x-rules": [{"rule": "lte", "fields": ["a", "b"]}]},
    }
    problems = check_form_schema(schema)
    assert problems == ["/then: x-rules dentro de if/then/else, anyOf ou oneOf não é aplicada."]
    assert validate_form(schema, {"a": 2, "b": 1}, make_ctx()) == {"a": 2, "b": 1}


def test_rules_on_items_reached_through_ref_and_all_of():
    schema = {
        "type": "object",
        "$defs": {
            "periodo": {
                "type": "object",
                "properties": {"inicio": {"format": "time"}, "fim": {"format": "time"}},
                "x-rules": [{"rule": "lte", "fields": ["inicio", "fim"], "message": "Fim antes."}],
            }
        },
        "allOf": [
            {
                "properties": {
                    "p": {"type": "array", "maxItems": 10, "items": {"$ref": "#/$defs/periodo"}}
                }
            }
        ],
    }
    assert check_form_schema(schema) == []
    errors = errors_of({"p": [{"inicio": "10:00", "fim": "09:00", "junk": 1}]}, schema)
    assert errors == {"p.0.fim": "Fim antes."}
    cleaned = validate_form(schema, {"p": [{"inicio": " 08:00 ", "junk": 1}]}, make_ctx())
    assert cleaned == {"p": [{"inicio": "08:00"}]}
