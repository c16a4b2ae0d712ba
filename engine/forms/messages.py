"""The pt-BR messages of form validation, and the message of each jsonschema error."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from engine.pki.english import english as certificate_english

FORM_PATH = ""  # error key for problems with the form as a whole

REQUIRED = "Campo obrigatório."
INVALID = "Valor inválido."
FORM_INVALID = "Dados do formulário inválidos."
CHECK_REQUIRED = "É preciso marcar esta opção."
DATE_INVALID = "Data inválida (use dd/mm/aaaa)."
TIME_INVALID = "Hora inválida (use hh:mm)."
EMAIL_INVALID = "E-mail inválido."
IPV4_INVALID = "Endereço IPv4 inválido."
FILE_NOT_FOUND = "Arquivo não encontrado. Envie o arquivo novamente."
NOT_FINITE = "Informe um número finito."
PUBLIC_IP = "Informe um IP público (não privado, reservado ou de loopback)."
CNES_NOT_REGISTERED = "CNES não cadastrado na organização."
SAME_UF = "Estabelecimento filho deve ser da mesma UF ({uf}) do estabelecimento cessionário."
OPTION_UNAVAILABLE = "Operação não disponível neste portfólio."

_TYPE_MESSAGES = {
    "integer": "Informe um número inteiro.",
    "number": "Informe um número.",
    "string": "Informe um texto.",
    "boolean": "Escolha sim ou não.",
    "array": "Informe uma lista de itens.",
}
FORMAT_MESSAGES = {
    "cpf": "CPF inválido.",
    "cnpj": "CNPJ inválido.",
    "cns": "CNS inválido.",
    "cnes": "CNES inválido.",
    "date": DATE_INVALID,
    "time": TIME_INVALID,
    "email": EMAIL_INVALID,
    "ipv4": IPV4_INVALID,
    "file": FILE_NOT_FOUND,
}
_ACCEPT_LABELS = {
    "application/pdf": "PDF",
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "certificate": "certificado digital (.cer, .crt, .pem, .pfx, .p12)",
    "certificate_with_key": "certificado digital com a chave (.pfx ou .p12)",
}
# A certificate sent without its private key where the key is needed (the PEC's Chaves folder).
KEY_MISSING = (
    "Este passo precisa do certificado com a chave privada: envie o arquivo .pfx ou .p12 "
    "(com a senha dele). Um .cer, .crt ou .pem traz só a parte pública, e o PEC não "
    "habilita a RNDS sem a chave."
)


def evidence_too_large(size: int, limit: int) -> str:
    mb = 1024 * 1024
    return (
        f"Arquivo de {size / mb:.1f} MB: o limite de evidências deste portfólio é "
        f"{limit // mb} MB. Reduza o arquivo (por exemplo, imprima como PDF) ou divida-o."
    ).replace(".", ",", 1)


def accept_labels(accepted: list) -> str:
    labels = [_ACCEPT_LABELS.get(a, str(a)) for a in accepted]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " ou " + labels[-1]


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace(".", ",")


def _plural(count: Any, singular: str, plural: str) -> str:
    return f"{_number(count)} {singular if count == 1 else plural}"


def _option_label(option: Any) -> str:
    if option is True:
        return "sim"
    if option is False:
        return "não"
    return str(option)


def _choose_from(labels: list[str]) -> str:
    text = ", ".join(labels)
    if not labels or len(labels) > 15 or len(text) > 300:
        return "Escolha uma das opções disponíveis."
    return f"Escolha uma das opções: {text}."


def _const_choices(branches: Any) -> list[str] | None:
    # oneOf: [{"const": ..., "title": ...}, ...] is how forms list options with labels.
    if not isinstance(branches, list) or not branches:
        return None
    if not all(isinstance(b, dict) and "const" in b for b in branches):
        return None
    return [str(b.get("title", _option_label(b["const"]))) for b in branches]


def _missing_property_schema(error: ValidationError) -> dict:
    schema = error.schema if isinstance(error.schema, dict) else {}
    props = schema.get("properties")
    prop = props.get(error.path[-1]) if isinstance(props, dict) and error.path else None
    return prop if isinstance(prop, dict) else {}


def _custom_message(error: ValidationError) -> str | None:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("required", "dependentRequired"):
        # The override lives on the missing property's own schema.
        schema = _missing_property_schema(error)
        if schema.get("const") is True:
            return CHECK_REQUIRED  # an unticked checkbox is simply absent from the post
    custom = schema.get("x-messages")
    if isinstance(custom, dict) and isinstance(custom.get(error.validator), str):
        return custom[error.validator]
    return None


def _message(error: ValidationError) -> str:
    custom = _custom_message(error)
    if custom:
        return custom
    kind = error.validator
    value = error.validator_value
    instance = error.instance
    if kind in ("required", "dependentRequired", "x-accept"):
        return error.message
    if kind == "type":
        types = [value] if isinstance(value, str) else [t for t in value if t != "null"]
        return _TYPE_MESSAGES.get(types[0], INVALID) if len(types) == 1 else INVALID
    if kind == "enum":
        return _choose_from([_option_label(o) for o in value if o is not None])
    if kind == "const":
        return CHECK_REQUIRED if value is True else INVALID
    if kind in ("oneOf", "anyOf"):
        choices = _const_choices(value)
        return _choose_from(choices) if choices else INVALID
    if kind == "format":
        cause = error.cause
        if isinstance(cause, ValueError) and cause.args and isinstance(cause.args[0], str):
            return cause.args[0]
        return FORMAT_MESSAGES.get(value, "Formato inválido.")
    if kind == "maxLength":
        typed = len(instance) if isinstance(instance, str) else 0
        return f"No máximo {_plural(value, 'caractere', 'caracteres')} (você digitou {typed})."
    if kind == "minLength":
        return f"No mínimo {_plural(value, 'caractere', 'caracteres')}."
    if kind == "minItems":
        return f"Adicione pelo menos {_plural(value, 'item', 'itens')}."
    if kind == "maxItems":
        return f"No máximo {_plural(value, 'item', 'itens')}."
    if kind == "uniqueItems":
        return "Há itens repetidos."
    if kind == "pattern":
        return "Formato inválido."
    if kind == "minimum":
        return f"Informe um valor maior ou igual a {_number(value)}."
    if kind == "maximum":
        return f"Informe um valor menor ou igual a {_number(value)}."
    if kind == "exclusiveMinimum":
        return f"Informe um valor maior que {_number(value)}."
    if kind == "exclusiveMaximum":
        return f"Informe um valor menor que {_number(value)}."
    if kind == "multipleOf":
        return f"Informe um múltiplo de {_number(value)}."
    if kind in (None, "additionalProperties", "unevaluatedProperties", "propertyNames"):
        return "Campo não permitido."
    if kind == "not":
        return "Valor não permitido."
    return INVALID


def _path(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path)


def _describe(error: ValidationError) -> tuple[str, str]:
    choosing = error.validator in ("oneOf", "anyOf") and error.context
    if choosing and _const_choices(error.validator_value) is None:
        best = best_match(error.context)
        if best is not None:
            return _describe(best)
    return _path(error), _message(error)


def schema_errors(validator: Any, instance: Any) -> dict[str, str]:
    """``{path: message}`` of the schema's errors, one message per path."""
    # A type error says the most; other errors on the same value are noise then.
    found = sorted(validator.iter_errors(instance), key=lambda e: e.validator != "type")
    errors: dict[str, str] = {}
    for error in found:
        path, message = _describe(error)
        errors.setdefault(path, message)  # one message per path, the first
    return errors


