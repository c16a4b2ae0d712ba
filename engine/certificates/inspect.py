"""Reading and judging a certificate file a user uploads: pure functions, no database.

:func:`inspect` accepts whatever a user may have — a .cer/.crt in DER or PEM (also bare
base64), a PEM bundle, a .p7b, a .pfx/.p12 with its password — judges the kind by content,
never by name, and returns a :class:`CertificateReport`: what the certificate says (subject,
validity, usages, ICP-Brasil fields), whether it chains to an ICP-Brasil root, and a
suitability checklist for the user. Only public material leaves this module: the report
carries the leaf's DER for storage; a .pfx's private key is loaded only to learn that it
exists and matches, then dropped; the password is never kept, logged or echoed.

Fatal or not:

- Problems *reading* the file (wrong password, not a certificate, not DER, a .pfx without a
  certificate) are always fatal: :func:`inspect` raises :class:`CertificateError`.
- Problems *with* a readable certificate (expired, not yet valid, not ICP-Brasil, CNPJ of
  another establishment, no TLS client authentication) are reported in the checklist and in
  ``report.problems``; :func:`check_usable` raises the first one that is fatal under the
  caller's policy. In production everything is fatal except a CNPJ difference the gestor
  has documented (``allow_cnpj_exception``); ``require_icp_brasil=False`` exists for
  homologation and demo installations, and test roots are passed as ``extra_anchors``.
- Anything else (about to expire, type not A1/A3, no responsible CPF, public part only) is
  a warning in the checklist and never blocks.

Any input bytes give either a report or a ``CertificateError`` — never another exception
(the tests fuzz this).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine import identifiers

log = logging.getLogger(__name__)

MAX_BYTES = 1024 * 1024  # real certificate files are a few KB; a .pfx with its chain < 20 KB
MAX_KDF_ITERATIONS = 2_000_000  # per PBKDF/MAC in a .pfx (tools use 2 000–600 000)
MAX_TOTAL_KDF_ITERATIONS = 6_000_000
MAX_SCRYPT_N = 1 << 20
MAX_CHAIN_DEPTH = 8
EXPIRY_WARNING_DAYS = 30

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

MESSAGES = {
    "wrong_password": "Senha do certificado incorreta.",
    "password_required": "Este arquivo .pfx é protegido por senha: informe a senha do certificado.",
    "not_certificate": "O arquivo não é um certificado digital (.cer, .crt, .pem, .pfx ou .p12).",
    "not_der": (
        "Certificado fora do padrão DER; exporte-o novamente a partir do navegador ou do "
        "aplicativo do token."
    ),
    "pfx_without_certificate": (
        "O arquivo .pfx não contém o certificado, só a chave; exporte-o novamente incluindo "
        "o certificado (e, se possível, toda a cadeia)."
    ),
    "pfx_corrupt": "O arquivo .pfx está corrompido ou incompleto; exporte-o novamente.",
    "too_large": "Arquivo grande demais para ser um certificado digital (máximo de 1 MB).",
    "empty": "Arquivo vazio.",
    "truncated": "O arquivo do certificado está incompleto ou corrompido; envie-o novamente.",
    "only_ca": (
        "O arquivo traz apenas certificados de autoridades certificadoras (a cadeia), não o "
        "certificado do estabelecimento."
    ),
    "only_key": (
        "O arquivo traz uma chave privada, mas nenhum certificado; envie o .cer ou o .pfx."
    ),
    "csr": (
        "O arquivo é um pedido de certificado (CSR), não o certificado emitido pela autoridade "
        "certificadora."
    ),
    "pfx_cost": (
        "O arquivo .pfx usa parâmetros de proteção fora do comum (iterações demais); "
        "exporte-o novamente."
    ),
    "pfx_cipher": (
        "O arquivo .pfx usa uma cifra que não conseguimos ler; exporte-o novamente com "
        "AES-256 e SHA-256."
    ),
}


class CertificateError(Exception):
    """A certificate file that cannot be used; ``message`` is for the user (pt-BR).

    ``code`` is one of: wrong_password, not_certificate, not_der, pfx_without_certificate,
    expired, not_yet_valid, not_icp_brasil, cnpj_mismatch, no_client_auth.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"CertificateError({self.code!r}, {self.message!r})"


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckItem:
    item: str
    label_pt: str
    ok: bool
    level: str  # ok | info | warning | error
    message_pt: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "label_pt": self.label_pt,
            "ok": self.ok,
            "level": self.level,
            "message_pt": self.message_pt,
        }


@dataclass(frozen=True)
class Problem:
    code: str
    message_pt: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message_pt": self.message_pt}


@dataclass
class ChainResult:
    icp_brasil: bool
    reason_pt: str
    anchor: str | None = None  # subject of the trust anchor reached
    anchor_source: str | None = None  # "icp_brasil" | "configured"
    path: list[dict[str, str]] = field(default_factory=list)
    detail: str = ""  # technical detail from the verifier, for support

    def to_dict(self) -> dict[str, Any]:
        return {
            "icp_brasil": self.icp_brasil,
            "reason_pt": self.reason_pt,
            "anchor": self.anchor,
            "anchor_source": self.anchor_source,
            "path": list(self.path),
            "detail": self.detail,
        }


