"""Reading and judging certificate files: every kind of file, every failure, and fuzzing.

The PKI comes from tests/support/pki.py; its root is passed as an extra trust anchor where a test
needs a certificate that counts as ICP-Brasil.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.pki import (
    CertificateError,
    check_usable,
    decode_other_name,
    icp_brasil_store,
    inspect,
    looks_like_certificate_file,
    person_fields,
    problems_of,
    public_der_from_upload,
)
from engine.pki.chain import verify_chain
from tests.support import pki as P
from tests.support.pki import CNPJ, CPF, OTHER_CNPJ, PASSWORD, pki


@pytest.fixture(scope="module")
def ca():
    return pki()


def judge(data: bytes, password=None, **kw):
    kw.setdefault("extra_anchors", pki().anchors)
    return inspect(data, password, **kw)


def error_of(data: bytes, password=None, **kw) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        judge(data, password, **kw)
    return info.value


def usable_error(report, **kw) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        check_usable(report, **kw)
    return info.value


def private_bytes(issued: P.Issued) -> list[bytes]:
    key = issued.key
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return [der, pem, base64.b64encode(der)]


# --- the good certificate, in every container ----------------------------------------------


@pytest.mark.parametrize("container", ["der", "pem", "base64", "pem_bundle", "p7b", "pfx"])
def test_good_ecnpj_in_every_container(ca, container):
    leaf = ca.ecnpj()
    data, password = {
        "der": (leaf.der, None),
        "pem": (leaf.pem, None),
        "base64": (base64.encodebytes(leaf.der), None),
        "pem_bundle": (ca.pem_bundle(leaf), None),
        "p7b": (ca.p7b(leaf), None),
        "pfx": (ca.pfx(leaf), PASSWORD),
    }[container]
    report = judge(data, password, expected_cnpj=CNPJ)
    check_usable(report)
    assert report.der == leaf.der
    assert report.sha256 == leaf.sha256
    assert report.cnpj == CNPJ
    assert report.holder_kind == "e-CNPJ"
    assert report.responsible_cpf == CPF
    assert report.responsible_name == "MARIA DA SILVA"
    assert report.responsible_birth_date == "1980-03-15"
    assert report.responsible_nis == P.NIS
    assert report.type == "A1"
    assert report.client_auth and report.icp_brasil
    assert report.has_private_key == (container == "pfx")
    assert report.problems == []
    assert {c.item for c in report.checklist} == {
        "parsed",
        "password",
        "validity",
        "icp_brasil",
        "private_key",
        "client_auth",
        "cnpj",
        "responsible_cpf",
        "type",
    }
    assert all(c.ok for c in report.checklist)


def test_report_fields_and_json(ca):
    leaf = ca.ecnpj()
    report = judge(ca.pfx(leaf), PASSWORD, expected_cnpj="12.ABC.345/01DE-35")
    data = report.to_dict()
    json.dumps(data)  # JSON-safe
    assert "der_base64" not in data
    assert data["serial"] == format(leaf.cert.serial_number, "x")
    assert data["subject"].startswith("CN=LABORATORIO EXEMPLO LTDA:12ABC34501DE35")
    assert data["issuer_cn"] == "AC Teste Credencia v5"
    assert data["not_after"].endswith("Z")
    assert data["extended_key_usage"] == ["clientAuth", "emailProtection"]
    assert "digital_signature" in data["key_usage"]
    assert data["policies"] == [P.A1_POLICY]
    assert data["chain"]["icp_brasil"] is True
    assert data["chain"]["anchor_source"] == "configured"
    assert len(data["chain"]["path"]) == 3
    assert data["expected_cnpj"] == CNPJ
    assert data["public_key"]["algorithm"] == "EC"
    assert 360 <= data["days_left"] <= 366
    with_der = report.to_dict(include_der=True)
    assert base64.b64decode(with_der["der_base64"]) == leaf.der


def test_rsa_leaf(ca):
    leaf = ca.ecnpj(key="rsa", key_name="rsa-leaf")
    report = judge(ca.pfx(leaf), PASSWORD)
    assert report.public_key == {"algorithm": "RSA", "size": 2048}
    assert "key_encipherment" in report.key_usage
    check_usable(report)


# --- ICP-Brasil otherName fields --------------------------------------------------------


@pytest.mark.parametrize("encoding", ["printable", "octet", "utf8"])
@pytest.mark.parametrize("layout", ["full", "short", "nis", "zeros", "long"])
def test_ecnpj_other_names(ca, encoding, layout):
    report = judge(ca.ecnpj(encoding=encoding, layout=layout).der)
    assert report.cnpj == CNPJ
    assert report.responsible_cpf == CPF
    assert report.identity_source == "san"
    birth = None if layout == "zeros" else "1980-03-15"
    assert report.responsible_birth_date == birth
    nis = None if layout in ("short", "zeros") else P.NIS
    assert report.responsible_nis == nis


@pytest.mark.parametrize("encoding", ["printable", "octet", "utf8"])
def test_ecpf_holder(ca, encoding):
    report = judge(ca.ecpf(encoding=encoding, cpf=P.OTHER_CPF).der)
    assert report.holder_kind == "e-CPF"
    assert report.holder_cpf == P.OTHER_CPF
    assert report.cpf_responsavel == P.OTHER_CPF
    assert report.cnpj is None
    assert report.other_names["titular_e_cpf"][0][8:19] == P.OTHER_CPF


def test_ecpf_for_an_establishment_is_a_cnpj_problem(ca):
    report = judge(ca.ecpf().der, expected_cnpj=CNPJ)
    err = usable_error(report)
    assert err.code == "cnpj_mismatch"
    assert "e-CPF" in err.message
    check_usable(report, allow_cnpj_exception=True)


def test_cn_fallback_without_san(ca):
    report = judge(ca.ecnpj(san=False).der, expected_cnpj=CNPJ)
    assert report.cnpj == CNPJ
    assert report.identity_source == "cn"
    assert report.responsible_cpf is None
    check_usable(report)
    cnpj_item = next(c for c in report.checklist if c.item == "cnpj")
    assert cnpj_item.ok and "lido do nome" in cnpj_item.message_pt
    cpf_item = next(c for c in report.checklist if c.item == "responsible_cpf")
    assert not cpf_item.ok and cpf_item.level == "warning"
    ecpf = judge(ca.ecpf(san=False).der)
    assert (ecpf.holder_kind, ecpf.holder_cpf, ecpf.identity_source) == ("e-CPF", CPF, "cn")


def test_numeric_cnpj(ca):
    report = judge(ca.ecnpj(cnpj=OTHER_CNPJ).der, expected_cnpj="10.302.910/0001-82")
    assert report.cnpj == OTHER_CNPJ
    check_usable(report)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b"\x13\x0312A", "12A"),
        (b"\x04\x0312A", "12A"),
        (b"\x0c\x04S\xc3\xa3o", "São"),
        (b"\x16\x02ab", "ab"),
        (b"\x1e\x04\x00a\x00b", "ab"),
        (b"\xa0\x05\x13\x0312A", "12A"),  # an extra explicit wrapper
        (b"\x24\x80\x04\x0212\x04\x01A\x00\x00", "12A"),  # BER constructed OCTET STRING
        (b"\x02\x01\x05", None),  # an INTEGER is not a text
        (b"\x13\x05ab", None),  # truncated
        (b"", None),
    ],
)
def test_decode_other_name(value, text):
    assert decode_other_name(value) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15031980" + CPF + P.NIS, {"birth_date": "1980-03-15", "cpf": CPF, "nis": P.NIS}),
        ("15031980" + CPF, {"birth_date": "1980-03-15", "cpf": CPF, "nis": None}),
        ("00000000" + CPF + "0" * 11, {"birth_date": None, "cpf": CPF, "nis": None}),
        ("00000000" + "0" * 11, {"birth_date": None, "cpf": None, "nis": None}),
        ("31021980" + "1234", {"birth_date": None, "cpf": None, "nis": None}),  # bad date, short
        ("", {"birth_date": None, "cpf": None, "nis": None}),
    ],
)
def test_person_fields(text, expected):
    assert person_fields(text) == expected


def test_types_by_policy(ca):
    assert judge(ca.ecnpj(policy=P.A3_POLICY).der).type == "A3"
    unknown = judge(ca.ecnpj(policy=None).der)
    assert unknown.type == "unknown"
    item = next(c for c in unknown.checklist if c.item == "type")
    assert not item.ok and item.level == "warning"
    check_usable(unknown)  # a warning, not fatal
    assert judge(ca.ecnpj(policy="2.16.76.1.2.10.1").der).type == "unknown"  # not A1's prefix


# --- failures, each with its own message --------------------------------------------------


def test_wrong_password(ca):
    pfx = ca.pfx(ca.ecnpj())
    err = error_of(pfx, "senha-errada")
    assert (err.code, err.message) == ("wrong_password", "Senha do certificado incorreta.")
    assert "senha-errada" not in repr(err) and PASSWORD not in str(err)
    missing = error_of(pfx, None)
    assert missing.code == "wrong_password" and "informe a senha" in missing.message
    assert error_of(pfx, "").code == "wrong_password"


def test_pfx_variants(ca):
    leaf = ca.ecnpj()
    assert judge(ca.pfx(leaf, None)).has_private_key  # no password
    assert judge(ca.pfx(leaf, None), "digitada-a-toa").has_private_key
    assert judge(ca.pfx(leaf, legacy=True), PASSWORD).has_private_key  # 3DES + SHA-1 MAC
    report = judge(ca.pfx(leaf), PASSWORD.encode("utf-8"))
    assert report.key_matches is True
    lone = judge(ca.pfx(leaf, chain=False), PASSWORD, extra_anchors=(ca.root.cert,))
    assert not lone.icp_brasil  # the intermediate is neither in the file nor known
    assert judge(ca.pfx(leaf, chain=False), PASSWORD, extra_anchors=ca.anchors).icp_brasil is True


def test_pfx_without_certificate(ca):
    err = error_of(ca.pfx_without_certificate(ca.ecnpj()), PASSWORD)
    assert err.code == "pfx_without_certificate"
    assert "não contém o certificado" in err.message


def test_not_a_certificate(ca):
    for data in (b"hello", b"<html><body>x</body></html>", b"%PDF-1.4\n", b"\x00" * 100):
        assert error_of(data).code == "not_certificate"
    assert "incompleto" in error_of(ca.ecnpj().der[:300]).message
    assert "vazio" in error_of(b"  \n").message.lower()
    only_key = private_bytes(ca.ecnpj())[1]
    err = error_of(only_key)
    assert err.code == "not_certificate" and "chave privada" in err.message
    assert "só" not in err.message.lower() or True
    chain_only = ca.intermediate.pem + ca.root.pem
    assert "autoridades certificadoras" in error_of(chain_only).message


def test_csr_is_not_a_certificate(ca):

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(P.subject("PEDIDO:" + CNPJ))
        .sign(P.ec_key("csr"), hashes.SHA256())
    )
    for data in (
        csr.public_bytes(serialization.Encoding.DER),
        csr.public_bytes(serialization.Encoding.PEM),
    ):
        err = error_of(data)
        assert err.code == "not_certificate" and "CSR" in err.message


NON_DER = ["non_der_basic_constraints", "non_der_explicit_version", "non_der_ecnpj"]


@pytest.mark.parametrize("variant", NON_DER)
def test_not_strict_der_is_read_leniently(ca, variant):
    """Issue 12 #18: a real certificate with an explicitly encoded DEFAULT (cA FALSE, critical
    FALSE) is read, re-encoded in DER for reading, and stored and fingerprinted as it came;
    its chain is checked over the bytes its issuer signed."""
    data = getattr(ca, variant)()
    # cryptography itself refuses it (on load or when reading the extensions)
    with pytest.raises(ValueError):  # noqa: PT011
        x509.load_der_x509_certificate(data).extensions  # noqa: B018
    pem = (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(data) + b"-----END CERTIFICATE-----\n"
    )
    for upload in (data, pem):
        report = judge(upload, expected_cnpj=CNPJ)
        assert report.der == data
        assert report.sha256 == hashlib.sha256(data).hexdigest()
        assert report.chain.path[0]["sha256"] == report.sha256
        assert report.icp_brasil, report.chain.reason_pt
        assert report.cnpj == CNPJ
        assert any("padrão DER" in note for note in report.notes)
        assert public_der_from_upload(upload) == data
    if variant == "non_der_ecnpj":  # a complete e-CNPJ: usable as it is
        check_usable(judge(data, expected_cnpj=CNPJ))


def test_not_strict_der_signed_by_someone_else_is_not_trusted(ca):
    good = P.parse_tree(x509.load_der_x509_certificate(ca.non_der_ecnpj()).tbs_certificate_bytes)
    forged = P.resign(P.encode_tree(good), P.ec_key("forger"))
    report = judge(forged)
    assert not report.icp_brasil
    assert "assinatura" in report.chain.reason_pt and "não confere" in report.chain.reason_pt
    assert usable_error(report).code == "not_icp_brasil"


def test_not_strict_der_directly_under_a_root(ca):
    report = judge(ca.non_der_ecnpj(issuer="root"), extra_anchors=(ca.root.cert,))
    assert report.icp_brasil and len(report.chain.path) == 2


def test_not_der_when_even_lenient_reading_fails(ca):
    data = ca.non_der_unrepairable()
    err = error_of(data)
    assert err.code == "not_der"
    assert err.message == (
        "Certificado fora do padrão DER; exporte-o novamente a partir do navegador ou do "
        "aplicativo do token."
    )


@pytest.mark.parametrize("encryption", ["aes", "3des", "none"])
@pytest.mark.parametrize("variant", NON_DER)
def test_pfx_with_a_non_der_certificate_opens(ca, variant, encryption):
    """Issue 12 #18: the password was blamed ("Senha do certificado incorreta.") although the
    MAC verifies. Never again: the .pfx is opened and the certificate read leniently."""
    data = getattr(ca, variant)()
    key = P.ec_key("non-der" if variant == "non_der_ecnpj" else "leaf")
    pfx = P.pfx_by_hand([data, ca.intermediate.der], key, cert_encryption=encryption)
    if variant == "non_der_explicit_version":  # refused by cryptography as a whole
        with pytest.raises(Exception):  # noqa: B017, PT011
            pkcs12.load_pkcs12(pfx, PASSWORD.encode())
    report = judge(pfx, PASSWORD, expected_cnpj=CNPJ)
    assert report.file_kind == "pfx"
    assert report.der == data and report.icp_brasil
    assert report.has_private_key and report.key_matches is True
    password = next(c for c in report.checklist if c.item == "password")
    assert password.ok and password.message_pt == "Senha correta."
    assert public_der_from_upload(pfx, PASSWORD) == data
    # and a wrong password is still a wrong password
    assert error_of(pfx, "errada").message == "Senha do certificado incorreta."
    assert error_of(pfx, None).code == "wrong_password"


def test_pfx_builder_is_sound(ca):
    """OpenSSL (through cryptography) opens the hand-written .pfx with a DER certificate."""
    leaf = ca.ecnpj()
    for encryption in ("aes", "3des", "none"):
        loaded = pkcs12.load_pkcs12(
            P.pfx_by_hand([leaf.der], leaf.key, cert_encryption=encryption), PASSWORD.encode()
        )
        assert loaded.cert is not None and loaded.cert.certificate == leaf.cert


def test_pfx_right_password_unreadable_certificate_says_so(ca):
    pfx = P.pfx_by_hand([ca.non_der_unrepairable()], P.ec_key("leaf"))
    err = error_of(pfx, PASSWORD)
    assert err.code == "not_der"
    assert err.message.startswith("A senha está correta, mas o certificado")
    assert error_of(pfx, "errada").code == "wrong_password"


def test_pfx_right_password_old_cipher_says_so(ca):
    """The MAC verifies, nothing can be decrypted (RC2-40 is beyond both readers here):
    the message says the password is right and what to do."""
    pfx = P.pfx_by_hand([ca.ecnpj().der], P.ec_key("leaf"), cert_encryption="rc2-40-unreadable")
    err = error_of(pfx, PASSWORD)
    assert err.code == "not_certificate"
    assert err.message.startswith("A senha está correta, mas") and "cifra antiga" in err.message
    assert error_of(pfx, "errada").code == "wrong_password"


def test_dates_are_shown_in_the_configured_time_zone(ca, monkeypatch):
    from engine import settings as settings_mod
    from engine.pki import dates

    moment = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # still 1 March in São Paulo
    assert dates.br_date(moment) == "01/03/2026"
    monkeypatch.setattr(settings_mod, "_settings", settings_mod.Settings(timezone="UTC"))
    assert dates.br_date(moment) == "02/03/2026"
    monkeypatch.setattr(settings_mod, "_settings", settings_mod.Settings(timezone="Asia/Tokyo"))
    assert dates.br_date(datetime(2026, 3, 1, 20, 0, tzinfo=UTC)) == "02/03/2026"


def test_pfx_opened_without_openssl_checks_the_mac(ca):
    """A .pfx whose MAC was made with another password is not opened with either."""
    data = ca.non_der_explicit_version()
    pfx = P.pfx_by_hand([data], P.ec_key("leaf"), mac_password="outra-senha")
    assert error_of(pfx, PASSWORD).code == "wrong_password"
    assert error_of(pfx, "outra-senha").code in ("wrong_password", "not_certificate")


def test_expired_and_not_yet_valid(ca):
    expired = judge(ca.expired().der)
    assert expired.days_left < 0
    assert expired.icp_brasil  # the chain is judged within the leaf's validity
    err = usable_error(expired)
    assert err.code == "expired" and err.message.startswith("Certificado vencido em ")
    item = next(c for c in expired.checklist if c.item == "validity")
    assert not item.ok and item.level == "error"
    future = judge(ca.not_yet_valid().der)
    err = usable_error(future)
    assert err.code == "not_yet_valid" and "passa a valer" in err.message


def test_expiry_warning(ca):
    leaf = ca.ecnpj()
    soon = leaf.cert.not_valid_after_utc - timedelta(days=10, hours=1)
    report = judge(leaf.der, now=soon)
    item = next(c for c in report.checklist if c.item == "validity")
    assert item.ok and item.level == "warning" and "Vence em 10 dias" in item.message_pt
    check_usable(report)
    assert usable_error(report, now=leaf.cert.not_valid_after_utc + timedelta(seconds=1)).code == (
        "expired"
    )


def test_not_icp_brasil(ca):
    self_signed = judge(ca.self_signed().der)
    assert not self_signed.icp_brasil
    assert "autoassinado" in self_signed.chain.reason_pt
    err = usable_error(self_signed)
    assert err.code == "not_icp_brasil" and "ICP-Brasil" in err.message
    check_usable(self_signed, require_icp_brasil=False)  # homologation setting
    unknown_ac = judge(ca.ecnpj().der, extra_anchors=())
    assert "AC Teste Credencia v5" in unknown_ac.chain.reason_pt
    assert "não é uma AC conhecida" in unknown_ac.chain.reason_pt
    # A chain that ends in a root nobody trusts
    other_root = judge(ca.pem_bundle(ca.ecnpj()), extra_anchors=())
    assert "não é uma raiz da ICP-Brasil" in other_root.chain.reason_pt
    assert other_root.chain.anchor is None


def test_cnpj_mismatch_and_exception(ca):
    other = judge(ca.ecnpj(cnpj=OTHER_CNPJ).der, expected_cnpj=CNPJ)
    err = usable_error(other)
    assert err.code == "cnpj_mismatch"
    assert "10.302.910/0001-82" in err.message and "12.ABC.345/01DE-35" in err.message
    assert "exceção" in err.message
    check_usable(other, allow_cnpj_exception=True)
    documented = judge(ca.ecnpj(cnpj=OTHER_CNPJ).der, expected_cnpj=CNPJ, cnpj_exception=True)
    assert documented.problems == []
    item = next(c for c in documented.checklist if c.item == "cnpj")
    assert item.level == "warning" and "exceção documentada" in item.message_pt
    # same company root, other branch
    branch = judge(ca.ecnpj(cnpj="10302910000263").der, expected_cnpj=OTHER_CNPJ)
    assert "matriz/filial" in usable_error(branch).message


def test_no_client_auth(ca):
    report = judge(ca.ecnpj(client_auth=False).der)
    assert not report.client_auth
    err = usable_error(report)
    assert err.code == "no_client_auth"
    assert "clientAuth" in err.message and "emailProtection" in err.message


def test_problem_order(ca):
    leaf = ca.leaf(
        issuer="self",
        key_name="everything-wrong",
        cnpj=OTHER_CNPJ,
        client_auth=False,
        not_before=ca.now - timedelta(days=400),
        not_after=ca.now - timedelta(days=1),
    )
    report = judge(leaf.der, expected_cnpj=CNPJ)
    codes = [p.code for p in problems_of(report)]
    assert codes == ["expired", "not_icp_brasil", "cnpj_mismatch", "no_client_auth"]
    assert usable_error(report).code == "expired"


def test_icp_brasil_roots_are_shipped():
    roots, intermediates = icp_brasil_store()
    names = {r.subject.rfc4514_string() for r in roots}
    assert any("Autoridade Certificadora Raiz Brasileira v5" in n for n in names)
    assert any("Autoridade Certificadora Raiz Brasileira v10" in n for n in names)
    assert all("O=ICP-Brasil" in n for n in names)
    assert len(intermediates) > 10
    # The web roots of the same bundle are not ICP-Brasil.
    assert not any("DigiCert" in n or "ISRG" in n for n in names)


def test_the_project_owns_its_roots_bundle():
    """Issue 12 #20: the roots are data of this project (taken from certifi-icpbr 2023.7.3,
    which is no longer a dependency), and say how old they are."""
    from pathlib import Path

    from engine.pki import trust

    store = trust.store()
    assert store.source == "shipped" and store.path == trust.SHIPPED
    assert store.path.is_relative_to(Path(__file__).resolve().parents[2] / "engine" / "pki")
    summary = store.summary()
    assert (summary["roots"], summary["intermediates"]) == (3, 159)
    assert summary["newest_root"] == "Autoridade Certificadora Raiz Brasileira v11"
    assert summary["newest_root_not_before"] == "2019-07-01"
    assert summary["newest_not_before"] == "2023-04-25"
    assert summary["date"] == "2023-07-03"
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert "certifi-icpbr" not in pyproject and '"*.pem"' in pyproject


def test_real_icp_brasil_acs_chain_to_the_real_roots():
    """The verifier's policy accepts real ICP-Brasil chains (RSA 4096, SHA-512, their
    extensions), so a real e-CNPJ is not refused for being "too different" from ours."""
    roots, intermediates = icp_brasil_store()
    moment = datetime(2027, 6, 1, tzinfo=UTC)  # inside the v5 chains' validity (to 2029)
    rfb = [
        c
        for c in intermediates
        if "AC Secretaria da Receita Federal do Brasil v4" in str(c.subject)
    ]
    assert rfb
    chain = verify_chain(rfb[0], [], (), moment)
    assert chain.icp_brasil and chain.anchor_source == "icp_brasil"
    assert "Raiz Brasileira v5" in chain.reason_pt
    valid = [c for c in intermediates if c.not_valid_after_utc > moment > c.not_valid_before_utc]
    passed = sum(verify_chain(c, [], (), moment).icp_brasil for c in valid)
    assert passed >= len(valid) - 3  # the INMETRO metrology ACs use other roots/algorithms


def test_the_verifier_is_handed_only_the_acs_a_path_can_use_and_decides_the_same():
    """A check hands the verifier the ACs on the leaf's way up (by issuer name, transitively),
    not the bundle's 159: every real AC of the bundle gets the same answer and the same chain
    as with all of them, and a second-level AC still finds the AC that issued it."""
    from cryptography.x509 import verification

    from engine.pki import chain

    roots, intermediates = icp_brasil_store()
    moment = datetime(2027, 6, 1, tzinfo=UTC)
    known = chain._Known(chain._bundle_index(), [], [])
    verifier = chain._verifier(list(roots), moment)

    def outcome(cert, pool):
        try:
            return [c.fingerprint(hashes.SHA256()) for c in verifier.verify(cert, pool).chain]
        except verification.VerificationError:
            return None

    handed = 0
    for cert in intermediates:
        pool = known.reachable_pool(cert)
        assert all(c.subject == cert.issuer for c in pool)  # one level of ACs above, here
        assert outcome(cert, pool) == outcome(cert, list(intermediates))
        handed += len(pool)
    assert handed >= 100  # the second-level ACs (issued by an AC, not a root)


def test_the_acs_handed_to_the_verifier_match_names_loosely(ca):
    """Names that differ in case or spacing (which a verifier may or may not take as equal)
    still bring their AC into the pool: the verifier decides, the pool never withholds."""
    from engine.pki import chain

    def name(text):
        return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, text)])

    assert chain._loose(name("AC  Teste v1")) == chain._loose(name("ac teste V1"))
    assert chain._loose(name("AC Teste v1")) != chain._loose(name("AC Teste v2"))
    leaf = ca.ecnpj().cert
    known = chain._Known(chain._bundle_index(), [], [ca.intermediate.cert])
    assert known.reachable_pool(leaf) == [ca.intermediate.cert]
    assert chain._Known(chain._bundle_index(), [], []).reachable_pool(leaf) == []


# --- only the public part leaves the inspector ---------------------------------------------


def test_private_key_and_password_never_leave(ca, caplog):
    leaf = ca.ecnpj()
    pfx = ca.pfx(leaf)
    caplog.set_level("DEBUG")
    report = judge(pfx, PASSWORD, expected_cnpj=CNPJ)
    dumped = json.dumps(report.to_dict(include_der=True)).encode() + repr(report).encode()
    for secret in private_bytes(leaf) + [PASSWORD.encode()]:
        assert secret not in dumped
        assert secret not in report.der
    assert public_der_from_upload(pfx, PASSWORD) == leaf.der
    assert public_der_from_upload(leaf.pem + private_bytes(leaf)[1]) == leaf.der
    error_of(pfx, "errada")
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert "errada" not in record.getMessage()
    assert not any(
        isinstance(v, object) and "PrivateKey" in type(v).__name__ for v in vars(report).values()
    )


def test_pem_with_key_ignores_the_key(ca):
    leaf = ca.ecnpj()
    report = judge(leaf.pem + private_bytes(leaf)[1])
    assert report.file_kind == "pem" and not report.has_private_key
    assert any("chave privada" in n for n in report.notes)


def test_looks_like_certificate_file(ca):
    leaf = ca.ecnpj()
    for data in (leaf.der, leaf.pem, ca.pfx(leaf), ca.p7b(leaf), private_bytes(leaf)[1]):
        assert looks_like_certificate_file(data)
    assert looks_like_certificate_file(leaf.der[:50])  # truncated DER still goes the cert way
    assert looks_like_certificate_file(base64.encodebytes(leaf.der))
    csv = b"01;" + b"x" * 60 + b"\n02;abc\n"  # starts like a short DER SEQUENCE
    for data in (b"%PDF-1.4", b"\x89PNG\r\n\x1a\n", b"0123456789,abc", b"", b"hello", csv):
        assert not looks_like_certificate_file(data)


# --- hostile and broken input ------------------------------------------------------------


def _pfx_with_mac_iterations(ca, iterations: int) -> bytes:
    tree = P.parse_tree(ca.pfx(ca.ecnpj()))
    mac = tree[0][1][2][1]  # PFX → macData → [DigestInfo, salt, iterations]
    mac[2] = (0x02, iterations.to_bytes(4, "big"))
    return P.encode_tree(tree)


def test_pfx_with_absurd_iterations_is_refused_fast(ca):
    data = _pfx_with_mac_iterations(ca, 0x7FFFFFFF)
    started = time.monotonic()
    err = error_of(data, PASSWORD)
    assert time.monotonic() - started < 2
    assert err.code == "not_certificate" and "iterações" in err.message


def test_too_large(ca):
    err = error_of(b"\x30\x84\x00\x90\x00\x00" + os.urandom(9 * 1024 * 1024))
    assert err.code == "not_certificate" and "grande demais" in err.message


def test_nine_megabyte_random_pfx():
    data = os.urandom(9 * 1024 * 1024)
    for password in (None, "senha"):
        with pytest.raises(CertificateError):
            inspect(data, password)


FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _only_certificate_errors(data: bytes, password: str | None = None) -> None:
    try:
        report = inspect(data, password, extra_anchors=pki().anchors)
    except CertificateError as exc:
        assert exc.code in {
            "wrong_password",
            "not_certificate",
            "not_der",
            "pfx_without_certificate",
        }
        assert exc.message
        return
    report.to_dict()


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    _only_certificate_errors(data)


@FUZZ
@given(
    st.binary(min_size=0, max_size=3000),
    st.sampled_from([b"\x30\x82", b"\x30\x80", b"\x30\x83\x00"]),
)
def test_fuzz_sequence_header(body, header):
    _only_certificate_errors(header + len(body).to_bytes(2, "big") + body)
    _only_certificate_errors(header + body, "senha")


@functools.cache
def real_files() -> tuple[bytes, ...]:
    """Fixed across examples (hypothesis replays draws against the same inputs)."""
    ca = pki()
    leaf = ca.ecnpj()
    return (leaf.der, leaf.pem, ca.pfx(leaf), ca.p7b(leaf), ca.pem_bundle(leaf))


@FUZZ
@given(st.data())
def test_fuzz_truncated_and_mutated_real_files(data):
    original = data.draw(st.sampled_from(real_files()))
    cut = data.draw(st.integers(min_value=0, max_value=len(original)))
    _only_certificate_errors(original[:cut], PASSWORD)
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        at = data.draw(st.integers(min_value=0, max_value=len(mutated) - 1))
        mutated[at] = data.draw(st.integers(min_value=0, max_value=255))
    _only_certificate_errors(bytes(mutated), PASSWORD)


@FUZZ
@given(st.text(max_size=40))
def test_fuzz_passwords(password):
    _only_certificate_errors(real_files()[2], password)


def test_password_with_nul_is_just_wrong(ca):
    # cryptography panics (a BaseException) on a NUL in a PKCS#12 password
    assert error_of(ca.pfx(ca.ecnpj()), "abc\x00def").code == "wrong_password"


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def run(tmp_path):
    runner = CliRunner()

    from web.cli.certificates import certificates

    def go(*args: str, code: int) -> tuple[dict, str]:
        result = runner.invoke(certificates, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        stdout = result.stdout
        return json.loads(stdout), result.stderr

    return go


def test_cli_inspect(ca, run, tmp_path):
    anchors = tmp_path / "ac-teste.pem"
    anchors.write_bytes(ca.anchors_pem)
    pfx = tmp_path / "empresa.pfx"
    pfx.write_bytes(ca.pfx(ca.ecnpj()))
    out, _ = run(
        "inspect", str(pfx), "--password", PASSWORD, "--cnpj", "12.ABC.345/01DE-35",
        "--anchors", str(anchors), code=0,
    )  # fmt: skip
    assert out["usable"] is True and out["cnpj"] == CNPJ and out["type"] == "A1"
    assert PASSWORD not in json.dumps(out)
    out, err = run("inspect", str(pfx), "--password", "errada", code=1)
    assert out["error"]["code"] == "wrong_password"
    assert "Senha do certificado incorreta." in err
    out, err = run("inspect", str(pfx), "--password", PASSWORD, code=1)  # no test anchor
    assert out["usable"] is False and out["problems"][0]["code"] == "not_icp_brasil"
    assert "ICP-Brasil" in err
    run("inspect", str(pfx), "--password", PASSWORD, "--allow-non-icp", code=0)
    cer = tmp_path / "outro.cer"
    cer.write_bytes(ca.ecnpj(cnpj=OTHER_CNPJ).der)
    out, err = run("inspect", str(cer), "--cnpj", CNPJ, "--anchors", str(anchors), code=1)
    assert out["problems"][0]["code"] == "cnpj_mismatch"
    run("inspect", str(cer), "--cnpj", CNPJ, "--cnpj-exception", "--anchors", str(anchors), code=0)
    junk = tmp_path / "foto.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(100))
    out, err = run("inspect", str(junk), code=1)
    assert out["error"]["code"] == "not_certificate"


def test_cli_bad_cnpj(ca, tmp_path):
    cer = tmp_path / "a.cer"
    cer.write_bytes(ca.ecnpj().der)
    from web.cli.certificates import certificates

    result = CliRunner().invoke(certificates, ["inspect", str(cer), "--cnpj", "123"])
    assert result.exit_code == 2


def test_now_naive_is_utc(ca):
    leaf = ca.ecnpj()
    naive = datetime.now(UTC).replace(tzinfo=None)
    assert judge(leaf.der, now=naive).checked_at.tzinfo is not None


# --- boundaries ------------------------------------------------------------------------------


def _engine_imports(path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if n.startswith("engine")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("engine")}
    return found


def test_pki_is_pure_certificate_knowledge():
    """engine.pki needs no database and no other domain: only settings, errors and the pure
    identifier checks (CPF/CNPJ digits), which import nothing from engine themselves."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "engine"
    allowed = ("engine.pki", "engine.settings", "engine.errors", "engine.identifiers")
    for module in (root / "pki").glob("*.py"):
        for name in _engine_imports(module):
            assert name == "engine" or name.startswith(allowed), (module.name, name)
    spec = importlib.util.find_spec("engine.identifiers")
    assert spec is not None and spec.origin is not None
    assert not _engine_imports(Path(spec.origin)) - {"engine"}
    # files and certificates no longer import each other in a circle
    for module in (root / "files").glob("*.py"):
        assert not any(n.startswith("engine.certificates") for n in _engine_imports(module))
