"""The ICP-Brasil certificates this installation trusts: roots and known ACs (intermediates).

The project owns its trust bundle: ``engine/pki/data/icp-brasil.pem`` ships with the code
(taken from the last ``certifi-icpbr`` release, 2023). An administrator replaces it with the
bundle ITI publishes (a zip of every AC certificate) through
``credencia certificates update-roots FILE``: :func:`read_iti_zip` checks it and
:func:`install` writes it atomically to ``CREDENCIA_CERTIFICATE_ROOTS_FILE`` (by default
``instance/icp-brasil.pem``), which from then on overrides the shipped bundle in every
process (the store is re-read when that file changes).

A bundle is PEM with a few ``# key: value`` header lines (``date``, ``source``) that PEM
readers ignore.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from engine import settings
from engine.pki import asn1, fields

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parent / "data" / "icp-brasil.pem"
MAX_ZIP_ENTRIES = 2000
MAX_ENTRY_BYTES = 1024 * 1024
MAX_ZIP_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 8
CERT_LABELS = ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE")


class BundleError(ValueError):
    """A roots bundle that cannot be trusted; ``message`` says why, for the operator (pt-BR)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class TrustStore:
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    date: date | None  # when the bundle was published or installed (its ``# date:`` line)
    source: str  # "shipped" | "instance"
    path: Path

    @property
    def newest_root(self) -> x509.Certificate | None:
        return max(self.roots, key=lambda c: c.not_valid_before_utc, default=None)

    @property
    def newest(self) -> x509.Certificate | None:
        return max(
            self.roots + self.intermediates, key=lambda c: c.not_valid_before_utc, default=None
        )

    def summary(self) -> dict[str, object]:
        """What the CLI and the certificates page say about the roots (JSON-safe)."""
        root, newest = self.newest_root, self.newest
        return {
            "roots": len(self.roots),
            "intermediates": len(self.intermediates),
            "newest_root": fields.cn(root.subject) if root is not None else None,
            "newest_root_not_before": root.not_valid_before_utc.date().isoformat()
            if root
            else None,
            "newest_not_before": newest.not_valid_before_utc.date().isoformat() if newest else None,
            "date": self.date.isoformat() if self.date else None,
            "source": self.source,
            "path": str(self.path),
        }


def load_anchors(pem_or_der: bytes) -> tuple[x509.Certificate, ...]:
    """Trust anchors from a PEM bundle (or one DER certificate), e.g. a homologation root."""
    certs: list[x509.Certificate] = []
    for label, body in asn1.pem_blocks(pem_or_der):
        if label in CERT_LABELS:
            certs.append(_load(asn1.first_tlv(body)))
    if not certs and pem_or_der[:1] == b"\x30":
        certs.append(_load(pem_or_der))
    return tuple(certs)


def override_path() -> Path:
    return Path(settings.load().certificate_roots_file)


# --- the store in use ------------------------------------------------------------------------

_lock = threading.Lock()
_cache: dict[tuple[str, int, int], TrustStore] = {}


def store() -> TrustStore:
    """The bundle in use: the instance's when there is one, else the shipped one."""
    override = override_path()
    try:
        stat = override.stat()
    except OSError:
        return _read_cached(SHIPPED, "shipped")
    try:
        return _read_cached(override, "instance", stat)
    except Exception:
        # update-roots writes it atomically, so this is someone's hand edit: say so loudly and
        # keep recognizing certificates with the shipped roots.
        log.error("the roots bundle %s is unreadable; using the shipped one", override)
        return _read_cached(SHIPPED, "shipped")


def icp_brasil_store() -> tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]]:
    """(roots, intermediates) of the bundle in use."""
    current = store()
    return current.roots, current.intermediates


def _read_cached(path: Path, source: str, stat: os.stat_result | None = None) -> TrustStore:
    stat = stat or path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        found = _cache.get(key)
    if found is None:
        found = parse_bundle(path.read_bytes(), source=source, path=path)
        with _lock:
            _cache.clear()  # one bundle in use at a time; an old one is never needed again
            _cache[key] = found
    return found


def parse_bundle(data: bytes, *, source: str, path: Path) -> TrustStore:
    certs = load_anchors(data)
    if not certs:
        raise BundleError("o arquivo não traz certificados.")
    roots = tuple(c for c in certs if c.subject == c.issuer)
    intermediates = tuple(c for c in certs if c.subject != c.issuer)
    return TrustStore(roots, intermediates, _header_date(data), source, path)


def _header_date(data: bytes) -> date | None:
    for line in data[:4096].splitlines():
        if line.startswith(b"# date:"):
            try:
                return date.fromisoformat(line.split(b":", 1)[1].strip().decode("ascii"))
            except ValueError:
                return None
    return None


def _load(der: bytes) -> x509.Certificate:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some real ACs have non-positive serial numbers
        return x509.load_der_x509_certificate(der)


# --- a new bundle from ITI -----------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A checked set of certificates, ready to be installed."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    new_roots: tuple[x509.Certificate, ...]  # not trusted before this bundle
    dropped_roots: tuple[x509.Certificate, ...]  # trusted before, absent from this bundle