@dataclass
class CertificateReport:
    file_kind: str  # der | pem | base64 | pkcs7 | pfx
    subject: str
    subject_cn: str | None
    issuer: str
    issuer_cn: str | None
    serial: str
    not_before: datetime
    not_after: datetime
    checked_at: datetime
    days_left: int
    sha256: str
    signature_algorithm: str
    public_key: dict[str, Any]
    key_usage: list[str]
    extended_key_usage: list[str]
    client_auth: bool
    client_auth_reason_pt: str
    is_ca: bool
    policies: list[str]
    type: str  # A1 | A3 | unknown
    holder_kind: str  # e-CNPJ | e-CPF | unknown
    identity_source: str | None  # san | cn | None
    cnpj: str | None
    responsible_name: str | None
    responsible_cpf: str | None
    responsible_birth_date: str | None
    responsible_nis: str | None
    holder_cpf: str | None
    holder_birth_date: str | None
    holder_nis: str | None
    other_names: dict[str, list[str]]
    emails: list[str]
    has_private_key: bool
    key_matches: bool | None
    icp_brasil: bool
    chain: ChainResult
    expected_cnpj: str | None
    cnpj_exception: bool
    checklist: list[CheckItem]
    problems: list[Problem]
    notes: list[str]
    der: bytes = field(repr=False)
    chain_der: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def cpf_responsavel(self) -> str | None:
        """The person answering for the certificate: e-CNPJ responsible or e-CPF holder."""
        return self.responsible_cpf or self.holder_cpf

    @property
    def fatal(self) -> bool:
        return bool(self.problems)

    def to_dict(self, *, include_der: bool = False) -> dict[str, Any]:
        """A JSON-safe dict (no private material exists to leave out)."""
        out: dict[str, Any] = {
            "file_kind": self.file_kind,
            "subject": self.subject,
            "subject_cn": self.subject_cn,
            "issuer": self.issuer,
            "issuer_cn": self.issuer_cn,
            "serial": self.serial,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "checked_at": _iso(self.checked_at),
            "days_left": self.days_left,
            "sha256": self.sha256,
            "signature_algorithm": self.signature_algorithm,
            "public_key": dict(self.public_key),
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "client_auth": self.client_auth,
            "client_auth_reason_pt": self.client_auth_reason_pt,
            "is_ca": self.is_ca,
            "policies": list(self.policies),
            "type": self.type,
            "holder_kind": self.holder_kind,
            "identity_source": self.identity_source,
            "cnpj": self.cnpj,
            "responsible_name": self.responsible_name,
            "responsible_cpf": self.responsible_cpf,
            "responsible_birth_date": self.responsible_birth_date,
            "responsible_nis": self.responsible_nis,
            "holder_cpf": self.holder_cpf,
            "holder_birth_date": self.holder_birth_date,
            "holder_nis": self.holder_nis,
            "other_names": {k: list(v) for k, v in self.other_names.items()},
            "emails": list(self.emails),
            "has_private_key": self.has_private_key,
            "key_matches": self.key_matches,
            "icp_brasil": self.icp_brasil,
            "chain": self.chain.to_dict(),
            "expected_cnpj": self.expected_cnpj,
            "cnpj_exception": self.cnpj_exception,
            "checklist": [c.to_dict() for c in self.checklist],
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
        }
        if include_der:
            out["der_base64"] = base64.b64encode(self.der).decode("ascii")
        return out


# --- public API --------------------------------------------------------------------------


def _is_panic(exc: BaseException) -> bool:
    """A Rust panic inside ``cryptography`` (pyo3's PanicException derives from
    BaseException, so ``except Exception`` does not catch it)."""
    return type(exc).__name__ == "PanicException"


def inspect(
    data: bytes,
    password: str | bytes | None = None,
    *,
    expected_cnpj: str | None = None,
    cnpj_exception: bool = False,
    now: datetime | None = None,
    extra_anchors: Sequence[x509.Certificate] = (),
) -> CertificateReport:
    """Read a certificate file and judge it; raises :class:`CertificateError` only.

    ``extra_anchors`` are trusted in addition to the ICP-Brasil roots of ``certifi-icpbr``
    (a homologation or test PKI): self-signed ones as roots, the others as intermediates.
    """
    moment = _aware(now)
    parsed = _parse_file(data, password)
    try:
        return _report(parsed, moment, expected_cnpj, cnpj_exception, tuple(extra_anchors))
    except CertificateError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and not _is_panic(exc):
            raise  # KeyboardInterrupt, SystemExit
        # cryptography loads certificates lazily: a part it refuses only now (an extension
        # with an explicit default, say) is still a DER problem of the user's file.
        log.info("certificate refused while reading its fields: %s", type(exc).__name__)
        raise CertificateError("not_der", MESSAGES["not_der"]) from None


def check_usable(
    report: CertificateReport,
    *,
    expected_cnpj: str | None = None,
    allow_cnpj_exception: bool = False,
    require_icp_brasil: bool = True,
    now: datetime | None = None,
) -> None:
    """Raise the first fatal problem of ``report`` under this policy, or return.

    Order: expired, not yet valid, not ICP-Brasil, CNPJ mismatch, no client authentication.
    ``expected_cnpj`` defaults to the one given to :func:`inspect`.
    """
    for problem in problems_of(
        report,
        expected_cnpj=expected_cnpj,
        allow_cnpj_exception=allow_cnpj_exception,
        require_icp_brasil=require_icp_brasil,
        now=now,
    ):
        raise CertificateError(problem.code, problem.message_pt)


def problems_of(
    report: CertificateReport,
    *,
    expected_cnpj: str | None = None,
    allow_cnpj_exception: bool = False,
    require_icp_brasil: bool = True,
    now: datetime | None = None,
) -> list[Problem]:
    """Every fatal problem of ``report`` under this policy, in the order users fix them."""
    moment = _aware(now) if now is not None else report.checked_at
    expected = expected_cnpj if expected_cnpj is not None else report.expected_cnpj
    out: list[Problem] = []
    if moment > report.not_after:
        out.append(Problem("expired", f"Certificado vencido em {_br_date(report.not_after)}."))
    elif moment < report.not_before:
        out.append(
            Problem(
                "not_yet_valid",
                f"O certificado ainda não é válido: só passa a valer em "
                f"{_br_date(report.not_before)}.",
            )
        )
    if require_icp_brasil and not report.icp_brasil:
        out.append(
            Problem(
                "not_icp_brasil",
                f"O certificado não é da ICP-Brasil: {report.chain.reason_pt} A RNDS só "
                "aceita certificados ICP-Brasil (e-CNPJ ou e-CPF, tipo A1 ou A3).",
            )
        )
    mismatch = _cnpj_mismatch(report, expected)
    if mismatch and not allow_cnpj_exception:
        out.append(Problem("cnpj_mismatch", mismatch))
    if not report.client_auth:
        out.append(
            Problem(
                "no_client_auth",
                "O certificado não permite autenticação de cliente TLS, exigida pela RNDS: "
                f"{report.client_auth_reason_pt}",
            )
        )
    return out


def public_der_from_upload(data: bytes, password: str | bytes | None = None) -> bytes:
    """The public certificate (DER) of an uploaded file — what may be stored.

    A .pfx is opened with its password only to take the certificate out; its key and the
    password go nowhere. Raises :class:`CertificateError` when the file cannot be read (not
    when the certificate is expired or otherwise unsuitable: that is for the service).
    """
    return _parse_file(data, password).leaf_der


