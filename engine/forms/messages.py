"""The pt-BR messages of form validation, and the message of each jsonschema error."""

from __future__ import annotations

from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match

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
