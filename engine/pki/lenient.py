"""Certificates that are not strict DER, read anyway, and .pfx files opened without OpenSSL.

Real certificates are sometimes encoded in BER that DER forbids — typically an extension
that spells out a DEFAULT value (``cA FALSE`` in basicConstraints, ``critical FALSE``), as
old AC software and the NF-e homologation certificate do. OpenSSL and Windows read them;
``cryptography`` refuses them, on load or when the extensions are read. Such a certificate is
re-encoded in DER with ``asn1crypto`` for reading (:func:`repair`), while its original bytes
stay what is stored and fingerprinted, and what its issuer's signature is checked against
(:func:`signature_ok`).

When ``cryptography`` cannot open a .pfx, :func:`open_pfx` opens it here (RFC 7292): it
checks the MAC with each password candidate — a MAC that verifies means the password is
right, whatever else is wrong — then decrypts the safes (PBES2 with AES or 3DES, PKCS#12
PBE with 3DES, RC2-128 or RC4) and returns the certificates as they are in the file, and the
public half of the key. The key itself goes no further than :func:`_key_spki`.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms, pkcs12
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, RC2, TripleDES
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from engine.pki.report import CertificateError

# PKCS#12's own KDF runs in Python here (OpenSSL has already spent its budget on the file):
# real files use 2 000–2 048 iterations; more than this is not checked.
MAX_PY_KDF_ITERATIONS = 200_000
MAX_PY_TOTAL_ITERATIONS = 1_000_000  # about a second of Python hashing, for a whole file
MAX_KEY_BYTES = 64
MAX_NESTING = 4

RIGHT_BUT = "A senha está correta, mas "


class Unsupported(Exception):
    """A protection this reader does not implement (the password may still be right)."""


class _Undecryptable(Exception):
    """Decryption gave garbage: without a MAC, the sign of a wrong password."""


def _load(der: bytes) -> x509.Certificate:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. negative serials: read them, judge later
        return x509.load_der_x509_certificate(der)


def probe(cert: x509.Certificate) -> None:
    """Touch what ``cryptography`` parses lazily, so a refusal shows now, not in the report."""
    cert.extensions  # noqa: B018
    cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()


def strict(der: bytes) -> x509.Certificate | None:
    """The certificate when ``cryptography`` reads all of it as it is, else None."""
    try:
        cert = _load(der)
        probe(cert)
        return cert
    except Exception:
        return None


def repair(der: bytes) -> x509.Certificate | None:
    """The certificate re-encoded in DER (explicit defaults dropped, lengths made minimal),
    or None when even that cannot be read."""
    try:
        fixed = asn1_x509.Certificate.load(der).dump(force=True)
        if fixed == der:
            return None
        cert = _load(fixed)
        probe(cert)
        return cert
    except Exception:
        return None


def signed_parts(der: bytes) -> tuple[bytes, bytes]:
    """(tbsCertificate as encoded, signature) of a certificate's original bytes."""
    parsed = asn1_x509.Certificate.load(der)
    return parsed["tbs_certificate"].dump(), parsed["signature_value"].native


