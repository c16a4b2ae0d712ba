"""Reading whatever certificate file a user has: DER, PEM (also bare base64), a PEM bundle,
a .p7b, a .pfx/.p12 with its password. The kind is judged by content, never by name.

Only public material leaves: a .pfx's private key is loaded only to learn that it exists and
matches the certificate, then dropped; the password is never kept, logged or echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from engine.pki import asn1, fields, lenient
from engine.pki.report import MESSAGES, CertificateError, is_panic

log = logging.getLogger(__name__)

MAX_BYTES = 1024 * 1024  # real certificate files are a few KB; a .pfx with its chain < 20 KB
MAX_KDF_ITERATIONS = 2_000_000  # per PBKDF/MAC in a .pfx (tools use 2 000–600 000)
MAX_TOTAL_KDF_ITERATIONS = 6_000_000
MAX_SCRYPT_N = 1 << 20


def public_der_from_upload(data: bytes, password: str | bytes | None = None) -> bytes:
    """The public certificate (DER) of an uploaded file — what may be stored.

    A .pfx is opened with its password only to take the certificate out; its key and the
    password go nowhere. Raises :class:`CertificateError` when the file cannot be read (not
    when the certificate is expired or otherwise unsuitable: that is for the service).
    """
    return parse_file(data, password).leaf_der


def looks_like_certificate_file(data: bytes) -> bool:
    """True when ``data`` is, by content, something certificate-like: DER/BER ASN.1 (a .cer,
    .p7b or .pfx), PEM of any kind (certificates, keys, CSRs) or bare base64 of those.

    The file upload uses it to send such files through :func:`public_der_from_upload` so a
    .pfx or a private key is never stored.
    """
    try:
        head = asn1.strip_bom(data[:4096]).lstrip()
        if head.startswith(b"-----BEGIN") or b"-----BEGIN " in data[:65536]:
            return True
        if head[:1] == b"\x30":
            # Long-form or indefinite lengths never occur in text; a short DER must be the
            # whole file (a text file may well start with "0").
            if len(head) > 1 and 0x80 <= head[1] <= 0x84:
                return True
            top = asn1.read(head, 0, len(head))
            return not head[top.next :].strip(b"\x00\r\n\t ")
        if len(data) <= MAX_BYTES and asn1.bare_base64(data) is not None:
            return True
    except Exception:  # pragma: no cover - defensive
        return False
    return False


NOTE_REPAIRED = (
    "O certificado não segue à risca o padrão DER (traz, por exemplo, um valor padrão "
    "escrito por extenso); foi lido assim mesmo e é guardado exatamente como veio."
)
NOTE_CA_DROPPED = (
    "Um certificado de AC do arquivo fora do padrão DER foi deixado de lado; a cadeia foi "
    "buscada entre as ACs conhecidas."
)


@dataclass
class Parsed:
    file_kind: str
    leaf: x509.Certificate
    others: list[x509.Certificate]
    has_private_key: bool
    key_matches: bool | None
    notes: list[str]
    # The leaf's bytes in the file when they are not strict DER (``leaf`` is then their
    # re-encoding, for reading): what is stored, fingerprinted and signature-checked.
    leaf_original: bytes | None = None

    @property
    def leaf_der(self) -> bytes:
        if self.leaf_original is not None:
            return self.leaf_original
        return self.leaf.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class _Cert:
    cert: x509.Certificate
    original: bytes | None = None  # the file's bytes, when ``cert`` is their repair

    @property
    def der(self) -> bytes:
        return self.original or self.cert.public_bytes(serialization.Encoding.DER)


def _certificate(der: bytes) -> _Cert:
    """One certificate from its bytes: as it is, or re-encoded in DER when it is not strict
    DER (see ``engine.pki.lenient``); ``not_der`` when even that fails."""
    cert = lenient.strict(der)
    if cert is not None:
        return _Cert(cert)
    fixed = lenient.repair(der)
    if fixed is None:
        raise CertificateError("not_der", MESSAGES["not_der"])
    return _Cert(fixed, der)


def _checked(cert: x509.Certificate) -> _Cert:
    """A certificate ``cryptography`` handed over from a container: loaded lazily, so a part
    it refuses shows only now, and is repaired from the certificate's own bytes."""
    try:
        lenient.probe(cert)
        return _Cert(cert)
    except Exception:
        return _certificate(cert.public_bytes(serialization.Encoding.DER))


def parse_file(data: bytes, password: str | bytes | None) -> Parsed:
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
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        log.info("certificate file could not be read: %s", type(exc).__name__)
        raise CertificateError("not_certificate", MESSAGES["not_certificate"]) from None


