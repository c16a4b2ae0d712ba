"""Brazilian identifiers: CPF, CNPJ (numeric and alphanumeric), CNS and CNES.

Every identifier is kept as text (leading zeros matter). Each kind has the same
four functions:

- ``normalize_X(value)``: strips ``. - /`` and whitespace, upper-cases, and raises
  ``InvalidIdentifier`` (a ``ValueError``) on any character that is not ASCII
  ``[0-9A-Za-z]``. It does not check length or check digits.
- ``is_valid_X(value)``: never raises; accepts formatted or raw input.
- ``format_X(value)``: the usual mask; raises ``InvalidIdentifier`` when the
  value does not have the right shape (check digits are not required).
- ``validate_X(value)``: the normalized value, or ``InvalidIdentifier`` with a
  message in Portuguese saying what is wrong.

Rules follow the domain notes (DOMAIN.md, identifiers). ``generate_X(rng)`` produce valid
numbers for demo data and benchmarks.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

__all__ = [
    "IDENTIFIER_KINDS",
    "InvalidIdentifier",
    "format_cnes",
    "format_cnpj",
    "format_cns",
    "format_cpf",
    "format_identifier",
    "generate_cnes",
    "generate_cnpj",
    "generate_cns",
    "generate_cpf",
    "is_valid_cnes",
    "is_valid_cnpj",
    "is_valid_cns",
    "is_valid_cpf",
    "normalize_cnes",
    "normalize_cnpj",
    "normalize_cns",
    "normalize_cpf",
    "normalize_identifier",
    "validate_cnes",
    "validate_cnpj",
    "validate_cns",
    "validate_cpf",
    "validate_identifier",
]


class InvalidIdentifier(ValueError):
    """An identifier that does not pass its rules; ``message`` is for the user (pt-BR)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


CPF_LENGTH = 11
CNPJ_LENGTH = 14
CNS_LENGTH = 15
CNES_LENGTH = 7

# Explicit ASCII sets: str.isdigit()/isalnum() accept '١' or fullwidth digits.
_DIGITS = frozenset(string.digits)
_CNPJ_BASE_CHARS = frozenset(string.digits + string.ascii_uppercase)
_ACCEPTED = frozenset(string.digits + string.ascii_letters)
_SEPARATORS = frozenset(".-/")

_CNPJ_WEIGHTS_1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


# --- normalization -------------------------------------------------------------------


def _normalize(value: object, label: str) -> str:
    if value is None:
        raise InvalidIdentifier(f"Informe o {label}.")
    if not isinstance(value, str):
        # Numbers are refused on purpose: an int has already lost its leading zeros.
        raise InvalidIdentifier(f"Informe o {label} como texto.")
    kept = []
    for char in value:
        if char in _SEPARATORS or char.isspace():
            continue
        # Checked before upper(): 'ß'.upper() is 'SS' and 'ı'.upper() is 'I'.
        if char not in _ACCEPTED:
            raise InvalidIdentifier(
                f"{label} contém caracteres inválidos (use apenas números"
                + (" e letras)." if label == "CNPJ" else ").")
            )
        kept.append(char)
    return "".join(kept).upper()


def is_digits(value: str) -> bool:
    """Whether ``value`` is one or more ASCII digits. ``str.isdigit`` is also true of "²",
    which ``int`` refuses, and of "١", which it reads: neither is a number a person types
    into our fields."""
    return bool(value) and value.isascii() and value.isdigit()


def normalize_cpf(value: str) -> str:
    return _normalize(value, "CPF")


def normalize_cnpj(value: str) -> str:
    return _normalize(value, "CNPJ")


def normalize_cns(value: str) -> str:
    return _normalize(value, "CNS")


def normalize_cnes(value: str) -> str:
    return _normalize(value, "CNES")


# --- check digits --------------------------------------------------------------------


