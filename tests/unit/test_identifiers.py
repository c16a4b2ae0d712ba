"""CPF, CNPJ, CNS and CNES: known vectors, known-invalid input, and property tests.

The reference implementations below are written independently from the module,
straight from the textbook definitions, so a shared mistake is unlikely.
"""

import random
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine import identifiers as ids
from engine.identifiers import InvalidIdentifier

VALID_CPF = ["39053344705", "02474347100"]
VALID_CNPJ = ["10302910000182", "16727230000197", "12ABC34501DE35"]
VALID_CNS = ["207284801600008", "702303127009117", "705800463790438"]

NON_ASCII_DIGITS = ["١", "０", "۳", "߁", "𝟙"]  # Arabic-Indic, fullwidth, Persian, NKo, math


# --- reference implementations ---------------------------------------------------------


def ref_cpf_ok(s: str) -> bool:
    if len(s) != 11 or any(c not in "0123456789" for c in s):
        return False
    if s == s[0] * 11:
        return False
    for n in (9, 10):
        total = 0
        for i in range(n):
            total += int(s[i]) * (n + 1 - i)
        # Textbook form: (sum * 10) mod 11, where 10 becomes 0.
        digit = (total * 10) % 11
        if digit == 10:
            digit = 0
        if digit != int(s[n]):
            return False
    return True


def ref_cnpj_digit(chars: str) -> int:
    # Weights 2..9 cycling from the right.
    total = 0
    weight = 2
    for c in reversed(chars):
        total += (ord(c) - ord("0")) * weight
        weight = 2 if weight == 9 else weight + 1
    rest = total % 11
    return 0 if rest < 2 else 11 - rest


def ref_cnpj_ok(s: str) -> bool:
    if len(s) != 14:
        return False
    if any(c not in string.digits + string.ascii_uppercase for c in s[:12]):
        return False
    if any(c not in "0123456789" for c in s[12:]):
        return False
    if s == s[0] * 14:
        return False
    first = ref_cnpj_digit(s[:12])
    second = ref_cnpj_digit(s[:12] + str(first))
    return s[12:] == f"{first}{second}"


def ref_cns_ok(s: str) -> bool:
    # Stated differently from the module: the weighted sum of all 15 digits is a
    # multiple of 11, and a definitive CNS carries "001" exactly when the DATASUS
    # routine had to add 2 (first 11 digits summing to 1 mod 11), "000" otherwise.
    if len(s) != 15 or any(c not in "0123456789" for c in s):
        return False
    total = 0
    for i, c in enumerate(s):
        total += int(c) * (15 - i)
    if s[0] in "789":
        return total % 11 == 0
    if s[0] in "12":
        head = 0
        for i in range(11):
            head += int(s[i]) * (15 - i)
        middle = "001" if head % 11 == 1 else "000"
        return s[11:14] == middle and total % 11 == 0
    return False


def ref_make_cpf(first9: str) -> str:
    s = first9
    for n in (9, 10):
        total = sum(int(s[i]) * (n + 1 - i) for i in range(n))
        s += str((total * 10) % 11 % 10)
    return s


def ref_make_cnpj(first12: str) -> str:
    first = ref_cnpj_digit(first12)
    return first12 + str(first) + str(ref_cnpj_digit(first12 + str(first)))


# --- strategies ----------------------------------------------------------------------

digits = st.text(alphabet=string.digits, min_size=0, max_size=18)
cnpj_alphabet = string.digits + string.ascii_uppercase
seeds = st.integers(min_value=0, max_value=2**32)


@st.composite
def valid_cpfs(draw):
    first9 = draw(st.text(alphabet=string.digits, min_size=9, max_size=9))
    assume(len(set(first9)) > 1)
    return ref_make_cpf(first9)


@st.composite
def valid_cnpjs(draw):
    first12 = draw(st.text(alphabet=cnpj_alphabet, min_size=12, max_size=12))
    cnpj = ref_make_cnpj(first12)
    assume(len(set(cnpj)) > 1)
    return cnpj


# --- known vectors -------------------------------------------------------------------


@pytest.mark.parametrize("cpf", VALID_CPF)
def test_known_valid_cpf(cpf):
    assert ids.is_valid_cpf(cpf)
    assert ids.validate_cpf(cpf) == cpf
    assert ref_cpf_ok(cpf)


