"""A test PKI built with ``cryptography``: a root, an intermediate, and ICP-Brasil-style leaves.

The leaves carry the ICP-Brasil SubjectAltName otherName fields (DOMAIN.md) in the encodings
real certificates use (PrintableString, OCTET STRING, UTF8String) and in layouts of different
lengths, the A1/A3 policy OIDs and the TLS client-authentication EKU. Variants cover every
failure the inspector must explain: expired, not yet valid, wrong CNPJ, self-signed, no SAN
(CN fallback), no client auth, .pfx with and without password, .cer in DER and PEM, and files
that are not DER-conformant.

Keys are generated once per test session (EC P-256; RSA only where a test asks for it).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

A1_POLICY = "2.16.76.1.2.1.99"
A3_POLICY = "2.16.76.1.2.3.99"
ECPF_HOLDER = "2.16.76.1.3.1"
RESPONSIBLE_NAME = "2.16.76.1.3.2"
CNPJ_OID = "2.16.76.1.3.3"
RESPONSIBLE = "2.16.76.1.3.4"
VOTER_ID = "2.16.76.1.3.5"
PERSON_CEI = "2.16.76.1.3.6"
COMPANY_CEI = "2.16.76.1.3.7"

CNPJ = "12ABC34501DE35"  # alphanumeric CNPJ (valid check digits)
OTHER_CNPJ = "10302910000182"
CPF = "39053344705"
OTHER_CPF = "02474347100"
BIRTH = "15031980"  # ddmmaaaa
NIS = "12345678901"
RG = "000001234567890"  # 15 characters
RG_ISSUER = "SSPPR"

PASSWORD = "S3nh@-do-Certificado-Ç"


# --- keys ----------------------------------------------------------------------------------


@functools.cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_for(kind: str, name: str):
    return rsa_key(name) if kind == "rsa" else ec_key(name)


# --- DER helpers (to build deliberately non-DER files) -------------------------------------


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_len(len(content)) + content


def parse_tree(data: bytes) -> list:
    """A DER byte string as a list of (tag, children | content) nodes (single-byte tags)."""
    out, pos = [], 0
    while pos < len(data):
        tag = data[pos]
        first = data[pos + 1]
        if first < 0x80:
            length, start = first, pos + 2
        else:
            n = first & 0x7F
            length = int.from_bytes(data[pos + 2 : pos + 2 + n], "big")
            start = pos + 2 + n
        content = data[start : start + length]
        out.append((tag, parse_tree(content) if tag & 0x20 else content))
        pos = start + length
    return out


def encode_tree(nodes: list) -> bytes:
    return b"".join(
        tlv(tag, encode_tree(body) if isinstance(body, list) else body) for tag, body in nodes
    )


def resign(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A Certificate SEQUENCE around ``tbs`` signed with ``key`` (ecdsa-with-SHA256)."""
    sig_alg = bytes.fromhex("300a06082a8648ce3d040302")
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return tlv(0x30, tbs + sig_alg + tlv(0x03, b"\x00" + signature))


# --- names and otherName values ----------------------------------------------------------------


def other_name_value(text: str, encoding: str) -> bytes:
    """The DER of an otherName's inner value, as ``cryptography`` expects it."""
    if encoding == "octet":
        return tlv(0x04, text.encode("ascii"))
    if encoding == "utf8":
        return tlv(0x0C, text.encode("utf-8"))
    return tlv(0x13, text.encode("ascii"))  # PrintableString


def person_data(cpf: str = CPF, *, layout: str = "full", birth: str = BIRTH) -> str:
    """The ``2.16.76.1.3.1`` / ``2.16.76.1.3.4`` layout: birth date, CPF, NIS, RG, issuer."""
    if layout == "short":  # birth date and CPF only (19 characters)
        return birth + cpf
    if layout == "nis":  # up to the NIS (30 characters)
        return birth + cpf + NIS
    if layout == "zeros":  # birth date and NIS unavailable
        return "00000000" + cpf + "0" * 11 + "0" * 15
    if layout == "long":  # longer issuer field with trailing spaces
        return birth + cpf + NIS + RG + "SSP-PR DETRAN   "
    return birth + cpf + NIS + RG + RG_ISSUER


def subject(cn: str, *ous: str) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "BR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ICP-Brasil"),
    ]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in ous]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: object  # the private key (test material only)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def sha256(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()


def _ski(key) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _aki(issuer_key) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