def _mod11_digit(total: int) -> int:
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def _cpf_check_digits(first9: str) -> str:
    digits = [int(c) for c in first9]
    dv1 = _mod11_digit(sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)))
    digits.append(dv1)
    dv2 = _mod11_digit(sum(d * w for d, w in zip(digits, range(11, 1, -1), strict=True)))
    return f"{dv1}{dv2}"


def _cnpj_check_digits(first12: str) -> str:
    # IN RFB 2.229/2024: a character is worth its ASCII code minus 48 ('0'=0, 'A'=17).
    values = [ord(c) - 48 for c in first12]
    dv1 = _mod11_digit(sum(v * w for v, w in zip(values, _CNPJ_WEIGHTS_1, strict=True)))
    values.append(dv1)
    dv2 = _mod11_digit(sum(v * w for v, w in zip(values, _CNPJ_WEIGHTS_2, strict=True)))
    return f"{dv1}{dv2}"


def _cns_definitive_from(first11: str) -> str:
    total = sum(int(c) * w for c, w in zip(first11, range(15, 4, -1), strict=True))
    dv = 11 - total % 11
    if dv == 11:
        dv = 0
    if dv == 10:
        # DATASUS's routine: add 2, recompute, and mark the number with "001".
        total += 2
        dv = 11 - total % 11
        return f"{first11}001{dv}"
    return f"{first11}000{dv}"


def _cns_weighted_sum(digits: str) -> int:
    return sum(int(c) * w for c, w in zip(digits, range(15, 0, -1), strict=True))


# --- validation ----------------------------------------------------------------------


def _digits_only(value: object, label: str, length: int) -> str:
    normalized = _normalize(value, label)
    if not normalized:
        raise InvalidIdentifier(f"Informe o {label}.")
    if not set(normalized) <= _DIGITS:
        raise InvalidIdentifier(f"{label} deve conter apenas números.")
    if len(normalized) != length:
        raise InvalidIdentifier(f"{label} deve ter {length} dígitos.")
    return normalized


def validate_cpf(value: str) -> str:
    cpf = _digits_only(value, "CPF", CPF_LENGTH)
    # 111.111.111-11 and friends pass the arithmetic but are not real CPFs.
    if len(set(cpf)) == 1:
        raise InvalidIdentifier("CPF com todos os dígitos iguais não é válido.")
    if _cpf_check_digits(cpf[:9]) != cpf[9:]:
        raise InvalidIdentifier("Dígitos verificadores do CPF não conferem.")
    return cpf


def validate_cnpj(value: str) -> str:
    cnpj = _normalize(value, "CNPJ")
    if not cnpj:
        raise InvalidIdentifier("Informe o CNPJ.")
    if len(cnpj) != CNPJ_LENGTH:
        raise InvalidIdentifier("CNPJ deve ter 14 caracteres.")
    if not set(cnpj[12:]) <= _DIGITS:
        raise InvalidIdentifier("Os dois últimos caracteres do CNPJ devem ser números.")
    if len(set(cnpj)) == 1:
        raise InvalidIdentifier("CNPJ com todos os dígitos iguais não é válido.")
    if _cnpj_check_digits(cnpj[:12]) != cnpj[12:]:
        raise InvalidIdentifier("Dígitos verificadores do CNPJ não conferem.")
    return cnpj


def validate_cns(value: str) -> str:
    cns = _digits_only(value, "CNS", CNS_LENGTH)
    first = cns[0]
    if first in "12":
        if _cns_definitive_from(cns[:11]) != cns:
            raise InvalidIdentifier("Dígito verificador do CNS não confere.")
    elif first in "789":
        if _cns_weighted_sum(cns) % 11 != 0:
            raise InvalidIdentifier("Dígito verificador do CNS provisório não confere.")
    else:
        raise InvalidIdentifier("CNS deve começar com 1, 2, 7, 8 ou 9.")
    return cns