def looks_like_certificate_file(data: bytes) -> bool:
    """True when ``data`` is, by content, something certificate-like: DER/BER ASN.1 (a .cer,
    .p7b or .pfx), PEM of any kind (certificates, keys, CSRs) or bare base64 of those.

    The file upload uses it to send such files through :func:`public_der_from_upload` so a
    .pfx or a private key is never stored.
    """
    try:
        head = _strip_bom(data[:4096]).lstrip()
        if head.startswith(b"-----BEGIN") or b"-----BEGIN " in data[:65536]:
            return True
        if head[:1] == b"\x30":
            # Long-form or indefinite lengths never occur in text; a short DER must be the
            # whole file (a text file may well start with "0").
            if len(head) > 1 and 0x80 <= head[1] <= 0x84:
                return True
            top = _read(head, 0, len(head))
            return not head[top.next :].strip(b"\x00\r\n\t ")
        if len(data) <= MAX_BYTES and _bare_base64(data) is not None:
            return True
    except Exception:  # pragma: no cover - defensive
        return False
    return False


def load_anchors(pem_or_der: bytes) -> tuple[x509.Certificate, ...]:
    """Trust anchors from a PEM bundle (or one DER certificate), e.g. a homologation root."""
    certs: list[x509.Certificate] = []
    for label, body in _pem_blocks(pem_or_der):
        if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
            certs.append(x509.load_der_x509_certificate(_first_tlv(body)))
    if not certs and pem_or_der[:1] == b"\x30":
        certs.append(x509.load_der_x509_certificate(pem_or_der))
    return tuple(certs)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


# --- reading the file ----------------------------------------------------------------------


@dataclass
class _Parsed:
    file_kind: str
    leaf: x509.Certificate
    others: list[x509.Certificate]
    has_private_key: bool
    key_matches: bool | None
    notes: list[str]

    @property
    def leaf_der(self) -> bytes:
        return self.leaf.public_bytes(serialization.Encoding.DER)


def _parse_file(data: bytes, password: str | bytes | None) -> _Parsed:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CertificateError("not_certificate", MESSAGES["not_certificate"])
    data = bytes(data)
    if not data.strip():
        raise CertificateError("not_certificate", MESSAGES["empty"])
    if len(data) > MAX_BYTES:
        raise CertificateError("not_certificate", MESSAGES["too_large"])
    try:
        return _dispatch(data, password, allow_base64=True)
    except CertificateError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and not _is_panic(exc):
            raise
        log.info("certificate file could not be read: %s", type(exc).__name__)
        raise CertificateError("not_certificate", MESSAGES["not_certificate"]) from None


def _dispatch(data: bytes, password: str | bytes | None, *, allow_base64: bool) -> _Parsed:
    text = _strip_bom(data)
    stripped = text.lstrip()
    if b"-----BEGIN " in text:
        return _parse_pem(text, password)
    if stripped[:1] == b"\x30":
        return _parse_der(stripped, password, kind="der")
    if allow_base64:
        raw = _bare_base64(text)
        if raw is not None:
            parsed = _dispatch(raw, password, allow_base64=False)
            if parsed.file_kind == "der":
                parsed.file_kind = "base64"
            return parsed
    raise CertificateError("not_certificate", MESSAGES["not_certificate"])


def _parse_der(data: bytes, password: str | bytes | None, *, kind: str) -> _Parsed:
    top = _top(data)
    der = data[: top.next]
    shape = _shape(der, top)
    if shape == "pfx":
        return _parse_pfx(der, top, password)
    return _from_certificates(
        _der_certificates(der, top, shape), "pkcs7" if shape == "pkcs7" else kind
    )


def _top(data: bytes) -> _Node:
    """The outer element; only whitespace or NULs (editors, some exporters) may follow it."""
    try:
        top = _read(data, 0, len(data))
    except _Asn1Error:
        raise CertificateError("not_certificate", MESSAGES["truncated"]) from None
    if data[top.next :].strip(b"\x00\r\n\t "):
        raise CertificateError("not_certificate", MESSAGES["not_certificate"])
    return top


def _der_certificates(der: bytes, top: _Node, shape: str) -> list[x509.Certificate]:
    if shape == "pkcs7":
        try:
            return list(pkcs7.load_der_pkcs7_certificates(der))
        except Exception:
            raise CertificateError("not_der", MESSAGES["not_der"]) from None
    if shape == "certificate":
        return [_load_der_certificate(der)]
    if shape == "csr":
        raise CertificateError("not_certificate", MESSAGES["csr"])
    raise CertificateError("not_certificate", MESSAGES["not_certificate"])


def _load_der_certificate(der: bytes) -> x509.Certificate:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. negative serials: read them, judge later
            return x509.load_der_x509_certificate(der)
    except Exception:
        # It is certificate-shaped ASN.1 (checked by _shape), so the parser refused the
        # encoding itself: typically explicit DEFAULT values from old tools.
        raise CertificateError("not_der", MESSAGES["not_der"]) from None


_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 #-]{1,60})-----(.*?)-----END \1-----", re.S)


def _pem_blocks(text: bytes) -> list[tuple[str, bytes]]:
    out = []
    for match in _PEM_RE.finditer(text):
        label = match.group(1).decode("ascii").strip()
        lines = [ln.strip() for ln in match.group(2).splitlines()]
        body = b"".join(ln for ln in lines if ln and b":" not in ln)
        try:
            out.append((label, base64.b64decode(body, validate=True)))
        except (binascii.Error, ValueError):
            out.append((label, b""))
    return out