class TestPKI:
    """Root → intermediate → leaves. ``anchors`` is what tests pass as extra trust anchors."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        root_key = ec_key("root")
        root_name = subject(
            "AC Raiz de Teste Credencia",
            "Instituto Nacional de Tecnologia da Informacao - ITI (TESTE)",
        )
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(1)
            .not_valid_before(self.now - timedelta(days=3650))
            .not_valid_after(self.now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(_ski(root_key), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        self.root = Issued(root, root_key)
        inter_key = ec_key("intermediate")
        inter = (
            x509.CertificateBuilder()
            .subject_name(
                subject("AC Teste Credencia v5", "Autoridade Certificadora Raiz de Teste")
            )
            .issuer_name(root_name)
            .public_key(inter_key.public_key())
            .serial_number(2)
            .not_valid_before(self.now - timedelta(days=1000))
            .not_valid_after(self.now + timedelta(days=2000))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(_ski(inter_key), critical=False)
            .add_extension(_aki(root_key), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        self.intermediate = Issued(inter, inter_key)
        self._serial = 1000

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        """What an installation trusting this PKI configures: the root (an anchor) and the
        intermediate (a known AC, as certifi-icpbr ships the real ones)."""
        return (self.root.cert, self.intermediate.cert)

    @property
    def anchors_pem(self) -> bytes:
        return self.root.pem + self.intermediate.pem

    # --- leaves ---------------------------------------------------------------------------

    def leaf(
        self,
        *,
        kind: str = "ecnpj",
        cnpj: str = CNPJ,
        cpf: str = CPF,
        name: str = "LABORATORIO EXEMPLO LTDA",
        responsible: str = "MARIA DA SILVA",
        encoding: str = "printable",
        layout: str = "full",
        san: bool = True,
        client_auth: bool = True,
        policy: str | None = A1_POLICY,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        issuer: str = "intermediate",
        key: str = "ec",
        key_name: str = "leaf",
        basic_constraints: bool = True,
    ) -> Issued:
        leaf_key = key_for(key, key_name)
        number = cnpj if kind == "ecnpj" else cpf
        self._serial += 1
        nb = not_before or self.now - timedelta(days=1)
        na = not_after or self.now + timedelta(days=365)
        subj = subject(f"{name}:{number}", "AC Teste Credencia v5", "RFB e-CNPJ A1", "TESTE")
        if issuer == "self":
            issuer_name, signer = subj, leaf_key
        elif issuer == "root":
            issuer_name, signer = self.root.cert.subject, self.root.key
        else:
            issuer_name, signer = self.intermediate.cert.subject, self.intermediate.key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subj)
            .issuer_name(issuer_name)
            .public_key(leaf_key.public_key())
            .serial_number(self._serial)
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(_key_usage(rsa_key=key == "rsa"), critical=True)
            .add_extension(_ski(leaf_key), critical=False)
        )
        if basic_constraints:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
        if issuer != "self":
            builder = builder.add_extension(_aki(signer), critical=False)
        usages = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
        if client_auth:
            usages.insert(0, ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if policy:
            builder = builder.add_extension(
                x509.CertificatePolicies(
                    [
                        x509.PolicyInformation(
                            x509.ObjectIdentifier(policy),
                            ["http://acteste.example/dpc/politica-a1.pdf"],
                        )
                    ]
                ),
                critical=False,
            )
        if san:
            if kind == "ecnpj":
                names = [
                    (RESPONSIBLE, person_data(cpf, layout=layout)),
                    (RESPONSIBLE_NAME, responsible),
                    (CNPJ_OID, cnpj),
                    (COMPANY_CEI, "0" * 12),
                ]
            else:
                names = [
                    (ECPF_HOLDER, person_data(cpf, layout=layout)),
                    (PERSON_CEI, "0" * 12),
                    (VOTER_ID, "0" * 19),
                ]
            general = [
                x509.OtherName(x509.ObjectIdentifier(oid), other_name_value(text, encoding))
                for oid, text in names
            ]
            general.append(x509.RFC822Name("ti@exemplo.gov.br"))
            builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        return Issued(cert, leaf_key)

    def ecnpj(self, **kw) -> Issued:
        return self.leaf(kind="ecnpj", **kw)

    def ecpf(self, **kw) -> Issued:
        return self.leaf(kind="ecpf", name="MARIA DA SILVA", **kw)

    def expired(self) -> Issued:
        return self.leaf(
            not_before=self.now - timedelta(days=400), not_after=self.now - timedelta(days=5)
        )

    def not_yet_valid(self) -> Issued:
        return self.leaf(
            not_before=self.now + timedelta(days=10), not_after=self.now + timedelta(days=375)
        )

    def self_signed(self) -> Issued:
        return self.leaf(issuer="self", key_name="self-signed")

    # --- containers -----------------------------------------------------------------------

    def pfx(
        self,
        issued: Issued,
        password: str | None = PASSWORD,
        *,
        chain: bool = True,
        legacy: bool = False,
        with_cert: bool = True,
    ) -> bytes:
        cas = [self.intermediate.cert, self.root.cert] if chain else None
        if password is None:
            encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        elif legacy:
            encryption = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(2048)
                .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                .hmac_hash(hashes.SHA1())  # noqa: S303 - old exporters do this
                .build(password.encode())
            )
        else:
            encryption = serialization.BestAvailableEncryption(password.encode())
        cert = issued.cert if with_cert else None
        return pkcs12.serialize_key_and_certificates(
            b"certificado", issued.key, cert, cas, encryption
        )

    def pfx_without_certificate(self, issued: Issued, password: str = PASSWORD) -> bytes:
        return self.pfx(issued, password, chain=False, with_cert=False)

    def pem_bundle(self, issued: Issued) -> bytes:
        return issued.pem + self.intermediate.pem + self.root.pem

    def p7b(self, issued: Issued) -> bytes:
        return pkcs7.serialize_certificates(
            [issued.cert, self.intermediate.cert], serialization.Encoding.DER
        )

    # --- non-DER files ----------------------------------------------------------------------

    def non_der_basic_constraints(self) -> bytes:
        """basicConstraints with an explicit ``cA BOOLEAN FALSE`` (a DEFAULT value, which DER
        forbids): ``cryptography`` loads the certificate but refuses its extensions."""
        leaf_key = ec_key("leaf")
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject(f"EMPRESA ANTIGA LTDA:{CNPJ}", "AC Teste Credencia v5"))
            .issuer_name(self.intermediate.cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(7001)
            .not_valid_before(self.now - timedelta(days=1))
            .not_valid_after(self.now + timedelta(days=365))
            .add_extension(
                x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x30\x03\x01\x01\x00"),
                critical=True,
            )
            .sign(self.intermediate.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)

    def non_der_ecnpj(self, *, issuer: str = "intermediate") -> bytes:
        """A good e-CNPJ whose basicConstraints spells out ``cA BOOLEAN FALSE`` (a DEFAULT
        value, which DER forbids), signed over those very bytes, as old AC software did."""
        good = self.ecnpj(key_name="non-der", issuer=issuer)
        tbs = parse_tree(good.cert.tbs_certificate_bytes)
        for tag, content in tbs[0][1]:
            if tag == 0xA3:  # [3] extensions
                for ext in content[0][1]:
                    if ext[1][0][1] == bytes.fromhex("551d13"):  # basicConstraints
                        ext[1][-1] = (0x04, bytes.fromhex("3003010100"))
        signer = self.root.key if issuer == "root" else self.intermediate.key
        return resign(encode_tree(tbs), signer)

    def non_der_unrepairable(self) -> bytes:
        """keyUsage whose value is an INTEGER: no re-encoding makes that a certificate."""
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject(f"QUEBRADO:{CNPJ}"))
            .issuer_name(self.intermediate.cert.subject)
            .public_key(ec_key("leaf").public_key())
            .serial_number(7002)
            .not_valid_before(self.now - timedelta(days=1))
            .not_valid_after(self.now + timedelta(days=30))
            .add_extension(
                x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x02\x01\x05"), critical=True
            )
            .sign(self.intermediate.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)

    def non_der_explicit_version(self) -> bytes:
        """A v3 certificate re-encoded with an explicit ``critical FALSE`` in one extension
        (DEFAULT again), re-signed so only the encoding is wrong: refused on load."""
        good = self.ecnpj()
        tbs = parse_tree(good.cert.tbs_certificate_bytes)
        body = tbs[0][1]
        for tag, content in body:
            if tag == 0xA3:  # [3] extensions
                for ext in content[0][1]:
                    parts = ext[1]
                    if len(parts) == 2:  # OID, OCTET STRING: no critical flag
                        parts.insert(1, (0x01, b"\x00"))
                        break
        return resign(encode_tree(tbs), self.intermediate.key)


# --- PKCS#12 written by hand ------------------------------------------------------------------
# cryptography will not put a certificate it refuses into a .pfx, and real exporters do: these
# helpers write one as OpenSSL does (RFC 7292), so the tests hold a file whose MAC verifies.

OID_DATA = "1.2.840.113549.1.7.1"
OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
OID_X509_CERT = "1.2.840.113549.1.9.22.1"
OID_LOCAL_KEY_ID = "1.2.840.113549.1.9.21"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_SHA1 = "1.3.14.3.2.26"
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"
OID_HMAC_SHA256 = "1.2.840.113549.2.9"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
OID_PBE_SHA1_3DES = "1.2.840.113549.1.12.1.3"
OID_PBE_SHA1_RC2_40 = "1.2.840.113549.1.12.1.6"
NULL = b"\x05\x00"


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, body)


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(n: int) -> bytes:
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def pkcs12_kdf(
    password: str, salt: bytes, purpose: int, iterations: int, size: int, name: str
) -> bytes:
    """RFC 7292, appendix B.2, over the password as a BMPString with its final NUL."""
    pw = password.encode("utf-16-be") + b"\x00\x00"
    u, v = hashlib.new(name).digest_size, hashlib.new(name).block_size

    def stretch(data: bytes) -> bytes:
        n = v * -(-len(data) // v)
        return (data * (n // len(data) + 1))[:n] if data else b""

    block = stretch(salt) + stretch(pw)
    out = b""
    while len(out) < size:
        a = hashlib.new(name, bytes([purpose]) * v + block).digest()
        for _ in range(iterations - 1):
            a = hashlib.new(name, a).digest()
        out += a
        b = int.from_bytes(stretch(a)[:v], "big") + 1
        block = b"".join(
            ((int.from_bytes(block[i : i + v], "big") + b) % (1 << (8 * v))).to_bytes(v, "big")
            for i in range(0, len(block), v)
        )
    del u
    return out[:size]


def _encrypt(plain: bytes, password: str, how: str) -> tuple[bytes, bytes]:
    """(AlgorithmIdentifier, ciphertext) of ``plain`` under ``password``."""
    salt, iterations = os.urandom(8), 2048
    if how == "rc2-40-unreadable":  # the algorithm old exporters used; content is noise
        alg_id = seq(oid(OID_PBE_SHA1_RC2_40), seq(tlv(0x04, salt), integer(iterations)))
        return alg_id, os.urandom(len(plain) // 8 * 8 + 8)
    if how == "3des":
        key = pkcs12_kdf(password, salt, 1, iterations, 24, "sha1")
        iv = pkcs12_kdf(password, salt, 2, iterations, 8, "sha1")
        algorithm: object = TripleDES(key)
        alg_id = seq(oid(OID_PBE_SHA1_3DES), seq(tlv(0x04, salt), integer(iterations)))
    else:
        iv = os.urandom(16)
        key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
        algorithm = algorithms.AES(key)
        kdf = seq(
            oid(OID_PBKDF2),
            seq(tlv(0x04, salt), integer(iterations), seq(oid(OID_HMAC_SHA256), NULL)),
        )
        alg_id = seq(oid(OID_PBES2), seq(kdf, seq(oid(OID_AES256_CBC), tlv(0x04, iv))))
    padder = padding.PKCS7(algorithm.block_size).padder()
    encryptor = Cipher(algorithm, modes.CBC(iv)).encryptor()
    padded = padder.update(plain) + padder.finalize()
    return alg_id, encryptor.update(padded) + encryptor.finalize()


def pfx_by_hand(
    cert_ders: list[bytes],
    key: object,
    password: str = PASSWORD,
    *,
    cert_encryption: str = "aes",
    mac_password: str | None = None,
) -> bytes:
    """A .pfx holding ``cert_ders`` as they are (byte for byte) and ``key``, with a SHA-256
    MAC; the certificates' safe encrypted with AES-256 (PBES2), 3DES (PKCS#12 PBE) or not."""
    local_id = tlv(0x31, seq(oid(OID_LOCAL_KEY_ID), tlv(0x31, tlv(0x04, b"\x01"))))
    shrouded = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    key_safe = seq(seq(oid(OID_SHROUDED_KEY_BAG), tlv(0xA0, shrouded), local_id))
    bags = [
        seq(
            oid(OID_CERT_BAG),
            tlv(0xA0, seq(oid(OID_X509_CERT), tlv(0xA0, tlv(0x04, der)))),
            *([local_id] if i == 0 else []),
        )
        for i, der in enumerate(cert_ders)
    ]
    cert_safe = seq(*bags)

    def data(content: bytes) -> bytes:
        return seq(oid(OID_DATA), tlv(0xA0, tlv(0x04, content)))

    if cert_encryption == "none":
        certs_info = data(cert_safe)
    else:
        alg_id, ciphertext = _encrypt(cert_safe, password, cert_encryption)
        encrypted = seq(integer(0), seq(oid(OID_DATA), alg_id, tlv(0x80, ciphertext)))
        certs_info = seq(oid(OID_ENCRYPTED_DATA), tlv(0xA0, encrypted))
    auth_safe = seq(certs_info, data(key_safe))
    salt, iterations = os.urandom(8), 2048
    mac_key = pkcs12_kdf(mac_password or password, salt, 3, iterations, 32, "sha256")
    digest = hmac.new(mac_key, auth_safe, "sha256").digest()
    mac = seq(
        seq(seq(oid(OID_SHA256), NULL), tlv(0x04, digest)), tlv(0x04, salt), integer(iterations)
    )
    return seq(integer(3), data(auth_safe), mac)


@functools.cache
def pki() -> TestPKI:
    """One PKI per test session (key generation and signing are the slow part)."""
    return TestPKI()


def _key_usage(*, cert_sign: bool = False, rsa_key: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,
        key_encipherment=rsa_key and not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