# ---------------------------------------------------------------- English
# The messages above are written in Portuguese where they are made (deep in the validation,
# where no language is known); ``localize`` gives a reader who chose English the same message
# in English: fixed messages by table, the ones with numbers, options or names by pattern.

_EN = {
    REQUIRED: "Required field.",
    INVALID: "Invalid value.",
    FORM_INVALID: "Invalid form data.",
    CHECK_REQUIRED: "This option must be ticked.",
    DATE_INVALID: "Invalid date (use dd/mm/yyyy).",
    TIME_INVALID: "Invalid time (use hh:mm).",
    EMAIL_INVALID: "Invalid e-mail address.",
    IPV4_INVALID: "Invalid IPv4 address.",
    FILE_NOT_FOUND: "File not found. Please send the file again.",
    NOT_FINITE: "Enter a finite number.",
    PUBLIC_IP: "Enter a public IP (not private, reserved or loopback).",
    CNES_NOT_REGISTERED: "CNES not registered in the organization.",
    OPTION_UNAVAILABLE: "Operation not available in this portfolio.",
    "Informe um número inteiro.": "Enter a whole number.",
    "Informe um número.": "Enter a number.",
    "Informe um texto.": "Enter a text.",
    "Escolha sim ou não.": "Choose yes or no.",
    "Informe uma lista de itens.": "Enter a list of items.",
    "CPF inválido.": "Invalid CPF.",
    "CNPJ inválido.": "Invalid CNPJ.",
    "CNS inválido.": "Invalid CNS.",
    "CNES inválido.": "Invalid CNES.",
    "Formato inválido.": "Invalid format.",
    "Escolha uma das opções disponíveis.": "Choose one of the available options.",
    "Há itens repetidos.": "There are repeated items.",
    "Campo não permitido.": "Field not allowed.",
    "Valor não permitido.": "Value not allowed.",
    "Valor repetido.": "Repeated value.",
    "CPF com todos os dígitos iguais não é válido.": "A CPF with all digits equal is not valid.",
    "Dígitos verificadores do CPF não conferem.": "The CPF's check digits do not match.",
    "CNPJ deve ter 14 caracteres.": "A CNPJ must have 14 characters.",
    "Os dois últimos caracteres do CNPJ devem ser números.": (
        "The last two characters of a CNPJ must be digits."
    ),
    "CNPJ com todos os dígitos iguais não é válido.": "A CNPJ with all digits equal is not valid.",
    "Dígitos verificadores do CNPJ não conferem.": "The CNPJ's check digits do not match.",
    "Dígito verificador do CNS não confere.": "The CNS's check digit does not match.",
    "Dígito verificador do CNS provisório não confere.": (
        "The provisional CNS's check digit does not match."
    ),
    "CNS deve começar com 1, 2, 7, 8 ou 9.": "A CNS must start with 1, 2, 7, 8 or 9.",
}
_EN_UNITS = {"caractere": "character", "caracteres": "characters", "item": "item", "itens": "items"}