def _parse_pem(text: bytes, password: str | bytes | None) -> _Parsed:
    blocks = _pem_blocks(text)
    certs: list[x509.Certificate] = []
    has_key = False
    labels = set()
    for label, body in blocks:
        labels.add(label)
        if "PRIVATE KEY" in label:
            has_key = True  # never decoded: only the public part matters here
            continue
        if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE", "PKCS7", "CMS"):
            if not body:
                raise CertificateError("not_certificate", MESSAGES["truncated"])
            der = _first_tlv(body)
            top = _top(der)
            certs.extend(_der_certificates(der, top, _shape(der, top)))
        elif label == "PKCS12":
            return _parse_der(body, password, kind="pfx")
    if not certs:
        if has_key:
            raise CertificateError("not_certificate", MESSAGES["only_key"])
        if labels & {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"}:
            raise CertificateError("not_certificate", MESSAGES["csr"])
        raise CertificateError("not_certificate", MESSAGES["not_certificate"])
    parsed = _from_certificates(certs, "pem")
    if has_key:
        parsed.notes.append(
            "O arquivo PEM também traz uma chave privada, que foi ignorada e não é guardada."
        )
    return parsed


def _first_tlv(body: bytes) -> bytes:
    """The first DER element of ``body`` (OpenSSL's TRUSTED CERTIFICATE appends aux data)."""
    try:
        node = _read(body, 0, len(body))
    except _Asn1Error:
        return body
    return body[: node.next]


def _from_certificates(
    certs: list[x509.Certificate],
    kind: str,
    *,
    key_spki: bytes | None = None,
    preferred: x509.Certificate | None = None,
) -> _Parsed:
    unique: list[x509.Certificate] = []
    seen: set[bytes] = set()
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            unique.append(cert)
    notes: list[str] = []
    leaf = preferred
    if leaf is None and key_spki is not None:
        leaf = next((c for c in unique if _spki_of(c) == key_spki), None)
    if leaf is None:
        end_entities = [c for c in unique if not _is_ca_cert(c)]
        if not end_entities:
            raise CertificateError("not_certificate", MESSAGES["only_ca"])
        issuers = {c.issuer for c in unique if c.issuer != c.subject}
        bottom = [c for c in end_entities if c.subject not in issuers] or end_entities
        leaf = bottom[0]
        if len(bottom) > 1:
            notes.append(
                f"O arquivo traz {len(bottom)} certificados de usuário; foi considerado o primeiro."
            )
    others = [c for c in unique if c is not leaf]
    key_matches = None if key_spki is None else _spki_of(leaf) == key_spki
    return _Parsed(kind, leaf, others, key_spki is not None, key_matches, notes)


def _spki_of(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:
        return None


def _is_ca_cert(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except Exception:  # absent, or refused (judged later, when the report is built)
        return False


def _password_candidates(password: str | bytes | None) -> list[bytes | None]:
    if password is None or password in ("", b""):
        return [None, b""]
    if isinstance(password, bytes):
        out: list[bytes | None] = [password]
    else:
        out = [password.encode("utf-8", "replace")]
        try:
            latin = password.encode("latin-1")
            if latin not in out:
                out.append(latin)  # some Windows exports
        except UnicodeEncodeError:
            pass
    # OpenSSL takes C strings: a NUL cannot be in a real password, and cryptography panics
    # on one, so such a candidate is simply wrong.
    out = [c for c in out if c is None or b"\x00" not in c]
    out.append(None)  # the user typed a password for a file that has none
    return out


def _parse_pfx(data: bytes, top: _Node, password: str | bytes | None) -> _Parsed:
    _check_pfx_cost(data, top)
    loaded = None
    corrupt = False
    for candidate in _password_candidates(password):
        try:
            loaded = pkcs12.load_pkcs12(data, candidate)
            break
        except UnsupportedAlgorithm:
            raise CertificateError("not_certificate", MESSAGES["pfx_cipher"]) from None
        except ValueError as exc:
            # "Could not deserialize" is structural; anything else is the MAC or the
            # decryption failing, i.e. the password.
            corrupt = corrupt or "deserialize" in str(exc)
        except BaseException as exc:
            if not _is_panic(exc):
                raise
            corrupt = True
    if loaded is None:
        if corrupt:
            raise CertificateError("not_certificate", MESSAGES["pfx_corrupt"])
        if password is None or password in ("", b""):
            raise CertificateError("wrong_password", MESSAGES["password_required"])
        raise CertificateError("wrong_password", MESSAGES["wrong_password"])
    key_spki: bytes | None = None
    if loaded.key is not None:
        try:
            key_spki = loaded.key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except Exception:
            key_spki = b""
    main = loaded.cert.certificate if loaded.cert is not None else None
    extra = [c.certificate for c in loaded.additional_certs]
    del loaded  # the private key goes no further than this function
    certs = ([main] if main is not None else []) + extra
    if not certs:
        raise CertificateError("pfx_without_certificate", MESSAGES["pfx_without_certificate"])
    if key_spki is not None and main is None and not any(_spki_of(c) == key_spki for c in extra):
        raise CertificateError("pfx_without_certificate", MESSAGES["pfx_without_certificate"])
    parsed = _from_certificates(certs, "pfx", key_spki=key_spki, preferred=main)
    parsed.has_private_key = key_spki is not None
    return parsed


def _check_pfx_cost(data: bytes, top: _Node) -> None:
    """Refuse a .pfx whose key-derivation parameters would make opening it a denial of
    service (a crafted MAC iteration count of 2^31, say). Parameters inside encrypted parts
    are only visible to OpenSSL; real files keep their key bag parameters in the clear."""
    budget = {"nodes": 20000, "total": 0, "depth": 0}

    def charge(iterations: int) -> None:
        if iterations > MAX_KDF_ITERATIONS:
            raise CertificateError("not_certificate", MESSAGES["pfx_cost"])
        budget["total"] += iterations
        if budget["total"] > MAX_TOTAL_KDF_ITERATIONS:
            raise CertificateError("not_certificate", MESSAGES["pfx_cost"])

    def walk(buf: bytes, node: _Node, depth: int) -> None:
        budget["nodes"] -= 1
        if budget["nodes"] < 0 or depth > 40:
            raise CertificateError("not_certificate", MESSAGES["pfx_cost"])
        if node.constructed:
            kids = _children(buf, node)
            if node.is_universal(16) and kids and kids[0].is_universal(6):
                _charge_algorithm(buf, kids, charge)
            for kid in kids:
                walk(buf, kid, depth + 1)
        elif node.is_universal(4) or (node.cls == 2 and not node.constructed):
            inner = buf[node.start : node.end]
            if inner[:1] == b"\x30":
                try:
                    sub = _read(inner, 0, len(inner))
                except _Asn1Error:
                    return
                if sub.next == len(inner):
                    walk(inner, sub, depth + 1)

    try:
        kids = _children(data, top)
        if len(kids) >= 3 and kids[2].is_universal(16):
            mac = _children(data, kids[2])
            if len(mac) >= 3 and mac[2].is_universal(2):
                charge(_small_int(data, mac[2]))
        walk(data, top, 0)
    except _Asn1Error:
        pass  # malformed inside: OpenSSL will refuse it without spending anything


PBE_SALT_ITER = {
    *(f"1.2.840.113549.1.12.1.{n}" for n in range(1, 7)),  # PKCS#12 PBE
    *(f"1.2.840.113549.1.5.{n}" for n in (1, 3, 4, 6, 10, 11)),  # PBES1
    "1.2.840.113549.1.5.12",  # PBKDF2
}
SCRYPT = "1.3.6.1.4.1.11591.4.11"


def _charge_algorithm(buf: bytes, kids: list[_Node], charge: Any) -> None:
    oid = _oid(buf, kids[0])
    if len(kids) < 2 or not kids[1].is_universal(16):
        return
    params = _children(buf, kids[1])
    if oid in PBE_SALT_ITER and len(params) >= 2 and params[1].is_universal(2):
        charge(_small_int(buf, params[1]))
    elif oid == SCRYPT and len(params) >= 4:
        n, r, p = (_small_int(buf, params[i]) for i in (1, 2, 3))
        if n > MAX_SCRYPT_N or r > 32 or p > 16:
            raise CertificateError("not_certificate", MESSAGES["pfx_cost"])


def _small_int(buf: bytes, node: _Node) -> int:
    raw = buf[node.start : node.end]
    if len(raw) > 8:
        return 1 << 62
    return int.from_bytes(raw, "big", signed=True) if raw else 0


# --- a small BER reader, only to tell kinds of files apart -------------------------------------


class _Asn1Error(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Node:
    cls: int
    constructed: bool
    number: int
    start: int  # first content byte
    end: int  # one past the last content byte
    next: int  # one past the element (after an end-of-contents for indefinite lengths)

    def is_universal(self, number: int) -> bool:
        return self.cls == 0 and self.number == number


def _read(buf: bytes, pos: int, end: int, depth: int = 0) -> _Node:
    if depth > 64 or pos >= end:
        raise _Asn1Error("truncated or too deep")
    first = buf[pos]
    pos += 1
    cls, constructed, number = first >> 6, bool(first & 0x20), first & 0x1F
    if number == 0x1F:
        number = 0
        for _ in range(4):
            if pos >= end:
                raise _Asn1Error("truncated tag")
            byte = buf[pos]
            pos += 1
            number = (number << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        else:
            raise _Asn1Error("tag too long")
    if pos >= end:
        raise _Asn1Error("truncated length")
    lb = buf[pos]
    pos += 1
    if lb == 0x80:  # BER indefinite length (some .pfx exporters)
        if not constructed:
            raise _Asn1Error("indefinite primitive")
        start = pos
        while True:
            if pos + 2 > end:
                raise _Asn1Error("missing end-of-contents")
            if buf[pos] == 0 and buf[pos + 1] == 0:
                return _Node(cls, constructed, number, start, pos, pos + 2)
            pos = _read(buf, pos, end, depth + 1).next
    if lb < 0x80:
        length = lb
    else:
        n = lb & 0x7F
        if n > 4 or pos + n > end:
            raise _Asn1Error("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise _Asn1Error("truncated content")
    return _Node(cls, constructed, number, pos, pos + length, pos + length)


def _children(buf: bytes, node: _Node, limit: int = 4096) -> list[_Node]:
    if not node.constructed:
        return []
    out, pos = [], node.start
    while pos < node.end:
        child = _read(buf, pos, node.end, 1)
        out.append(child)
        pos = child.next
        if len(out) > limit:
            raise _Asn1Error("too many elements")
    return out


def _oid(buf: bytes, node: _Node) -> str:
    raw = buf[node.start : node.end]
    if not raw or len(raw) > 64:
        return ""
    parts, value = [], 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    if not parts:
        return ""
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def _shape(buf: bytes, top: _Node) -> str:
    """certificate | pfx | pkcs7 | csr | unknown, from the outer structure alone."""
    if not top.is_universal(16) or not top.constructed:
        return "unknown"
    try:
        kids = _children(buf, top, limit=8)
    except _Asn1Error:
        return "unknown"
    if len(kids) >= 2 and kids[0].is_universal(2) and kids[1].is_universal(16):
        try:
            inner = _children(buf, kids[1], limit=4)
        except _Asn1Error:
            inner = []
        pfx_types = ("1.2.840.113549.1.7.1", "1.2.840.113549.1.7.2")
        if inner and inner[0].is_universal(6) and _oid(buf, inner[0]) in pfx_types:
            return "pfx"
    if kids and kids[0].is_universal(6) and _oid(buf, kids[0]) == "1.2.840.113549.1.7.2":
        return "pkcs7"
    if (
        len(kids) == 3
        and kids[0].is_universal(16)
        and kids[1].is_universal(16)
        and kids[2].is_universal(3)
    ):
        try:
            tbs = _children(buf, kids[0], limit=16)
        except _Asn1Error:
            return "certificate"
        # A CSR's info is INTEGER version, Name, key, [0] attributes; a certificate's starts
        # with an explicit [0] version or the serial, and has at least six elements.
        csr = len(tbs) == 4 and tbs[0].is_universal(2) and tbs[1].is_universal(16)
        return "csr" if csr and tbs[3].cls == 2 else "certificate"
    return "unknown"


def _strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


_B64_RE = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


def _bare_base64(data: bytes) -> bytes | None:
    """A certificate saved as base64 without the PEM lines, decoded; else None."""
    text = data.strip()
    if len(text) < 64 or not _B64_RE.match(text):
        return None
    try:
        raw = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw[:1] == b"\x30" else None


# --- building the report -------------------------------------------------------------------


def _report(
    parsed: _Parsed,
    now: datetime,
    expected_cnpj: str | None,
    cnpj_exception: bool,
    extra_anchors: tuple[x509.Certificate, ...],
) -> CertificateReport:
    leaf = parsed.leaf
    exts = leaf.extensions  # may raise: refused parts of a loaded certificate
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    days_left = _days_between(now, not_after)
    key_usage, ku_value = _key_usage(exts)
    eku = _eku(exts)
    is_ca = _is_ca_ext(exts)
    client_auth, client_reason = _client_auth(eku, ku_value, is_ca)
    policies = _policies(exts)
    other_names, emails = _san(exts)
    identity = _identity(other_names, _cn(leaf.subject))
    chain = _verify_chain(leaf, parsed.others, extra_anchors, now)
    expected = _norm_cnpj(expected_cnpj) if expected_cnpj else None
    report = CertificateReport(
        file_kind=parsed.file_kind,
        subject=leaf.subject.rfc4514_string(),
        subject_cn=_cn(leaf.subject),
        issuer=leaf.issuer.rfc4514_string(),
        issuer_cn=_cn(leaf.issuer),
        serial=_serial(leaf),
        not_before=not_before,
        not_after=not_after,
        checked_at=now,
        days_left=days_left,
        sha256=fingerprint(leaf),
        signature_algorithm=_signature_algorithm(leaf),
        public_key=_public_key_info(leaf),
        key_usage=key_usage,
        extended_key_usage=[EKU_NAMES.get(o, o) for o in eku] if eku is not None else [],
        client_auth=client_auth,
        client_auth_reason_pt=client_reason,
        is_ca=is_ca,
        policies=policies,
        type=_type(policies),
        holder_kind=identity["holder_kind"],
        identity_source=identity["source"],
        cnpj=identity["cnpj"],
        responsible_name=identity["responsible_name"],
        responsible_cpf=identity["responsible_cpf"],
        responsible_birth_date=identity["responsible_birth_date"],
        responsible_nis=identity["responsible_nis"],
        holder_cpf=identity["holder_cpf"],
        holder_birth_date=identity["holder_birth_date"],
        holder_nis=identity["holder_nis"],
        other_names={OTHER_NAME_LABELS.get(k, k): v for k, v in other_names.items()},
        emails=emails,
        has_private_key=parsed.has_private_key,
        key_matches=parsed.key_matches,
        icp_brasil=chain.icp_brasil,
        chain=chain,
        expected_cnpj=expected,
        cnpj_exception=cnpj_exception,
        checklist=[],
        problems=[],
        notes=list(parsed.notes),
        der=parsed.leaf_der,
        chain_der=tuple(c.public_bytes(serialization.Encoding.DER) for c in parsed.others),
    )
    report.problems = problems_of(report, allow_cnpj_exception=cnpj_exception)
    report.checklist = _checklist(report)
    return report


def _checklist(r: CertificateReport) -> list[CheckItem]:
    items: list[CheckItem] = []
    kinds = {
        "der": "certificado público (.cer, DER)",
        "pem": "certificado público (PEM)",
        "base64": "certificado público (base64)",
        "pkcs7": "cadeia de certificados (.p7b)",
        "pfx": "arquivo .pfx/.p12",
    }
    items.append(CheckItem("parsed", "Leitura", True, "ok", f"Arquivo lido: {kinds[r.file_kind]}."))
    if r.file_kind == "pfx":
        items.append(CheckItem("password", "Senha", True, "ok", "Senha correta."))
    else:
        items.append(
            CheckItem(
                "password", "Senha", True, "info", "Não se aplica: arquivo só com a parte pública."
            )
        )
    items.append(_validity_item(r.not_before, r.not_after, r.checked_at))
    if r.icp_brasil:
        items.append(CheckItem("icp_brasil", "ICP-Brasil", True, "ok", r.chain.reason_pt))
    else:
        items.append(CheckItem("icp_brasil", "ICP-Brasil", False, "error", r.chain.reason_pt))
    if r.has_private_key and r.key_matches is False:
        items.append(
            CheckItem(
                "private_key",
                "Chave privada",
                False,
                "warning",
                "A chave privada do arquivo não corresponde ao certificado; exporte o .pfx "
                "novamente. Só a parte pública é guardada.",
            )
        )
    elif r.has_private_key:
        items.append(
            CheckItem(
                "private_key",
                "Chave privada",
                True,
                "ok",
                "O arquivo tem a chave privada (certificado A1). Só a parte pública é guardada; "
                "a chave e a senha são descartadas.",
            )
        )
    else:
        items.append(
            CheckItem(
                "private_key",
                "Chave privada",
                True,
                "info",
                "Só a parte pública: a chave privada fica no token/cartão (A3) ou com quem "
                "instala o conector.",
            )
        )
    items.append(
        CheckItem(
            "client_auth",
            "Autenticação de cliente TLS",
            r.client_auth,
            "ok" if r.client_auth else "error",
            r.client_auth_reason_pt,
        )
    )
    items.append(_cnpj_item(r))
    items.append(_cpf_item(r))
    if r.type in ("A1", "A3"):
        text = {
            "A1": "Tipo A1 (chave em arquivo, validade de até 1 ano): o recomendado pela RNDS.",
            "A3": "Tipo A3 (chave em token ou cartão, não exportável).",
        }[r.type]
        items.append(CheckItem("type", "Tipo", True, "ok", text))
    else:
        items.append(
            CheckItem(
                "type",
                "Tipo",
                False,
                "warning",
                "Tipo não identificado: o certificado não traz a política A1 "
                "(2.16.76.1.2.1) nem A3 (2.16.76.1.2.3) da ICP-Brasil.",
            )
        )
    return items


def _validity_item(not_before: datetime, not_after: datetime, now: datetime) -> CheckItem:
    days = _days_between(now, not_after)
    if now > not_after:
        return CheckItem(
            "validity", "Validade", False, "error", f"Vencido em {_br_date(not_after)}."
        )
    if now < not_before:
        return CheckItem(
            "validity",
            "Validade",
            False,
            "error",
            f"Ainda não é válido: passa a valer em {_br_date(not_before)}.",
        )
    if days <= EXPIRY_WARNING_DAYS:
        when = "hoje" if days == 0 else f"em {days} dia{'s' if days != 1 else ''}"
        return CheckItem(
            "validity",
            "Validade",
            True,
            "warning",
            f"Vence {when} ({_br_date(not_after)}): providencie a renovação.",
        )
    return CheckItem(
        "validity",
        "Validade",
        True,
        "ok",
        f"Válido até {_br_date(not_after)} ({days} dias restantes).",
    )


def validity_item(not_before: datetime, not_after: datetime, now: datetime) -> dict[str, Any]:
    """The checklist's validity line recomputed for ``now`` (stored reports age)."""
    return _validity_item(not_before, not_after, _aware(now)).to_dict()


def _cnpj_item(r: CertificateReport) -> CheckItem:
    if r.cnpj is None:
        if r.expected_cnpj:
            level = "warning" if r.cnpj_exception else "error"
            return CheckItem("cnpj", "CNPJ", False, level, _cnpj_mismatch(r, r.expected_cnpj) or "")
        return CheckItem("cnpj", "CNPJ", False, "warning", "O certificado não traz CNPJ.")
    shown = _fmt_cnpj(r.cnpj)
    source = " (lido do nome, sem o campo ICP-Brasil)" if r.identity_source == "cn" else ""
    if not r.expected_cnpj:
        return CheckItem("cnpj", "CNPJ", True, "info", f"CNPJ do certificado: {shown}{source}.")
    mismatch = _cnpj_mismatch(r, r.expected_cnpj)
    if not mismatch:
        return CheckItem(
            "cnpj", "CNPJ", True, "ok", f"CNPJ {shown} confere com o estabelecimento{source}."
        )
    if r.cnpj_exception:
        return CheckItem(
            "cnpj",
            "CNPJ",
            False,
            "warning",
            f"CNPJ {shown} diferente do estabelecimento ({_fmt_cnpj(r.expected_cnpj)}); "
            "exceção documentada pelo gestor.",
        )
    return CheckItem("cnpj", "CNPJ", False, "error", mismatch)


def _cpf_item(r: CertificateReport) -> CheckItem:
    label = "CPF do responsável" if r.holder_kind != "e-CPF" else "CPF do titular"
    cpf = r.cpf_responsavel
    if not cpf:
        return CheckItem(
            "responsible_cpf", label, False, "warning", "O certificado não traz o CPF."
        )
    shown = identifiers.format_cpf(cpf) if identifiers.is_valid_cpf(cpf) else cpf
    if not identifiers.is_valid_cpf(cpf):
        return CheckItem(
            "responsible_cpf", label, False, "warning", f"CPF {shown} com dígitos inválidos."
        )
    who = f" ({r.responsible_name})" if r.responsible_name else ""
    return CheckItem("responsible_cpf", label, True, "ok", f"CPF {shown}{who}.")


def _cnpj_mismatch(r: CertificateReport, expected: str | None) -> str | None:
    if not expected:
        return None
    expected = _norm_cnpj(expected)
    hint = (
        " Se for um caso documentado (por exemplo, o certificado da mantenedora), o gestor "
        "pode registrar a exceção com a justificativa."
    )
    if r.cnpj is None:
        what = "é um e-CPF (de pessoa física)" if r.holder_kind == "e-CPF" else "não traz CNPJ"
        return (
            f"O certificado {what}; a RNDS espera o e-CNPJ do estabelecimento "
            f"(CNPJ {_fmt_cnpj(expected)}).{hint}"
        )
    if r.cnpj == expected:
        return None
    same_company = r.cnpj[:8] == expected[:8]
    extra = " (mesma empresa, outro estabelecimento: matriz/filial)" if same_company else ""
    return (
        f"O CNPJ do certificado ({_fmt_cnpj(r.cnpj)}) é diferente do CNPJ do estabelecimento "
        f"({_fmt_cnpj(expected)}){extra}.{hint}"
    )


# --- fields ------------------------------------------------------------------------------------


def _key_usage(exts: x509.Extensions) -> tuple[list[str], x509.KeyUsage | None]:
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


def _eku(exts: x509.Extensions) -> list[str] | None:
    try:
        value = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return [oid.dotted_string for oid in value]


def _is_ca_ext(exts: x509.Extensions) -> bool:
    try:
        return bool(exts.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _client_auth(eku: list[str] | None, ku: x509.KeyUsage | None, is_ca: bool) -> tuple[bool, str]:
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


def _policies(exts: x509.Extensions) -> list[str]:
    try:
        value = exts.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [p.policy_identifier.dotted_string for p in value]


def _type(policies: Iterable[str]) -> str:
    for oid in policies:
        if oid.startswith(POLICY_A1 + "."):
            return "A1"
        if oid.startswith(POLICY_A3 + "."):
            return "A3"
    return "unknown"


def _san(exts: x509.Extensions) -> tuple[dict[str, list[str]], list[str]]:
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
        node = _read(value, 0, len(value))
    except _Asn1Error:
        return None
    if node.cls == 2 and node.constructed:  # [0] EXPLICIT wrapper
        kids = _children(value, node)
        if not kids:
            return None
        return decode_other_name(value[node.start : kids[0].next])
    if node.cls != 0 or node.number not in (4, 12, 19, 20, 22, 26, 30):
        return None
    if node.constructed:  # BER constructed string: concatenate the segments
        raw = b"".join(value[k.start : k.end] for k in _children(value, node))
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


def _identity(others: dict[str, list[str]], cn: str | None) -> dict[str, Any]:
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
        cnpj = _norm_cnpj(others[OID_CNPJ][0])
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


def _norm_cnpj(value: str) -> str:
    try:
        return identifiers.normalize_cnpj(value)
    except identifiers.InvalidIdentifier:
        return re.sub(r"[\s./-]", "", str(value)).upper()


def _fmt_cnpj(value: str) -> str:
    try:
        return identifiers.format_cnpj(value)
    except identifiers.InvalidIdentifier:
        return value


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[-1].value
    return value if isinstance(value, str) else value.decode("latin-1")


def _serial(cert: x509.Certificate) -> str:
    n = cert.serial_number
    return ("-" if n < 0 else "") + format(abs(n), "x")


def _signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name = getattr(oid, "_name", "Unknown OID")
    return name if name != "Unknown OID" else oid.dotted_string


def _public_key_info(cert: x509.Certificate) -> dict[str, Any]:
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


# --- the chain ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def icp_brasil_store() -> tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]]:
    """(roots, intermediates) of ICP-Brasil from ``certifi-icpbr`` (its bundle also holds the
    ordinary web roots, which are not ICP-Brasil and are left out)."""
    try:
        import certifi_icpbr

        with open(certifi_icpbr.where(), "rb") as fh:
            bundle = fh.read()
    except Exception:  # pragma: no cover - the package is a dependency
        log.error("certifi-icpbr is missing: no certificate can be recognized as ICP-Brasil")
        return (), ()
    roots, intermediates = [], []
    for label, body in _pem_blocks(bundle):
        if label != "CERTIFICATE" or not body:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cert = x509.load_der_x509_certificate(body)
            orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        except Exception:  # noqa: S112 - one unreadable bundle entry must not hide the rest
            continue
        if "ICP-Brasil" not in orgs:
            continue
        (roots if cert.subject == cert.issuer else intermediates).append(cert)
    return tuple(roots), tuple(intermediates)


def _ca_basic_constraints(_policy: Any, _cert: x509.Certificate, ext: Any) -> None:
    if not ext.ca:
        raise ValueError("basicConstraints.cA must be asserted in a CA certificate")


@lru_cache(maxsize=1)
def _policies_for_verifier() -> tuple[Any, Any]:
    # Relaxed on extensions (real ICP-Brasil certificates of every generation must pass; the
    # usages are judged separately), strict on signatures, validity and CA-ness.
    ca = verification.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, _ca_basic_constraints
    )
    return ca, verification.ExtensionPolicy.permit_all()


def _verify_chain(
    leaf: x509.Certificate,
    in_file: list[x509.Certificate],
    extra_anchors: tuple[x509.Certificate, ...],
    now: datetime,
) -> ChainResult:
    try:
        return _verify_chain_inner(leaf, in_file, extra_anchors, now)
    except Exception as exc:  # a verifier surprise must not hide the rest of the report
        log.warning("certificate chain check failed unexpectedly: %s", type(exc).__name__)
        return ChainResult(False, "Não foi possível verificar a cadeia do certificado.")


def _verify_chain_inner(
    leaf: x509.Certificate,
    in_file: list[x509.Certificate],
    extra_anchors: tuple[x509.Certificate, ...],
    now: datetime,
) -> ChainResult:
    icp_roots, icp_intermediates = icp_brasil_store()
    # Configured certificates: the self-signed ones are roots, the others known intermediates.
    extra_roots = [c for c in extra_anchors if c.subject == c.issuer]
    extra_intermediates = [c for c in extra_anchors if c.subject != c.issuer]
    anchors = {fingerprint(c): "icp_brasil" for c in icp_roots}
    for cert in extra_roots:
        anchors.setdefault(fingerprint(cert), "configured")
    anchor_certs = list(icp_roots) + extra_roots
    pool = [c for c in in_file if fingerprint(c) not in anchors]
    pool += extra_intermediates + list(icp_intermediates)
    # Judge the chain at a moment inside the leaf's validity, so that an expired certificate
    # is reported as expired rather than as "not ICP-Brasil".
    moment = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    if anchor_certs:
        ca_policy, ee_policy = _policies_for_verifier()
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(anchor_certs))
            .time(moment)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, pool)
        except verification.VerificationError as exc:
            detail = str(exc)
        else:
            chain = verified.chain
            root = chain[-1]
            source = anchors.get(fingerprint(root), "configured")
            root_name = _cn(root.subject) or root.subject.rfc4514_string()
            if source == "icp_brasil":
                reason = f"Emitido sob a ICP-Brasil: a cadeia chega à raiz “{root_name}”."
            else:
                reason = (
                    f"A cadeia chega à raiz configurada “{root_name}” (aceita como ICP-Brasil "
                    "por configuração desta instalação)."
                )
            return ChainResult(
                True, reason, root.subject.rfc4514_string(), source, _path(chain), ""
            )
    else:
        detail = "nenhuma raiz ICP-Brasil disponível"
    reason, path = _explain(leaf, pool, anchors, anchor_certs, moment)
    return ChainResult(False, reason, None, None, _path(path), detail)


def _explain(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    anchors: dict[str, str],
    anchor_certs: list[x509.Certificate],
    moment: datetime,
) -> tuple[str, list[x509.Certificate]]:
    """Why the leaf does not chain to a trusted root, in words (walks the likeliest path)."""
    candidates_by_subject: dict[x509.Name, list[x509.Certificate]] = {}
    for cert in anchor_certs + pool:
        candidates_by_subject.setdefault(cert.subject, []).append(cert)
    if leaf.subject == leaf.issuer and _signed_by(leaf, leaf):
        return "o certificado é autoassinado (não foi emitido por uma autoridade certificadora).", [
            leaf
        ]
    path = [leaf]
    current = leaf
    seen = {fingerprint(leaf)}
    for _ in range(MAX_CHAIN_DEPTH):
        name = _cn(current.issuer) or current.issuer.rfc4514_string()
        candidates = [c for c in candidates_by_subject.get(current.issuer, []) if c is not current]
        if not candidates:
            if current is leaf:
                return (
                    f"a autoridade emissora “{name}” não é uma AC conhecida da ICP-Brasil e não "
                    "veio no arquivo.",
                    path,
                )
            return (
                f"a cadeia para em “{_cn(current.subject)}”, emitida por “{name}”, que não é "
                "uma AC conhecida da ICP-Brasil.",
                path,
            )
        signer = next((c for c in candidates if _signed_by(current, c)), None)
        if signer is None:
            return f"a assinatura da AC “{name}” não confere.", path
        path.append(signer)
        signer_name = _cn(signer.subject) or signer.subject.rfc4514_string()
        if not (signer.not_valid_before_utc <= moment <= signer.not_valid_after_utc):
            return (
                f"a AC “{signer_name}” não estava válida (vigência até "
                f"{_br_date(signer.not_valid_after_utc)}).",
                path,
            )
        if fingerprint(signer) in anchors:
            return (
                f"a cadeia até “{signer_name}” não passou na verificação (restrições da AC ou "
                "algoritmo de assinatura não aceito).",
                path,
            )
        if signer.subject == signer.issuer:
            return (
                f"a cadeia termina na raiz “{signer_name}”, que não é uma raiz da ICP-Brasil.",
                path,
            )
        if fingerprint(signer) in seen:
            break
        seen.add(fingerprint(signer))
        current = signer
    return "a cadeia de certificação é longa demais ou circular.", path


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:
        return False


def _path(chain: Sequence[x509.Certificate]) -> list[dict[str, str]]:
    return [
        {
            "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(),
            "not_after": _iso(c.not_valid_after_utc),
            "sha256": fingerprint(c),
        }
        for c in chain
    ]


# --- small helpers -----------------------------------------------------------------------------


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _days_between(now: datetime, later: datetime) -> int:
    return (later - now) // timedelta(days=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _br_date(moment: datetime) -> str:
    return _local(moment).strftime("%d/%m/%Y")


@lru_cache(maxsize=1)
def _zone() -> Any:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Sao_Paulo")
    except Exception:  # pragma: no cover - no tz database
        return UTC


def _local(moment: datetime) -> datetime:
    return moment.astimezone(_zone())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