@pytest.mark.parametrize("cnpj", VALID_CNPJ)
def test_known_valid_cnpj(cnpj):
    assert ids.is_valid_cnpj(cnpj)
    assert ids.validate_cnpj(cnpj) == cnpj
    assert ids.validate_cnpj(cnpj.lower()) == cnpj
    assert ref_cnpj_ok(cnpj)


@pytest.mark.parametrize("cns", VALID_CNS)
def test_known_valid_cns(cns):
    assert ids.is_valid_cns(cns)
    assert ids.validate_cns(cns) == cns
    assert ref_cns_ok(cns)


def test_formatted_input_is_accepted():
    assert ids.validate_cpf(" 390.533.447-05 ") == "39053344705"
    assert ids.validate_cnpj("12.abc.345/01de-35") == "12ABC34501DE35"
    assert ids.validate_cns("207 2848 0160 0008") == "207284801600008"
    assert ids.validate_cnes(" 0000068\t") == "0000068"


def test_format_masks():
    assert ids.format_cpf("02474347100") == "024.743.471-00"
    assert ids.format_cnpj("10302910000182") == "10.302.910/0001-82"
    assert ids.format_cnpj("12abc34501de35") == "12.ABC.345/01DE-35"
    assert ids.format_cns("702303127009117") == "702 3031 2700 9117"
    assert ids.format_cnes("0000068") == "0000068"


def test_format_rejects_wrong_shape():
    with pytest.raises(InvalidIdentifier):
        ids.format_cpf("123")
    with pytest.raises(InvalidIdentifier):
        ids.format_cnpj("123")
    with pytest.raises(ValueError):  # InvalidIdentifier is a ValueError
        ids.format_cns("12345678901234X")


# --- known invalid -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("39053344706", "Dígitos verificadores do CPF não conferem."),
        ("39053344715", "Dígitos verificadores do CPF não conferem."),
        ("11111111111", "CPF com todos os dígitos iguais não é válido."),
        ("000.000.000-00", "CPF com todos os dígitos iguais não é válido."),
        ("3905334470", "CPF deve ter 11 dígitos."),
        ("390533447050", "CPF deve ter 11 dígitos."),
        ("", "Informe o CPF."),
        ("  ", "Informe o CPF."),
        (None, "Informe o CPF."),
        ("3905334470A", "CPF deve conter apenas números."),
    ],
)
def test_invalid_cpf_messages(value, message):
    assert not ids.is_valid_cpf(value)
    with pytest.raises(InvalidIdentifier) as excinfo:
        ids.validate_cpf(value)
    assert excinfo.value.message == message
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10302910000183", "Dígitos verificadores do CNPJ não conferem."),
        ("12ABC34501DE36", "Dígitos verificadores do CNPJ não conferem."),
        ("00000000000000", "CNPJ com todos os dígitos iguais não é válido."),
        ("11.111.111/1111-11", "CNPJ com todos os dígitos iguais não é válido."),
        ("1030291000018", "CNPJ deve ter 14 caracteres."),
        ("103029100001822", "CNPJ deve ter 14 caracteres."),
        ("12ABC34501DEAB", "Os dois últimos caracteres do CNPJ devem ser números."),
        ("", "Informe o CNPJ."),
        (None, "Informe o CNPJ."),
    ],
)
def test_invalid_cnpj_messages(value, message):
    assert not ids.is_valid_cnpj(value)
    with pytest.raises(InvalidIdentifier) as excinfo:
        ids.validate_cnpj(value)
    assert excinfo.value.message == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("207284801600009", "Dígito verificador do CNS não confere."),
        ("702303127009118", "Dígito verificador do CNS provisório não confere."),
        ("307284801600008", "CNS deve começar com 1, 2, 7, 8 ou 9."),
        ("000000000000000", "CNS deve começar com 1, 2, 7, 8 ou 9."),
        ("20728480160000", "CNS deve ter 15 dígitos."),
        ("", "Informe o CNS."),
    ],
)
def test_invalid_cns_messages(value, message):
    assert not ids.is_valid_cns(value)
    with pytest.raises(InvalidIdentifier) as excinfo:
        ids.validate_cns(value)
    assert excinfo.value.message == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("123456", "CNES deve ter 7 dígitos."),
        ("12345678", "CNES deve ter 7 dígitos."),
        ("123456A", "CNES deve conter apenas números."),
        ("", "Informe o CNES."),
    ],
)
def test_invalid_cnes_messages(value, message):
    assert not ids.is_valid_cnes(value)
    with pytest.raises(InvalidIdentifier) as excinfo:
        ids.validate_cnes(value)
    assert excinfo.value.message == message