def _dispatch(data: bytes, password: str | bytes | None, *, allow_base64: bool) -> Parsed:
    text = asn1.strip_bom(data)
    stripped = text.lstrip()
    if b"-----BEGIN " in text:
        return _parse_pem(text, password)
    if stripped[:1] == b"\x30":
        return _parse_der(stripped, password, kind="der")
    if allow_base64:
        raw = asn1.bare_base64(text)
        if raw is not None:
            parsed = _dispatch(raw, password, allow_base64=False)
            if parsed.file_kind == "der":
                parsed.file_kind = "base64"
            return parsed
    raise CertificateError("not_certificate", MESSAGES["not_certificate"])


def _parse_der(data: bytes, password: str | bytes | None, *, kind: str) -> Parsed:
    top = _top(data)
    der = data[: top.next]
    shape = asn1.shape(der, top)
    if shape == "pfx":
        return _parse_pfx(der, top, password)
    return _from_certificates(
        _der_certificates(der, top, shape), "pkcs7" if shape == "pkcs7" else kind
    )


def _top(data: bytes) -> asn1.Node:
    """The outer element; only whitespace or NULs (editors, some exporters) may follow it."""
    try:
        top = asn1.read(data, 0, len(data))
    except asn1.Asn1Error:
        raise CertificateError("not_certificate", MESSAGES["truncated"]) from None
    if data[top.next :].strip(b"\x00\r\n\t "):
        raise CertificateError("not_certificate", MESSAGES["not_certificate"])
    return top


def _der_certificates(der: bytes, top: asn1.Node, shape: str) -> list[_Cert]:
    if shape == "pkcs7":
        try:
            return [_checked(c) for c in pkcs7.load_der_pkcs7_certificates(der)]
        except CertificateError:
            raise
        except Exception:
            return [_certificate(c) for c in _pkcs7_certificates(der)]
    if shape == "certificate":
        return [_certificate(der)]
    if shape == "csr":
        raise CertificateError("not_certificate", MESSAGES["csr"])
    raise CertificateError("not_certificate", MESSAGES["not_certificate"])


def _pkcs7_certificates(der: bytes) -> list[bytes]:
    """The certificates of a .p7b as they are in it, read by ``asn1crypto`` (``cryptography``
    refuses the whole file for one certificate that is not strict DER)."""
    try:
        signed = cms.ContentInfo.load(der)["content"]
        return [choice.chosen.dump() for choice in signed["certificates"]]
    except Exception:
        raise CertificateError("not_der", MESSAGES["not_der"]) from None


def _parse_pem(text: bytes, password: str | bytes | None) -> Parsed:
    blocks = asn1.pem_blocks(text)
    certs: list[_Cert] = []
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
            der = asn1.first_tlv(body)
            top = _top(der)
            certs.extend(_der_certificates(der, top, asn1.shape(der, top)))
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


def _from_certificates(
    certs: list[_Cert],
    kind: str,
    *,
    key_spki: bytes | None = None,
    preferred: _Cert | None = None,
) -> Parsed:
    unique: list[_Cert] = []
    seen: set[bytes] = set()
    for item in certs:
        if item.der not in seen:
            seen.add(item.der)
            unique.append(item)
    notes: list[str] = []
    leaf = next((c for c in unique if preferred and c.der == preferred.der), None)
    if leaf is None and key_spki is not None:
        leaf = next((c for c in unique if _spki_of(c.cert) == key_spki), None)
    if leaf is None:
        end_entities = [c for c in unique if not fields.is_ca_cert(c.cert)]
        if not end_entities:
            raise CertificateError("not_certificate", MESSAGES["only_ca"])
        issuers = {c.cert.issuer for c in unique if c.cert.issuer != c.cert.subject}
        bottom = [c for c in end_entities if c.cert.subject not in issuers] or end_entities
        leaf = bottom[0]
        if len(bottom) > 1:
            notes.append(
                f"O arquivo traz {len(bottom)} certificados de usuário; foi considerado o primeiro."
            )
    if leaf.original is not None:
        notes.append(NOTE_REPAIRED)
    # A repaired AC's signature cannot be checked by the verifier: the known ACs stand in.
    others = [c.cert for c in unique if c is not leaf and c.original is None]
    if any(c is not leaf and c.original is not None for c in unique):
        notes.append(NOTE_CA_DROPPED)
    key_matches = None if key_spki is None else _spki_of(leaf.cert) == key_spki
    return Parsed(kind, leaf.cert, others, key_spki is not None, key_matches, notes, leaf.original)