def read_iti_zip(data: bytes, *, current: TrustStore | None = None) -> Bundle:
    """Check the zip of AC certificates ITI publishes; raise :class:`BundleError` naming the
    first entry that is not a certificate, not a CA, or does not chain to a root.

    Every certificate must be a CA; a self-signed one must be an ICP-Brasil root
    (O=ICP-Brasil), every other one must chain, by signature, to a root of the zip or to a
    root trusted now (``current``, by default the store in use).
    """
    current = current or store()
    certs = _zip_certificates(data)
    roots: dict[str, x509.Certificate] = {}
    others: dict[str, tuple[str, x509.Certificate]] = {}
    for name, cert in certs:
        who = fields.cn(cert.subject) or cert.subject.rfc4514_string()
        if not fields.is_ca_cert(cert):
            raise BundleError(
                f"“{name}” ({who}) não é certificado de autoridade certificadora; o pacote "
                "deve trazer só as raízes e as ACs da ICP-Brasil."
            )
        if cert.subject == cert.issuer and fields.signed_by(cert, cert):
            orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
            if "ICP-Brasil" not in orgs:
                raise BundleError(f"“{name}” ({who}) é uma raiz que não é da ICP-Brasil.")
            roots[fields.fingerprint(cert)] = cert
        else:
            others[fields.fingerprint(cert)] = (name, cert)
    anchors = dict(roots)
    for cert in current.roots:
        anchors.setdefault(fields.fingerprint(cert), cert)
    pool = [cert for _name, cert in others.values()] + list(anchors.values())
    used: set[str] = set()
    for name, cert in others.values():
        root = _root_of(cert, pool, anchors)
        if root is None:
            who = fields.cn(cert.subject) or cert.subject.rfc4514_string()
            raise BundleError(
                f"“{name}” ({who}) não se liga, por assinatura, a nenhuma raiz da ICP-Brasil "
                "(nem do pacote nem das já confiáveis)."
            )
        used.add(root)
    # Roots trusted now that the zip's ACs still chain to stay, so the bundle is complete.
    for fp in used - set(roots):
        roots[fp] = anchors[fp]
    if not roots:
        raise BundleError("O pacote não traz nenhuma raiz da ICP-Brasil.")
    before = {fields.fingerprint(c) for c in current.roots}
    return Bundle(
        roots=tuple(roots.values()),
        intermediates=tuple(cert for _name, cert in others.values()),
        new_roots=tuple(c for fp, c in roots.items() if fp not in before),
        dropped_roots=tuple(c for c in current.roots if fields.fingerprint(c) not in roots),
    )


def _zip_certificates(data: bytes) -> list[tuple[str, x509.Certificate]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BundleError(
            "O arquivo não é um .zip; envie o pacote de certificados das ACs publicado pelo ITI."
        ) from None
    if not entries:
        raise BundleError("O .zip está vazio.")
    if len(entries) > MAX_ZIP_ENTRIES or sum(i.file_size for i in entries) > MAX_ZIP_BYTES:
        raise BundleError("O .zip é grande demais para ser o pacote de certificados do ITI.")
    out: list[tuple[str, x509.Certificate]] = []
    for info in entries:
        name = info.filename
        if info.file_size > MAX_ENTRY_BYTES:
            raise BundleError(f"“{name}” é grande demais para ser um certificado.")
        try:
            with archive.open(info) as fh:
                raw = fh.read(MAX_ENTRY_BYTES + 1)
        except Exception:
            raise BundleError(f"Não foi possível extrair “{name}” do .zip.") from None
        if len(raw) > MAX_ENTRY_BYTES:
            raise BundleError(f"“{name}” é grande demais para ser um certificado.")
        try:
            certs = load_anchors(asn1.strip_bom(raw))
        except Exception:
            certs = ()
        if not certs:
            raise BundleError(f"“{name}” não é um certificado (DER ou PEM).")
        out.extend((name, cert) for cert in certs)
    return out


def _root_of(
    cert: x509.Certificate, pool: list[x509.Certificate], anchors: dict[str, x509.Certificate]
) -> str | None:
    """The fingerprint of the anchor ``cert`` chains to by signatures (CA issuers only)."""
    current = cert
    for _ in range(MAX_DEPTH):
        issuers = [
            c
            for c in pool
            if c.subject == current.issuer and c is not current and fields.signed_by(current, c)
        ]
        if not issuers:
            return None
        for issuer in issuers:
            fp = fields.fingerprint(issuer)
            if fp in anchors:
                return fp
        current = issuers[0]
    return None


def bundle_text(
    roots: tuple[x509.Certificate, ...] | list[x509.Certificate],
    intermediates: tuple[x509.Certificate, ...] | list[x509.Certificate],
    *,
    when: date,
    source: str,
) -> bytes:
    """A bundle file: header lines, then each certificate in PEM under a comment with its name."""
    lines = [
        "# Credencia: ICP-Brasil trust bundle (roots, then ACs)",
        f"# date: {when.isoformat()}",
        f"# source: {' '.join(source.split())}",
        "",
    ]
    for cert in list(roots) + list(intermediates):
        lines.append(f"# {' '.join(cert.subject.rfc4514_string().split())}")
        lines.append(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return "\n".join(lines).encode("utf-8")


def install(
    bundle: Bundle, *, source: str, path: Path | None = None, when: date | None = None
) -> TrustStore:
    """Write ``bundle`` atomically where it overrides the shipped one; the store in use."""
    target = path or override_path()
    text = bundle_text(
        bundle.roots,
        bundle.intermediates,
        when=when or datetime.now(UTC).date(),
        source=source,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".roots-", suffix=".pem", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # noqa: S103 - public certificates
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return parse_bundle(text, source="instance", path=target)
