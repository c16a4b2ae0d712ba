"""Whether a certificate chains to an ICP-Brasil root, and in words why not.

The verifier of ``cryptography`` (45 or later: ``ExtensionPolicy``) builds the path from the
leaf through the ACs in the file and the known ICP-Brasil ACs to a trusted root; when it
fails, :func:`explain` walks the likeliest path to say where it breaks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.x509 import verification

from engine.pki import dates, fields, lenient, trust
from engine.pki.report import ChainResult

log = logging.getLogger(__name__)

MAX_CHAIN_DEPTH = 8


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


def verify_chain(
    leaf: x509.Certificate,
    in_file: list[x509.Certificate],
    extra_anchors: tuple[x509.Certificate, ...],
    now: datetime,
    *,
    original: bytes | None = None,
) -> ChainResult:
    """The path from ``leaf`` to a trusted root. ``original``: the leaf's bytes in the file
    when ``leaf`` is their re-encoding (``engine.pki.lenient``), which its issuer signed."""
    try:
        return _verify_chain_inner(leaf, in_file, extra_anchors, now, original)
    except Exception as exc:  # a verifier surprise must not hide the rest of the report
        log.warning("certificate chain check failed unexpectedly: %s", type(exc).__name__)
        return ChainResult(False, "Não foi possível verificar a cadeia do certificado.")


class _Known:
    """The certificates a chain may pass through, in the order they are tried: the roots
    (ICP-Brasil's, then the configured ones), the file's other certificates, the configured
    intermediates, ICP-Brasil's intermediates. The bundle's part is indexed once per bundle
    (``_bundle_index``): a check looks up the few names on the leaf's way up instead of
    hashing every known AC's name, and hands the verifier only the ACs a path can use."""

    def __init__(
        self,
        bundle: _BundleIndex,
        extra_roots: list[x509.Certificate],
        own: list[x509.Certificate],
    ) -> None:
        self.bundle = bundle
        self.extra_roots = extra_roots
        self.own = own  # the file's certificates that are not roots, the configured intermediates

    def with_subject(self, name: x509.Name) -> list[x509.Certificate]:
        """The known certificates whose subject is ``name``, in the order above."""
        return [
            *self.bundle.roots_by_subject.get(name, ()),
            *(c for c in self.extra_roots if c.subject == name),
            *(c for c in self.own if c.subject == name),
            *self.bundle.intermediates_by_subject.get(name, ()),
        ]

    def reachable_pool(self, leaf: x509.Certificate) -> list[x509.Certificate]:
        """The non-root certificates a path from ``leaf`` can pass through: those whose subject
        is, transitively, the issuer of the leaf or of another of them. Names are compared
        loosely here (case and spaces ignored, an RDN's attributes in any order), so that the
        verifier, however it compares them, is never denied an AC it could use; it only
        skips the hundreds it could not."""
        own: dict[Any, list[x509.Certificate]] = {}
        for cert in self.own:
            own.setdefault(_loose(cert.subject), []).append(cert)
        indexed = self.bundle.intermediates_by_loose
        wanted, seen, found = [_loose(leaf.issuer)], set(), set()
        while wanted:
            key = wanted.pop()
            if key in seen:
                continue
            seen.add(key)
            for cert in [*own.get(key, ()), *indexed.get(key, ())]:
                if id(cert) not in found:
                    found.add(id(cert))
                    wanted.append(_loose(cert.issuer))
        if not found:
            return []
        return [c for c in self.own + self.bundle.intermediates if id(c) in found]


def _loose(name: x509.Name) -> tuple[frozenset[tuple[str, str]], ...]:
    return tuple(
        frozenset((a.oid.dotted_string, " ".join(str(a.value).casefold().split())) for a in rdn)
        for rdn in name.rdns
    )


class _BundleIndex:
    """One roots bundle, indexed: its roots' fingerprints, and its ACs by subject."""

    def __init__(self, store: trust.TrustStore) -> None:
        self.store = store
        self.roots = list(store.roots)
        self.intermediates = list(store.intermediates)
        self.anchors = {fields.fingerprint(c): "icp_brasil" for c in store.roots}
        self.roots_by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in store.roots:
            self.roots_by_subject.setdefault(cert.subject, []).append(cert)
        self.intermediates_by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        self.intermediates_by_loose: dict[Any, list[x509.Certificate]] = {}
        for cert in store.intermediates:
            self.intermediates_by_subject.setdefault(cert.subject, []).append(cert)
            self.intermediates_by_loose.setdefault(_loose(cert.subject), []).append(cert)


_index: list[_BundleIndex] = []  # the bundle in use's (one at a time, as ``trust`` keeps)


def _bundle_index() -> _BundleIndex:
    current = trust.store()
    found = _index[0] if _index else None
    if found is None or found.store is not current:
        found = _BundleIndex(current)
        _index[:] = [found]
    return found


def _verify_chain_inner(
    leaf: x509.Certificate,
    in_file: list[x509.Certificate],
    extra_anchors: tuple[x509.Certificate, ...],
    now: datetime,
    original: bytes | None,
) -> ChainResult:
    bundle = _bundle_index()
    # Configured certificates: the self-signed ones are roots, the others known intermediates.
    extra_roots = [c for c in extra_anchors if c.subject == c.issuer]
    extra_intermediates = [c for c in extra_anchors if c.subject != c.issuer]
    anchors = dict(bundle.anchors)
    for cert in extra_roots:
        anchors.setdefault(fields.fingerprint(cert), "configured")
    anchor_certs = bundle.roots + extra_roots
    own = [c for c in in_file if fields.fingerprint(c) not in anchors] + extra_intermediates
    known = _Known(bundle, extra_roots, own)
    pool = known.reachable_pool(leaf)
    # Judge the chain at a moment inside the leaf's validity, so that an expired certificate
    # is reported as expired rather than as "not ICP-Brasil".
    moment = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)

    def signed(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        if original is not None and cert is leaf:
            return lenient.signature_ok(original, leaf, issuer)
        return fields.signed_by(cert, issuer)

    if not anchor_certs:
        detail = "nenhuma raiz ICP-Brasil disponível"
    elif original is not None:
        found, detail = _repaired_path(leaf, pool, anchors, anchor_certs, moment, signed)
        if found:
            return _trusted(found, anchors, original)
    else:
        try:
            verified = _verifier(anchor_certs, moment).verify(leaf, pool)
        except verification.VerificationError as exc:
            detail = str(exc)
        else:
            return _trusted(list(verified.chain), anchors, None)
    reason, path = explain(leaf, known, anchors, moment, signed=signed)
    return ChainResult(False, reason, None, None, _path(path, original), detail)


def _verifier(anchor_certs: list[x509.Certificate], moment: datetime) -> Any:
    ca_policy, ee_policy = _policies_for_verifier()
    return (
        verification.PolicyBuilder()
        .store(verification.Store(anchor_certs))
        .time(moment)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )


def _trusted(
    chain: list[x509.Certificate], anchors: dict[str, str], original: bytes | None
) -> ChainResult:
    root = chain[-1]
    source = anchors.get(fields.fingerprint(root), "configured")
    root_name = fields.cn(root.subject) or root.subject.rfc4514_string()
    if source == "icp_brasil":
        reason = f"Emitido sob a ICP-Brasil: a cadeia chega à raiz “{root_name}”."
    else:
        reason = (
            f"A cadeia chega à raiz configurada “{root_name}” (aceita como ICP-Brasil "
            "por configuração desta instalação)."
        )
    path = _path(chain, original)
    return ChainResult(True, reason, root.subject.rfc4514_string(), source, path, "")


def _repaired_path(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    anchors: dict[str, str],
    anchor_certs: list[x509.Certificate],
    moment: datetime,
    signed: Callable[[x509.Certificate, x509.Certificate], bool],
) -> tuple[list[x509.Certificate] | None, str]:
    """The verifier cannot check a leaf whose signed bytes are not its DER: the leaf's
    signature is checked here over the file's bytes, and its issuer's own path (a CA, valid
    at ``moment``) by the verifier; path-length limits are checked over the whole path."""
    detail = "a assinatura do certificado não confere com nenhuma AC conhecida"
    for issuer in [c for c in anchor_certs + pool if c.subject == leaf.issuer]:
        if not fields.is_ca_cert(issuer) or not signed(leaf, issuer):
            continue
        if fields.fingerprint(issuer) in anchors:
            if not issuer.not_valid_before_utc <= moment <= issuer.not_valid_after_utc:
                detail = "a raiz emissora não estava válida"
                continue
            upper = [issuer]
        else:
            others = [c for c in pool if c is not issuer]
            try:
                upper = list(_verifier(anchor_certs, moment).verify(issuer, others).chain)
            except verification.VerificationError as exc:
                detail = str(exc)
                continue
        chain = [leaf, *upper]
        if _path_lengths_ok(chain):
            return chain, ""
        detail = "a cadeia excede o limite de ACs intermediárias (pathLenConstraint)"
    return None, detail


def _path_lengths_ok(chain: list[x509.Certificate]) -> bool:
    for position, ca in enumerate(chain[1:], start=1):
        try:
            limit = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        except Exception:
            limit = None
        if limit is not None and limit < position - 1:  # intermediates below this CA
            return False
    return True


def explain(
    leaf: x509.Certificate,
    known: _Known,
    anchors: dict[str, str],
    moment: datetime,
    *,
    signed: Callable[[x509.Certificate, x509.Certificate], bool] = fields.signed_by,
) -> tuple[str, list[x509.Certificate]]:
    """Why the leaf does not chain to a trusted root, in words (walks the likeliest path)."""
    if leaf.subject == leaf.issuer and signed(leaf, leaf):
        return "o certificado é autoassinado (não foi emitido por uma autoridade certificadora).", [
            leaf
        ]
    path = [leaf]
    current = leaf
    seen = {fields.fingerprint(leaf)}
    for _ in range(MAX_CHAIN_DEPTH):
        name = fields.cn(current.issuer) or current.issuer.rfc4514_string()
        candidates = [c for c in known.with_subject(current.issuer) if c is not current]
        if not candidates:
            if current is leaf:
                return (
                    f"a autoridade emissora “{name}” não é uma AC conhecida da ICP-Brasil e não "
                    "veio no arquivo.",
                    path,
                )
            return (
                f"a cadeia para em “{fields.cn(current.subject)}”, emitida por “{name}”, que não é "
                "uma AC conhecida da ICP-Brasil.",
                path,
            )
        signer = next((c for c in candidates if signed(current, c)), None)
        if signer is None:
            return f"a assinatura da AC “{name}” não confere.", path
        path.append(signer)
        signer_name = fields.cn(signer.subject) or signer.subject.rfc4514_string()
        if not (signer.not_valid_before_utc <= moment <= signer.not_valid_after_utc):
            return (
                f"a AC “{signer_name}” não estava válida (vigência até "
                f"{dates.br_date(signer.not_valid_after_utc)}).",
                path,
            )
        if fields.fingerprint(signer) in anchors:
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
        if fields.fingerprint(signer) in seen:
            break
        seen.add(fields.fingerprint(signer))
        current = signer
    return "a cadeia de certificação é longa demais ou circular.", path


def _path(chain: Sequence[x509.Certificate], original: bytes | None) -> list[dict[str, str]]:
    out = [
        {
            "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(),
            "not_after": dates.iso(c.not_valid_after_utc),
            "sha256": fields.fingerprint(c),
        }
        for c in chain
    ]
    if original is not None and out:
        out[0]["sha256"] = fields.sha256_hex(original)  # the leaf as stored
    return out