def _spki_of(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:
        return None


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


def _parse_pfx(data: bytes, top: asn1.Node, password: str | bytes | None) -> Parsed:
    _check_pfx_cost(data, top)
    loaded = None
    corrupt = False
    candidates = _password_candidates(password)
    for candidate in candidates:
        try:
            loaded = pkcs12.load_pkcs12(data, candidate)
            break
        except UnsupportedAlgorithm:
            raise CertificateError("not_certificate", MESSAGES["pfx_cipher"]) from None
        except Exception as exc:
            # "Could not deserialize" is structural; anything else is the MAC, the decryption
            # or a certificate inside failing (told apart by lenient.open_pfx below).
            corrupt = corrupt or "deserialize" in str(exc)
        except BaseException as exc:
            if not is_panic(exc):
                raise
            corrupt = True
    if loaded is None:
        # Before blaming the password: cryptography also refuses a .pfx whose certificate is
        # not strict DER. A MAC that verifies here means the password is right.
        opened = lenient.open_pfx(data, candidates, _kdf_budget(lenient.MAX_PY_TOTAL_ITERATIONS))
        if opened is not None:
            return _from_opened(opened)
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
    with _password_was_right():
        items = [_checked(c) for c in certs]
    first = items[0] if main is not None else None
    parsed = _from_certificates(items, "pfx", key_spki=key_spki, preferred=first)
    parsed.has_private_key = key_spki is not None
    return parsed


def _from_opened(opened: lenient.OpenedPfx) -> Parsed:
    if not opened.certificates:
        raise CertificateError("pfx_without_certificate", MESSAGES["pfx_without_certificate"])
    with _password_was_right():
        items = [_certificate(der) for der in opened.certificates]
    key_spki = opened.key_spki
    if key_spki and not any(_spki_of(c.cert) == key_spki for c in items):
        raise CertificateError("pfx_without_certificate", MESSAGES["pfx_without_certificate"])
    parsed = _from_certificates(items, "pfx", key_spki=key_spki)
    parsed.has_private_key = key_spki is not None
    return parsed


@contextmanager
def _password_was_right() -> Iterator[None]:
    """A certificate of an opened .pfx that cannot be read is not the password's fault."""
    try:
        yield
    except CertificateError as exc:
        if exc.code != "not_der":
            raise
        raise CertificateError("not_der", MESSAGES["not_der_pfx"]) from None


def _kdf_budget(total: int) -> Callable[[int], None]:
    spent = [0]

    def charge(iterations: int) -> None:
        spent[0] += max(iterations, 0)
        if iterations > MAX_KDF_ITERATIONS or spent[0] > total:
            raise CertificateError("not_certificate", MESSAGES["pfx_cost"])

    return charge


def _check_pfx_cost(data: bytes, top: asn1.Node) -> None:
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

    def walk(buf: bytes, node: asn1.Node, depth: int) -> None:
        budget["nodes"] -= 1
        if budget["nodes"] < 0 or depth > 40:
            raise CertificateError("not_certificate", MESSAGES["pfx_cost"])
        if node.constructed:
            kids = asn1.children(buf, node)
            if node.is_universal(16) and kids and kids[0].is_universal(6):
                _charge_algorithm(buf, kids, charge)
            for kid in kids:
                walk(buf, kid, depth + 1)
        elif node.is_universal(4) or (node.cls == 2 and not node.constructed):
            inner = buf[node.start : node.end]
            if inner[:1] == b"\x30":
                try:
                    sub = asn1.read(inner, 0, len(inner))
                except asn1.Asn1Error:
                    return
                if sub.next == len(inner):
                    walk(inner, sub, depth + 1)

    try:
        kids = asn1.children(data, top)
        if len(kids) >= 3 and kids[2].is_universal(16):
            mac = asn1.children(data, kids[2])
            if len(mac) >= 3 and mac[2].is_universal(2):
                charge(_small_int(data, mac[2]))
        walk(data, top, 0)
    except asn1.Asn1Error:
        pass  # malformed inside: OpenSSL will refuse it without spending anything


PBE_SALT_ITER = {
    *(f"1.2.840.113549.1.12.1.{n}" for n in range(1, 7)),  # PKCS#12 PBE
    *(f"1.2.840.113549.1.5.{n}" for n in (1, 3, 4, 6, 10, 11)),  # PBES1
    "1.2.840.113549.1.5.12",  # PBKDF2
}
SCRYPT = "1.3.6.1.4.1.11591.4.11"


def _charge_algorithm(buf: bytes, kids: list[asn1.Node], charge: Any) -> None:
    oid = asn1.oid(buf, kids[0])
    if len(kids) < 2 or not kids[1].is_universal(16):
        return
    params = asn1.children(buf, kids[1])
    if oid in PBE_SALT_ITER and len(params) >= 2 and params[1].is_universal(2):
        charge(_small_int(buf, params[1]))
    elif oid == SCRYPT and len(params) >= 4:
        n, r, p = (_small_int(buf, params[i]) for i in (1, 2, 3))
        if n > MAX_SCRYPT_N or r > 32 or p > 16:
            raise CertificateError("not_certificate", MESSAGES["pfx_cost"])


def _small_int(buf: bytes, node: asn1.Node) -> int:
    raw = buf[node.start : node.end]
    if len(raw) > 8:
        return 1 << 62
    return int.from_bytes(raw, "big", signed=True) if raw else 0