@pytest.mark.parametrize("bad_digit", NON_ASCII_DIGITS)
def test_non_ascii_digits_are_rejected(bad_digit):
    cpf = bad_digit + VALID_CPF[0][1:]
    cnpj = bad_digit + VALID_CNPJ[0][1:]
    cns = bad_digit + VALID_CNS[0][1:]
    for normalize, value in [
        (ids.normalize_cpf, cpf),
        (ids.normalize_cnpj, cnpj),
        (ids.normalize_cns, cns),
        (ids.normalize_cnes, bad_digit * 7),
    ]:
        with pytest.raises(ValueError):
            normalize(value)
    assert not ids.is_valid_cpf(cpf)
    assert not ids.is_valid_cnpj(cnpj)
    assert not ids.is_valid_cns(cns)
    assert not ids.is_valid_cnes(bad_digit * 7)


def test_non_ascii_letters_that_upper_case_to_ascii_are_rejected():
    # 'ı'.upper() == 'I' and 'ß'.upper() == 'SS': the check must come before upper().
    with pytest.raises(InvalidIdentifier):
        ids.normalize_cnpj("12ıBC34501DE35")
    assert not ids.is_valid_cnpj("12ßC34501DE35")


@pytest.mark.parametrize("junk", [None, 39053344705, 3.5, [], {}, b"39053344705", object()])
def test_is_valid_never_raises_on_junk(junk):
    for is_valid in (ids.is_valid_cpf, ids.is_valid_cnpj, ids.is_valid_cns, ids.is_valid_cnes):
        assert is_valid(junk) is False


def test_integers_are_refused_because_leading_zeros_matter():
    with pytest.raises(InvalidIdentifier, match="texto"):
        ids.validate_cpf(2474347100)


def test_validate_identifier_by_kind():
    assert ids.validate_identifier("cpf", "390.533.447-05") == "39053344705"
    assert ids.format_identifier("cns", "207284801600008") == "207 2848 0160 0008"
    assert ids.normalize_identifier("cnpj", "12.abc") == "12ABC"
    assert {"cpf", "cnpj", "cns", "cnes"} == ids.IDENTIFIER_KINDS


# --- properties ----------------------------------------------------------------------


@given(digits)
def test_cpf_matches_reference_on_digit_strings(s):
    assert ids.is_valid_cpf(s) == ref_cpf_ok(s)


@given(st.text(max_size=20))
def test_cpf_matches_reference_on_any_text(s):
    try:
        normalized = ids.normalize_cpf(s)
    except ValueError:
        assert not ids.is_valid_cpf(s)
    else:
        assert ids.is_valid_cpf(s) == ref_cpf_ok(normalized)


@given(valid_cpfs())
def test_reference_valid_cpfs_are_valid(cpf):
    assert ids.validate_cpf(cpf) == cpf
    assert ids.normalize_cpf(ids.format_cpf(cpf)) == cpf


@given(valid_cpfs(), st.integers(min_value=0, max_value=10), st.integers(1, 9))
def test_cpf_single_digit_change_agrees_with_reference(cpf, position, delta):
    changed = cpf[:position] + str((int(cpf[position]) + delta) % 10) + cpf[position + 1 :]
    assert ids.is_valid_cpf(changed) == ref_cpf_ok(changed)
    if position >= 9:
        # A changed check digit can never be valid.
        assert not ids.is_valid_cpf(changed)


@given(st.text(alphabet=cnpj_alphabet, min_size=14, max_size=14))
def test_cnpj_matches_reference_on_alphanumeric_strings(s):
    assert ids.is_valid_cnpj(s) == ref_cnpj_ok(s)


@given(st.text(max_size=20))
def test_cnpj_matches_reference_on_any_text(s):
    try:
        normalized = ids.normalize_cnpj(s)
    except ValueError:
        assert not ids.is_valid_cnpj(s)
    else:
        assert ids.is_valid_cnpj(s) == ref_cnpj_ok(normalized)


@given(valid_cnpjs())
def test_reference_valid_cnpjs_are_valid(cnpj):
    assert ids.validate_cnpj(cnpj) == cnpj
    assert ids.normalize_cnpj(ids.format_cnpj(cnpj)) == cnpj
    assert ids.is_valid_cnpj(ids.format_cnpj(cnpj).lower())