def signature_ok(original: bytes, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``original`` (``cert`` is its repaired reading, which
    carries the same signature algorithm)."""
    try:
        tbs, signature = signed_parts(original)
        key = issuer.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                signature,
                tbs,
                cert.signature_algorithm_parameters,
                cert.signature_hash_algorithm,
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, tbs, cert.signature_algorithm_parameters)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, tbs, cert.signature_hash_algorithm)
        else:
            return False
        return True
    except Exception:
        return False


# --- .pfx without OpenSSL ------------------------------------------------------------------------


@dataclass
class OpenedPfx:
    certificates: list[bytes] = field(default_factory=list)  # as they are in the file
    key_spki: bytes | None = None  # b"" when a key is there but unreadable
    password_checked: bool = False  # a MAC verified


def open_pfx(
    data: bytes, candidates: list[bytes | None], charge: Callable[[int], None]
) -> OpenedPfx | None:
    """The contents of a .pfx, with the first password candidate that opens it; None when no
    candidate does (a MAC that fails, or without a MAC, decryption that gives garbage).

    Raises :class:`CertificateError` when a candidate verified the MAC but the contents still
    cannot be read: the message then says the password is right and what is wrong.
    """
    try:
        pfx = pkcs12.Pfx.load(data)
        auth_safe = pfx["auth_safe"]
        if auth_safe["content_type"].native != "data":
            return None  # public-key integrity mode: never produced by certificate exporters
        content = _octets(auth_safe["content"])
        mac = pfx["mac_data"]
        has_mac = mac.native is not None
    except Exception:
        return None
    for candidate in candidates:
        checked = False
        if has_mac:
            try:
                if not _mac_ok(mac, content, candidate, charge):
                    continue
                checked = True
            except Unsupported:
                checked = False  # e.g. PBMAC1: judge the password by decryption instead
        try:
            opened = _read_auth_safe(content, candidate, charge)
        except CertificateError:
            raise
        except _Undecryptable:
            if checked:
                raise CertificateError(
                    "not_certificate",
                    RIGHT_BUT + "o conteúdo do .pfx está corrompido; exporte-o novamente.",
                ) from None
            continue
        except Unsupported:
            if checked:
                raise CertificateError(
                    "not_certificate",
                    RIGHT_BUT + "o .pfx usa uma cifra antiga que não conseguimos ler; "
                    "exporte-o novamente com AES-256 e SHA-256, ou envie o .cer.",
                ) from None
            return None
        except Exception:
            if checked:
                raise CertificateError(
                    "not_certificate",
                    RIGHT_BUT + "a estrutura do .pfx está fora do padrão; exporte-o novamente.",
                ) from None
            continue
        opened.password_checked = checked
        return opened
    return None


def _octets(value: Any) -> bytes:
    """The bytes of an OCTET STRING value, also when BER splits it into segments."""
    return bytes(value)


def _bmp(candidate: bytes | None) -> bytes:
    """A password as PKCS#12 KDFs take it: BMPString with a final NUL (none for no password)."""
    if candidate is None:
        return b""
    try:
        text = candidate.decode("utf-8")
    except UnicodeDecodeError:
        text = candidate.decode("latin-1")
    return text.encode("utf-16-be") + b"\x00\x00"


def pkcs12_kdf(
    hash_name: str,
    password: bytes,
    salt: bytes,
    purpose: int,
    iterations: int,
    size: int,
    charge: Callable[[int], None],
) -> bytes:
    """RFC 7292, appendix B.2 (``password`` already a BMPString)."""
    if not 1 <= iterations <= MAX_PY_KDF_ITERATIONS or not 0 < size <= MAX_KEY_BYTES:
        raise Unsupported("iterations or key size out of range")
    digest = hashlib.new(hash_name)
    u, v = digest.digest_size, digest.block_size

    def stretch(raw: bytes) -> bytes:
        n = v * -(-len(raw) // v)
        return (raw * (n // len(raw) + 1))[:n] if raw else b""

    block = stretch(salt) + stretch(password)
    out = b""
    while len(out) < size:
        charge(iterations)
        a = hashlib.new(hash_name, bytes([purpose]) * v + block).digest()
        for _ in range(iterations - 1):
            a = hashlib.new(hash_name, a).digest()
        out += a
        b = int.from_bytes(stretch(a)[:v], "big") + 1
        block = b"".join(
            ((int.from_bytes(block[i : i + v], "big") + b) % (1 << (8 * v))).to_bytes(v, "big")
            for i in range(0, len(block), v)
        )
    del u
    return out[:size]


def _mac_ok(
    mac: Any, content: bytes, candidate: bytes | None, charge: Callable[[int], None]
) -> bool:
    name = mac["mac"]["digest_algorithm"]["algorithm"].native
    if name not in ("sha1", "sha224", "sha256", "sha384", "sha512", "md5"):
        raise Unsupported(name)
    size = hashlib.new(name).digest_size
    key = pkcs12_kdf(
        name, _bmp(candidate), mac["mac_salt"].native, 3, mac["iterations"].native, size, charge
    )
    expected = mac["mac"]["digest"].native
    return hmac.compare_digest(hmac.new(key, content, name).digest(), expected)


def _read_auth_safe(
    content: bytes, candidate: bytes | None, charge: Callable[[int], None]
) -> OpenedPfx:
    opened = OpenedPfx()
    for info in pkcs12.AuthenticatedSafe.load(content):
        kind = info["content_type"].native
        if kind == "data":
            safe = _octets(info["content"])
        elif kind == "encrypted_data":
            encrypted = info["content"]
            if not isinstance(encrypted, cms.EncryptedData):
                encrypted = cms.EncryptedData.load(encrypted.dump())
            inner = encrypted["encrypted_content_info"]
            safe = _decrypt(
                inner["content_encryption_algorithm"],
                inner["encrypted_content"].native,
                candidate,
                charge,
            )
        else:
            raise Unsupported(kind)  # enveloped data: public-key privacy mode
        _read_bags(safe, candidate, charge, opened, 0)
    return opened


def _read_bags(
    safe: bytes,
    candidate: bytes | None,
    charge: Callable[[int], None],
    opened: OpenedPfx,
    depth: int,
) -> None:
    try:
        bags = pkcs12.SafeContents.load(safe)
        list(bags)  # parse now: garbage from a wrong key fails here
    except Exception:
        raise _Undecryptable from None
    for bag in bags:
        kind = bag["bag_id"].native
        value = bag["bag_value"]
        if kind == "cert_bag":
            if value["cert_id"].native == "x509":
                opened.certificates.append(_octets(value["cert_value"]))
        elif kind == "key_bag":
            opened.key_spki = _key_spki(value.untag().dump())
        elif kind == "pkcs8_shrouded_key_bag":
            plain = _decrypt(
                value["encryption_algorithm"], value["encrypted_data"].native, candidate, charge
            )
            opened.key_spki = _key_spki(plain)
        elif kind == "safe_contents" and depth < MAX_NESTING:
            _read_bags(value.untag().dump(), candidate, charge, opened, depth + 1)


def _key_spki(private_key_info: bytes) -> bytes:
    try:
        key = serialization.load_der_private_key(private_key_info, None)
        return key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:
        return b""


def _decrypt(
    algorithm: Any, ciphertext: bytes, candidate: bytes | None, charge: Callable[[int], None]
) -> bytes:
    try:
        kdf, cipher_name = algorithm.kdf, algorithm.encryption_cipher
        salt, iterations = algorithm.kdf_salt, algorithm.kdf_iterations
        key_length = algorithm.key_length
    except Exception:
        raise Unsupported("encryption algorithm") from None
    if kdf == "pkcs12_kdf":
        name = algorithm.kdf_hmac
        password = _bmp(candidate)
        key = pkcs12_kdf(name, password, salt, 1, iterations, key_length, charge)
        iv = b""
        if cipher_name != "rc4":
            block = algorithm.encryption_block_size
            iv = pkcs12_kdf(name, password, salt, 2, iterations, block, charge)
    elif kdf == "pbkdf2":
        if iterations < 1 or not 0 < key_length <= MAX_KEY_BYTES:
            raise Unsupported("iterations or key size out of range")
        charge(iterations)
        key = hashlib.pbkdf2_hmac(
            algorithm.kdf_hmac, candidate or b"", salt, iterations, key_length
        )
        iv = algorithm.encryption_iv
    else:
        raise Unsupported(kdf)
    if cipher_name == "rc4":
        decryptor = Cipher(ARC4(key), mode=None).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()
    block_cipher = _block_cipher(cipher_name, key)
    if algorithm.encryption_mode != "cbc" or len(ciphertext) % (block_cipher.block_size // 8):
        raise Unsupported(algorithm.encryption_mode)
    decryptor = Cipher(block_cipher, modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(block_cipher.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise _Undecryptable from None


def _block_cipher(name: str, key: bytes) -> Any:
    if name == "aes":
        return algorithms.AES(key)
    if name == "tripledes":
        return TripleDES(key)
    if name == "rc2" and len(key) == 16:  # RC2-40 (old Java and OpenSSL 1 exports) is not
        return RC2(key)
    raise Unsupported(name)