def validate_cnes(value: str) -> str:
    # CNES has no public check digit: only the shape can be checked.
    return _digits_only(value, "CNES", CNES_LENGTH)


def _passes(validate: Callable[[str], str], value: object) -> bool:
    try:
        validate(value)
    except InvalidIdentifier:
        return False
    return True


def is_valid_cpf(value: object) -> bool:
    return _passes(validate_cpf, value)


def is_valid_cnpj(value: object) -> bool:
    return _passes(validate_cnpj, value)


def is_valid_cns(value: object) -> bool:
    return _passes(validate_cns, value)


def is_valid_cnes(value: object) -> bool:
    return _passes(validate_cnes, value)


# --- formatting ----------------------------------------------------------------------


def format_cpf(value: str) -> str:
    """000.000.000-00"""
    cpf = _digits_only(value, "CPF", CPF_LENGTH)
    return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"


def format_cnpj(value: str) -> str:
    """00.000.000/0000-00 (letters of an alphanumeric CNPJ kept, upper-case)."""
    cnpj = _normalize(value, "CNPJ")
    if len(cnpj) != CNPJ_LENGTH:
        raise InvalidIdentifier("CNPJ deve ter 14 caracteres.")
    return f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"


def format_cns(value: str) -> str:
    """000 0000 0000 0000"""
    cns = _digits_only(value, "CNS", CNS_LENGTH)
    return f"{cns[:3]} {cns[3:7]} {cns[7:11]} {cns[11:]}"


def format_cnes(value: str) -> str:
    """CNES is shown as its 7 digits."""
    return _digits_only(value, "CNES", CNES_LENGTH)


# --- by kind (used by form formats) --------------------------------------------------

_BY_KIND: dict[str, tuple[Callable[[str], str], Callable[[str], str], Callable[[str], str]]] = {
    "cpf": (normalize_cpf, validate_cpf, format_cpf),
    "cnpj": (normalize_cnpj, validate_cnpj, format_cnpj),
    "cns": (normalize_cns, validate_cns, format_cns),
    "cnes": (normalize_cnes, validate_cnes, format_cnes),
}
IDENTIFIER_KINDS = frozenset(_BY_KIND)


def normalize_identifier(kind: str, value: str) -> str:
    return _BY_KIND[kind][0](value)


def validate_identifier(kind: str, value: str) -> str:
    return _BY_KIND[kind][1](value)


def format_identifier(kind: str, value: str) -> str:
    return _BY_KIND[kind][2](value)


# --- generators (demo data, benchmark seeds) -----------------------------------------


def _random_digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def generate_cpf(rng: random.Random) -> str:
    while True:
        first9 = _random_digits(rng, 9)
        if len(set(first9)) > 1:
            return first9 + _cpf_check_digits(first9)


def generate_cnpj(rng: random.Random, alphanumeric: bool = False) -> str:
    alphabet = string.digits + string.ascii_uppercase if alphanumeric else string.digits
    while True:
        first12 = "".join(rng.choice(alphabet) for _ in range(12))
        if alphanumeric and first12.isdigit():
            # The caller asked for an alphanumeric one: make sure it has a letter.
            position = rng.randrange(12)
            letter = rng.choice(string.ascii_uppercase)
            first12 = first12[:position] + letter + first12[position + 1 :]
        cnpj = first12 + _cnpj_check_digits(first12)
        if len(set(cnpj)) > 1:
            return cnpj


def generate_cns(rng: random.Random, provisional: bool = False) -> str:
    if not provisional:
        return _cns_definitive_from(rng.choice("12") + _random_digits(rng, 10))
    while True:
        first14 = rng.choice("789") + _random_digits(rng, 13)
        partial = _cns_weighted_sum(first14 + "0")
        last = -partial % 11  # the last weight is 1
        if last < 10:
            return f"{first14}{last}"


def generate_cnes(rng: random.Random) -> str:
    return _random_digits(rng, CNES_LENGTH)