@given(valid_cnpjs(), st.integers(min_value=0, max_value=13), st.sampled_from(cnpj_alphabet))
def test_cnpj_single_char_change_agrees_with_reference(cnpj, position, char):
    assume(cnpj[position] != char)
    changed = cnpj[:position] + char + cnpj[position + 1 :]
    assert ids.is_valid_cnpj(changed) == ref_cnpj_ok(changed)
    if position >= 12:
        assert not ids.is_valid_cnpj(changed)


@given(st.text(alphabet=string.digits, min_size=15, max_size=15))
def test_cns_matches_reference_on_digit_strings(s):
    assert ids.is_valid_cns(s) == ref_cns_ok(s)


@given(st.sampled_from("12"), st.text(alphabet=string.digits, min_size=10, max_size=10))
def test_cns_definitive_built_by_reference_rule_is_valid(first, rest):
    # Build a definitive CNS by trying every ending and keeping the reference's pick.
    head = first + rest
    candidates = [head + m + str(d) for m in ("000", "001") for d in range(10)]
    valid = [c for c in candidates if ref_cns_ok(c)]
    assert len(valid) == 1
    assert ids.is_valid_cns(valid[0])
    assert sum(ids.is_valid_cns(c) for c in candidates) == 1


@given(st.text(max_size=20))
def test_cns_matches_reference_on_any_text(s):
    try:
        normalized = ids.normalize_cns(s)
    except ValueError:
        assert not ids.is_valid_cns(s)
    else:
        assert ids.is_valid_cns(s) == ref_cns_ok(normalized)


@given(st.text(max_size=12))
def test_cnes_is_seven_ascii_digits(s):
    try:
        normalized = ids.normalize_cnes(s)
    except ValueError:
        assert not ids.is_valid_cnes(s)
    else:
        expected = len(normalized) == 7 and all(c in "0123456789" for c in normalized)
        assert ids.is_valid_cnes(s) == expected


@given(seeds)
def test_generated_numbers_are_valid_and_round_trip(seed):
    rng = random.Random(seed)
    cpf = ids.generate_cpf(rng)
    cnpj = ids.generate_cnpj(rng)
    cnpj_alpha = ids.generate_cnpj(rng, alphanumeric=True)
    cns = ids.generate_cns(rng)
    cns_prov = ids.generate_cns(rng, provisional=True)
    cnes = ids.generate_cnes(rng)

    assert ref_cpf_ok(cpf) and ids.is_valid_cpf(cpf)
    assert ref_cnpj_ok(cnpj) and cnpj.isdigit()
    assert ref_cnpj_ok(cnpj_alpha) and any(c.isalpha() for c in cnpj_alpha)
    assert ref_cns_ok(cns) and cns[0] in "12"
    assert ref_cns_ok(cns_prov) and cns_prov[0] in "789"
    assert ids.is_valid_cnes(cnes)

    assert ids.normalize_cpf(ids.format_cpf(cpf)) == cpf
    assert ids.normalize_cnpj(ids.format_cnpj(cnpj_alpha)) == cnpj_alpha
    assert ids.normalize_cns(ids.format_cns(cns_prov)) == cns_prov
    assert ids.normalize_cnes(ids.format_cnes(cnes)) == cnes


@given(seeds)
def test_generated_check_digit_flip_is_invalid(seed):
    rng = random.Random(seed)
    cpf = ids.generate_cpf(rng)
    cnpj = ids.generate_cnpj(rng, alphanumeric=rng.random() < 0.5)
    cns = ids.generate_cns(rng, provisional=rng.random() < 0.5)
    for value, is_valid in ((cpf, ids.is_valid_cpf), (cnpj, ids.is_valid_cnpj)):
        for position in (-2, -1):
            index = len(value) + position
            flipped = str((int(value[index]) + rng.randint(1, 9)) % 10)
            assert not is_valid(value[:index] + flipped + value[index + 1 :])
    flipped_last = cns[:-1] + str((int(cns[-1]) + rng.randint(1, 9)) % 10)
    assert not ids.is_valid_cns(flipped_last)


def test_generators_are_deterministic_for_a_seed():
    first = [ids.generate_cpf(random.Random(7)), ids.generate_cnpj(random.Random(7), True)]
    second = [ids.generate_cpf(random.Random(7)), ids.generate_cnpj(random.Random(7), True)]
    assert first == second
