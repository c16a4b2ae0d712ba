"""What a certificate says: usages, policies, the ICP-Brasil otherName fields of its
SubjectAltName (CNPJ, responsible person, e-CPF holder), names, key and fingerprint."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine import identifiers
from engine.pki import asn1

POLICY_A1 = "2.16.76.1.2.1"
POLICY_A3 = "2.16.76.1.2.3"
OID_ECPF_HOLDER = "2.16.76.1.3.1"
OID_RESPONSIBLE_NAME = "2.16.76.1.3.2"
OID_CNPJ = "2.16.76.1.3.3"
OID_RESPONSIBLE = "2.16.76.1.3.4"
OTHER_NAME_LABELS = {
    OID_ECPF_HOLDER: "titular_e_cpf",
    OID_RESPONSIBLE_NAME: "nome_responsavel",
    OID_CNPJ: "cnpj",
    OID_RESPONSIBLE: "dados_responsavel",
    "2.16.76.1.3.5": "titulo_eleitor",
    "2.16.76.1.3.6": "cei_pessoa",
    "2.16.76.1.3.7": "cei_empresa",
    "2.16.76.1.3.8": "nome_empresarial",
}

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string
ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string
EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING.dotted_string: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string: "OCSPSigning",
    ANY_EKU: "anyExtendedKeyUsage",
    "1.3.6.1.4.1.311.20.2.2": "smartcardLogon",
    "1.3.6.1.4.1.311.10.3.12": "documentSigning",
}


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def key_usage(exts: x509.Extensions) -> tuple[list[str], x509.KeyUsage | None]:
    try:
        ku = exts.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return [], None
    names = []
    for attr in (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    ):
        if getattr(ku, attr):
            names.append(attr)
    if ku.key_agreement:
        if ku.encipher_only:
            names.append("encipher_only")
        if ku.decipher_only:
            names.append("decipher_only")
    return names, ku


def eku(exts: x509.Extensions) -> list[str] | None:
    try:
        value = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return [oid.dotted_string for oid in value]


def is_ca_cert(cert: x509.Certificate) -> bool:
    """basicConstraints cA, False when absent or refused (judged later, with the report)."""
    try:
        return is_ca_ext(cert.extensions)
    except Exception:
        return False


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:
        return False


def is_ca_ext(exts: x509.Extensions) -> bool:
    try:
        return bool(exts.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def client_auth(eku: list[str] | None, ku: x509.KeyUsage | None, is_ca: bool) -> tuple[bool, str]:
    if is_ca:
        return False, "é um certificado de autoridade certificadora, não de um estabelecimento."
    if eku is not None and CLIENT_AUTH not in eku and ANY_EKU not in eku:
        names = ", ".join(EKU_NAMES.get(o, o) for o in eku) or "nenhum"
        return False, f"o uso estendido da chave não inclui clientAuth (tem: {names})."
    if ku is not None and not ku.digital_signature:
        return False, "o uso da chave não inclui assinatura digital (digitalSignature)."
    if eku is None:
        return True, "Sem restrição de uso estendido: serve para autenticação de cliente TLS."
    return True, "Permite autenticação de cliente TLS (clientAuth)."


def policies(exts: x509.Extensions) -> list[str]:
    try:
        value = exts.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [p.policy_identifier.dotted_string for p in value]


def cert_type(policies: Iterable[str]) -> str:
    for oid in policies:
        if oid.startswith(POLICY_A1 + "."):
            return "A1"
        if oid.startswith(POLICY_A3 + "."):
            return "A3"
    return "unknown"


def san(exts: x509.Extensions) -> tuple[dict[str, list[str]], list[str]]:
    try:
        san = exts.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {}, []
    others: dict[str, list[str]] = {}
    for name in san.get_values_for_type(x509.OtherName):
        text = decode_other_name(name.value)
        if text is not None:
            others.setdefault(name.type_id.dotted_string, []).append(text)
    return others, [str(v) for v in san.get_values_for_type(x509.RFC822Name)]


def decode_other_name(value: bytes) -> str | None:
    """The text of an otherName value given as the DER of the inner value: OCTET STRING,
    PrintableString, UTF8String, IA5String, T61String, VisibleString or BMPString (also an
    extra explicit [0] wrapper some encoders add)."""
    try:
        node = asn1.read(value, 0, len(value))
    except asn1.Asn1Error:
        return None
    if node.cls == 2 and node.constructed:  # [0] EXPLICIT wrapper
        kids = asn1.children(value, node)
        if not kids:
            return None
        return decode_other_name(value[node.start : kids[0].next])
    if node.cls != 0 or node.number not in (4, 12, 19, 20, 22, 26, 30):
        return None
    if node.constructed:  # BER constructed string: concatenate the segments
        raw = b"".join(value[k.start : k.end] for k in asn1.children(value, node))
    else:
        raw = value[node.start : node.end]
    if node.number == 30:
        text = raw.decode("utf-16-be", errors="replace")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    return text.replace("\x00", "").strip()


def _clean(value: str) -> str | None:
    value = value.strip()
    if not value or set(value) <= {"0"}:
        return None
    return value


def _birth_date(raw: str) -> str | None:
    raw = raw.strip()
    if len(raw) != 8 or not raw.isascii() or not raw.isdigit() or set(raw) == {"0"}:
        return None
    try:
        return date(int(raw[4:8]), int(raw[2:4]), int(raw[0:2])).isoformat()
    except ValueError:
        return None


def person_fields(text: str) -> dict[str, str | None]:
    """Birth date [0:8] (ddmmaaaa), CPF [8:19], NIS [19:30]: the layout of 2.16.76.1.3.1
    and 2.16.76.1.3.4. Shorter or longer values are tolerated; all-zero means unavailable."""
    cpf = _clean(text[8:19]) if len(text) >= 19 else None
    if cpf is not None and not (len(cpf) == 11 and cpf.isascii() and cpf.isdigit()):
        cpf = None
    nis = _clean(text[19:30]) if len(text) >= 20 else None
    return {"birth_date": _birth_date(text[0:8]), "cpf": cpf, "nis": nis}


def identity(others: dict[str, list[str]], cn: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "holder_kind": "unknown",
        "source": None,
        "cnpj": None,
        "responsible_name": None,
        "responsible_cpf": None,
        "responsible_birth_date": None,
        "responsible_nis": None,
        "holder_cpf": None,
        "holder_birth_date": None,
        "holder_nis": None,
    }
    if OID_CNPJ in others:
        cnpj = norm_cnpj(others[OID_CNPJ][0])
        out["cnpj"] = cnpj if len(cnpj) == 14 and _clean(cnpj) else None
    if OID_RESPONSIBLE in others:
        fields = person_fields(others[OID_RESPONSIBLE][0])
        out["responsible_cpf"] = fields["cpf"]
        out["responsible_birth_date"] = fields["birth_date"]
        out["responsible_nis"] = fields["nis"]
    if OID_RESPONSIBLE_NAME in others:
        out["responsible_name"] = others[OID_RESPONSIBLE_NAME][0] or None
    if OID_ECPF_HOLDER in others:
        fields = person_fields(others[OID_ECPF_HOLDER][0])
        out["holder_cpf"] = fields["cpf"]
        out["holder_birth_date"] = fields["birth_date"]
        out["holder_nis"] = fields["nis"]
    if out["cnpj"] or OID_RESPONSIBLE in others:
        out["holder_kind"], out["source"] = "e-CNPJ", "san"
    elif OID_ECPF_HOLDER in others:
        out["holder_kind"], out["source"] = "e-CPF", "san"
    if out["cnpj"] is None and out["holder_cpf"] is None and cn and ":" in cn:
        # Receita Federal chains write CN=NOME:CNPJ or CN=NOME:CPF.
        name, _, number = cn.rpartition(":")
        number = re.sub(r"[\s./-]", "", number).upper()
        if len(number) == 14 and identifiers.is_valid_cnpj(number):
            out.update(holder_kind="e-CNPJ", source="cn", cnpj=number)
        elif (
            len(number) == 11
            and identifiers.is_valid_cpf(number)
            and out["holder_kind"] == "unknown"
        ):
            out.update(holder_kind="e-CPF", source="cn", holder_cpf=number)
    return out


def norm_cnpj(value: str) -> str:
    try:
        return identifiers.normalize_cnpj(value)
    except identifiers.InvalidIdentifier:
        return re.sub(r"[\s./-]", "", str(value)).upper()


def fmt_cnpj(value: str) -> str:
    try:
        return identifiers.format_cnpj(value)
    except identifiers.InvalidIdentifier:
        return value


def cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[-1].value
    return value if isinstance(value, str) else value.decode("latin-1")


def serial(cert: x509.Certificate) -> str:
    n = cert.serial_number
    return ("-" if n < 0 else "") + format(abs(n), "x")


def signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name = getattr(oid, "_name", "Unknown OID")
    return name if name != "Unknown OID" else oid.dotted_string


def public_key_info(cert: x509.Certificate) -> dict[str, Any]:
    try:
        key = cert.public_key()
    except Exception:
        return {"algorithm": cert.public_key_algorithm_oid.dotted_string}
    if isinstance(key, rsa.RSAPublicKey):
        return {"algorithm": "RSA", "size": key.key_size}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"algorithm": "EC", "size": key.key_size, "curve": key.curve.name}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"algorithm": "Ed25519"}
    if isinstance(key, ed448.Ed448PublicKey):
        return {"algorithm": "Ed448"}
    if isinstance(key, dsa.DSAPublicKey):
        return {"algorithm": "DSA", "size": key.key_size}
    return {"algorithm": type(key).__name__}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
