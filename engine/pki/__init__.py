"""Certificate knowledge, pure: reading and judging a certificate file a user uploads, and the
ICP-Brasil certificates this installation trusts. No database: ``engine.certificates`` keeps
each establishment's certificate, ``engine.files`` stores uploads; both call this package.

:func:`inspect` accepts whatever a user may have — a .cer/.crt in DER or PEM (also bare
base64), a PEM bundle, a .p7b, a .pfx/.p12 with its password — judges the kind by content,
never by name, and returns a :class:`CertificateReport`: what the certificate says (subject,
validity, usages, ICP-Brasil fields), whether it chains to an ICP-Brasil root, and a
suitability checklist for the user. Only public material leaves this package: the report
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

Modules, in reading order: ``reading`` (the file: DER, PEM, PKCS#7, PKCS#12) with ``asn1``
(just enough BER to tell kinds apart) and ``lenient`` (certificates that are not strict
DER), ``fields`` (what a certificate says), ``chain`` (the path to a trusted root),
``trust`` (the roots bundle), ``judge`` (the report, its checklist and the policy),
``report`` (the result types), ``dates``.
"""

from engine.pki.fields import decode_other_name, fingerprint, person_fields, sha256_hex
from engine.pki.judge import (
    EXPIRY_WARNING_DAYS,
    check_usable,
    inspect,
    problems_of,
    validity_item,
)
from engine.pki.reading import (
    MAX_BYTES,
    looks_like_certificate_file,
    parse_file,
    public_der_from_upload,
)
from engine.pki.report import (
    MESSAGES,
    CertificateError,
    CertificateReport,
    ChainResult,
    CheckItem,
    Problem,
)
from engine.pki.trust import BundleError, TrustStore, icp_brasil_store, load_anchors

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "MAX_BYTES",
    "MESSAGES",
    "BundleError",
    "CertificateError",
    "CertificateReport",
    "ChainResult",
    "CheckItem",
    "Problem",
    "TrustStore",
    "check_usable",
    "decode_other_name",
    "fingerprint",
    "icp_brasil_store",
    "inspect",
    "load_anchors",
    "looks_like_certificate_file",
    "person_fields",
    "problems_of",
    "parse_file",
    "public_der_from_upload",
    "sha256_hex",
    "validity_item",
]