def _en_number(text: str) -> str:
    return text.replace(",", ".")


def _en_count(count: str, unit: str) -> str:
    return f"{_en_number(count)} {_EN_UNITS.get(unit, unit)}"


def _en_options(text: str, words: Mapping[str, str]) -> str:
    options = [words.get(o, {"sim": "yes", "não": "no"}.get(o, o)) for o in text.split(", ")]
    return ", ".join(options)


_EN_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str], Mapping[str, str]], str]]] = [
    (
        re.compile(r"No máximo (\S+) (caracteres?) \(você digitou (\d+)\)\.$"),
        lambda m, w: f"At most {_en_count(m[1], m[2])} (you typed {m[3]}).",
    ),
    (
        re.compile(r"No mínimo (\S+) (caracteres?)\.$"),
        lambda m, w: f"At least {_en_count(m[1], m[2])}.",
    ),
    (
        re.compile(r"Adicione pelo menos (\S+) (itens|item)\.$"),
        lambda m, w: f"Add at least {_en_count(m[1], m[2])}.",
    ),
    (
        re.compile(r"No máximo (\S+) (itens|item)\.$"),
        lambda m, w: f"At most {_en_count(m[1], m[2])}.",
    ),
    (
        re.compile(r"Informe um valor maior ou igual a (\S+)\.$"),
        lambda m, w: f"Enter a value greater than or equal to {_en_number(m[1])}.",
    ),
    (
        re.compile(r"Informe um valor menor ou igual a (\S+)\.$"),
        lambda m, w: f"Enter a value less than or equal to {_en_number(m[1])}.",
    ),
    (
        re.compile(r"Informe um valor maior que (\S+)\.$"),
        lambda m, w: f"Enter a value greater than {_en_number(m[1])}.",
    ),
    (
        re.compile(r"Informe um valor menor que (\S+)\.$"),
        lambda m, w: f"Enter a value less than {_en_number(m[1])}.",
    ),
    (
        re.compile(r"Informe um múltiplo de (\S+)\.$"),
        lambda m, w: f"Enter a multiple of {_en_number(m[1])}.",
    ),
    (
        re.compile(r"Escolha uma das opções: (.*)\.$", re.S),
        lambda m, w: f"Choose one of the options: {_en_options(m[1], w)}.",
    ),
    (
        re.compile(r"Tipo de arquivo não aceito\. Envie: (.*)\.$", re.S),
        lambda m, w: (
            "File type not accepted. Send: "
            + m[1].replace("certificado digital", "digital certificate").replace(" ou ", " or ")
            + "."
        ),
    ),
    (
        re.compile(
            r"Estabelecimento filho deve ser da mesma UF \((\w*)\) do estabelecimento cessionário\.$"
        ),
        lambda m, w: (
            f"A child establishment must be in the same UF ({m[1]}) as the assignee establishment."
        ),
    ),
    (
        re.compile(r"Deve ser maior ou igual a (.*)\.$", re.S),
        lambda m, w: f"Must be greater than or equal to {w.get(m[1], m[1])}.",
    ),
    (
        re.compile(r"Deve ser diferente de (.*)\.$", re.S),
        lambda m, w: f"Must be different from {w.get(m[1], m[1])}.",
    ),
    (re.compile(r"Informe o (\w+) como texto\.$"), lambda m, w: f"Enter the {m[1]} as text."),
    (re.compile(r"Informe o (\w+)\.$"), lambda m, w: f"Enter the {m[1]}."),
    (
        re.compile(r"(\w+) deve conter apenas números\.$"),
        lambda m, w: f"The {m[1]} must contain digits only.",
    ),
    (
        re.compile(r"(\w+) deve ter (\d+) dígitos\.$"),
        lambda m, w: f"The {m[1]} must have {m[2]} digits.",
    ),
    (
        re.compile(r"(\w+) contém caracteres inválidos \(use apenas números( e letras)?\)\.$"),
        lambda m, w: (
            f"The {m[1]} has invalid characters (use digits"
            + (" and letters only)." if m[2] else " only).")
        ),
    ),
]


def localize(message: str, locale: str | None, words: Mapping[str, str] | None = None) -> str:
    """``message`` in the reader's language: unchanged in Portuguese; in English, the form's
    own message from the process catalog ``words`` (``x-messages``, rule messages), else the
    English of a validation message or of a certificate's inspection, else unchanged (a text
    no table knows)."""
    if not isinstance(message, str) or not (locale or "").lower().startswith("en"):
        return message
    words = words or {}
    if message in words:
        return words[message]
    if message in _EN:
        return _EN[message]
    for pattern, english in _EN_PATTERNS:
        found = pattern.match(message)
        if found:
            return english(found, words)
    return certificate_english(message) or message  # a certificate's, at a file field
