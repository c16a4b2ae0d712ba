"""Registering an establishment's certificate, its history and its status.

``register`` is the one way a certificate file enters the system: it inspects the upload
(with the .pfx password, when there is one), refuses an unusable certificate with a message
at the form field, keeps only the public certificate (a new ``stored_file`` of kind
``certificate``), and makes it the establishment's current certificate; the previous one
becomes history. The password and the private key are never stored, logged or audited.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, undefer

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.certificates.models import Certificate
from engine.db import hold, insert_now, transaction_memo, utcnow
from engine.errors import Invalid, NotFound
from engine.establishments.models import Establishment
from engine.files.models import StoredFile
from engine.pki import (
    EXPIRY_WARNING_DAYS,
    CertificateError,
    CertificateReport,
    check_usable,
    inspect,
    load_anchors,
    validity_item,
)

FIELD = "certificado"
EXCEPTION_FIELD = "cnpj_exception_reason"
MAX_REASON = 1000


class CertificateRejected(Invalid):
    """An uploaded certificate that cannot be used; ``code`` as in ``CertificateError``."""

    def __init__(self, code: str, message: str, field: str = FIELD):
        super().__init__({field: message}, message)
        self.code = code


@dataclass(frozen=True)
class CertificatePolicy:
    """What this installation accepts. Production: ICP-Brasil only, no extra anchors.

    Homologation/demo installations may add their test PKI (``extra_anchors``, a PEM file
    in ``CREDENCIA_CERTIFICATE_EXTRA_ANCHORS``) or, for demos only, accept any chain.
    """

    require_icp_brasil: bool = True
    extra_anchors: tuple[x509.Certificate, ...] = ()
    warning_days: int = EXPIRY_WARNING_DAYS

    @classmethod
    def from_settings(cls, settings: Any) -> CertificatePolicy:
        """From a ``CertificatePolicy`` or anything with the optional settings attributes
        ``certificate_require_icp_brasil`` and ``certificate_extra_anchors`` (a path)."""
        if isinstance(settings, CertificatePolicy):
            return settings
        if settings is None:
            return cls()
        require = getattr(settings, "certificate_require_icp_brasil", True)
        anchors: tuple[x509.Certificate, ...] = ()
        path = getattr(settings, "certificate_extra_anchors", None)
        if path:
            anchors = _anchors_from_file(str(path))
        return cls(require_icp_brasil=bool(require), extra_anchors=anchors)


_anchor_cache: dict[tuple[str, float], tuple[x509.Certificate, ...]] = {}


def _anchors_from_file(path: str) -> tuple[x509.Certificate, ...]:
    p = Path(path)
    key = (str(p), p.stat().st_mtime)
    if key not in _anchor_cache:
        _anchor_cache[key] = load_anchors(p.read_bytes())
    return _anchor_cache[key]


# --- reading -----------------------------------------------------------------------------


def current(session: Session, establishment_id: int) -> Certificate | None:
    return session.scalar(
        select(Certificate).where(
            Certificate.establishment_id == establishment_id, Certificate.is_current.is_(True)
        )
    )


def by_fingerprint(session: Session, org_id: int, sha256: str) -> Certificate | None:
    """The organization's newest certificate with this SHA-256, read once per transaction
    (what a credential takes of it, its CNPJ and validity, is the certificate's own and
    never changes; a certificate registered in the transaction is found without a read)."""
    memo = transaction_memo(session).setdefault("certificates", {})
    key = (org_id, sha256)
    if key not in memo:
        memo[key] = session.scalar(
            select(Certificate)
            .where(Certificate.org_id == org_id, Certificate.sha256 == sha256)
            .order_by(Certificate.id.desc())
            .limit(1)
        )
    return memo[key]


def current_fingerprint(session: Session, establishment_id: int) -> str | None:
    """The SHA-256 of the establishment's current certificate, read once per transaction
    (a registration in the transaction, the only change of the current one, updates it)."""
    memo = transaction_memo(session).setdefault("current", {})
    if establishment_id not in memo:
        cert = current(session, establishment_id)
        memo[establishment_id] = cert.sha256 if cert is not None else None
    return memo[establishment_id]


def _remember(session: Session, cert: Certificate) -> Certificate:
    """A certificate just made current: what the transaction asks of it next needs no read."""
    memo = transaction_memo(session)
    memo.setdefault("certificates", {})[(cert.org_id, cert.sha256)] = cert
    memo.setdefault("current", {})[cert.establishment_id] = cert.sha256
    return cert


def history(
    session: Session, establishment_id: int, *, include_current: bool = False
) -> list[Certificate]:
    """Previous certificates, newest first (and the current one first when asked)."""
    stmt = select(Certificate).where(Certificate.establishment_id == establishment_id)
    if not include_current:
        stmt = stmt.where(Certificate.is_current.is_(False))
    stmt = stmt.order_by(
        Certificate.is_current.desc(), Certificate.created_at.desc(), Certificate.id.desc()
    )
    return list(session.scalars(stmt))


def days_left(cert: Certificate, now: datetime | None = None) -> int:
    return (cert.not_after - (now or utcnow())) // timedelta(days=1)


def status(
    cert: Certificate, now: datetime | None = None, *, warning_days: int = EXPIRY_WARNING_DAYS
) -> str:
    """válido / vence em N dias / vencido (and "ainda não válido" before its start)."""
    now = now or utcnow()
    if now > cert.not_after:
        return "vencido"
    if now < cert.not_before:
        return "ainda não válido"
    left = days_left(cert, now)
    if left <= warning_days:
        if left == 0:
            return "vence hoje"
        return f"vence em {left} dia{'s' if left != 1 else ''}"
    return "válido"


def is_valid(cert: Certificate | None, now: datetime | None = None) -> bool:
    return cert is not None and cert.is_valid_at(now or utcnow())


def has_valid_certificate(
    session: Session, establishment: Establishment | int, now: datetime | None = None
) -> bool:
    """Whether the establishment's current certificate is within its validity now."""
    est_id = establishment if isinstance(establishment, int) else establishment.id
    return is_valid(current(session, est_id), now)


def checklist(cert: Certificate, now: datetime | None = None) -> list[dict[str, Any]]:
    """The suitability checklist stored at registration, with validity brought up to date."""
    items = list((cert.details or {}).get("checklist", []))
    fresh = validity_item(cert.not_before, cert.not_after, now or utcnow())
    return [fresh if item.get("item") == "validity" else item for item in items]


def describe(cert: Certificate, now: datetime | None = None) -> dict[str, Any]:
    """What pages and the API show about one certificate (JSON-safe, public data only)."""
    now = now or utcnow()
    details = cert.details or {}
    return {
        "id": cert.id,
        "establishment_id": cert.establishment_id,
        "file_id": cert.file_id,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "issuer_cn": details.get("issuer_cn"),
        "serial": cert.serial,
        "sha256": cert.sha256,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "days_left": days_left(cert, now),
        "status": status(cert, now),
        "type": cert.cert_type,
        "cnpj": cert.cnpj,
        "cpf_responsavel": cert.cpf_responsavel,
        "responsible_name": details.get("responsible_name"),
        "icp_brasil": cert.icp_brasil,
        "icp_brasil_reason": (details.get("chain") or {}).get("reason_pt"),
        "client_auth": cert.client_auth,
        "cnpj_exception_reason": cert.cnpj_exception_reason,
        "is_current": cert.is_current,
        "created_at": cert.created_at.isoformat() if cert.created_at else None,
        "replaced_at": cert.replaced_at.isoformat() if cert.replaced_at else None,
        "checklist": checklist(cert, now),
    }


# --- registering -------------------------------------------------------------------------


def _establishment_for_update(session: Session, establishment_id: int) -> Establishment:
    if session.get_bind().dialect.name == "postgresql":
        # Serializes registrations for one establishment (SQLite writers already are).
        stmt = select(Establishment).where(Establishment.id == establishment_id)
        est = session.scalar(stmt.with_for_update())
    else:  # (a completion's form may have read it already: then no statement)
        est = session.get(Establishment, establishment_id)
    if est is None:
        raise NotFound("Estabelecimento não encontrado.")
    return hold(session, est)


def _establishment_to_register(
    session: Session, actor: Actor, establishment_id: int, *, authorized: bool = False
) -> Establishment:
    """The establishment, locked, once the actor may register its certificate (admin, or
    gestor of this establishment); ``authorized``: the caller already checked."""
    est = _establishment_for_update(session, establishment_id)
    may = actor.has_role(est.org_id, "admin") or actor.has_role(est.org_id, "gestor", est.id)
    if not (authorized or may):
        raise actor.deny(
            "Só o administrador ou o gestor do estabelecimento registra o certificado.",
            action="certificate.register",
            org_id=est.org_id,
            entity_type="establishment",
            entity_id=est.id,
        )
    return est


def inspect_for(
    est: Establishment,
    data: bytes,
    password: str | bytes | None,
    *,
    cnpj_exception_reason: str | None = None,
    settings: Any = None,
    now: datetime | None = None,
) -> CertificateReport:
    """Inspect and judge an upload for this establishment (no database, no permission
    check: the page uses it to show the checklist before saving). Raises CertificateRejected.
    """
    policy = CertificatePolicy.from_settings(settings)
    reason = _clean_reason(cnpj_exception_reason)
    try:
        report = inspect(
            data,
            password,
            expected_cnpj=est.cnpj,
            cnpj_exception=bool(reason),
            now=now,
            extra_anchors=policy.extra_anchors,
        )
        check_usable(
            report,
            allow_cnpj_exception=bool(reason),
            require_icp_brasil=policy.require_icp_brasil,
        )
    except CertificateError as exc:
        raise CertificateRejected(exc.code, exc.message) from None
    return report


def _clean_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise Invalid({EXCEPTION_FIELD: f"No máximo {MAX_REASON} caracteres."})
    return reason or None


def register(
    session: Session,
    actor: Actor,
    establishment_id: int,
    data: bytes,
    password: str | bytes | None = None,
    *,
    filename: str = "certificado.cer",
    cnpj_exception_reason: str | None = None,
    settings: Any = None,
    now: datetime | None = None,
) -> Certificate:
    """Make the uploaded certificate the establishment's current one (admin, or gestor of
    this establishment). Registering the current certificate again changes nothing;
    registering a previous one makes it current again."""
    est = _establishment_to_register(session, actor, establishment_id)
    report = inspect_for(
        est,
        data,
        password,
        cnpj_exception_reason=cnpj_exception_reason,
        settings=settings,
        now=now,
    )
    reason = _clean_reason(cnpj_exception_reason) if report.cnpj != est.cnpj else None
    return _record(session, actor, est, report, filename=filename, reason=reason, now=now)


@dataclass(frozen=True)
class StoredUpload:
    """What registering a certificate from a stored file needs of the file."""

    id: str
    filename: str
    content: bytes
    establishment_id: int | None


def register_stored(
    session: Session,
    actor: Actor,
    establishment_id: int,
    file_id: str,
    *,
    cnpj_exception_reason: str | None = None,
    settings: Any = None,
    now: datetime | None = None,
    authorized: bool = False,
    must_outlast_current: bool = False,
    stored: StoredUpload | None = None,
) -> Certificate:
    """Register a certificate already uploaded as a stored file (public part only: the
    upload converts a .pfx before storing it, see ``public_der_from_upload``).

    ``authorized``: the caller already checked the actor may do this (a task's lane).
    ``must_outlast_current``: a renewal, whose certificate must expire after the current one.
    ``stored``: the file, when the caller already read it in this transaction (a task's
    completion reads the files its form names with the task).
    """
    est = _establishment_to_register(session, actor, establishment_id, authorized=authorized)
    row = stored if stored is not None and stored.id == str(file_id) else None
    if row is None:
        found = session.scalar(
            select(StoredFile)
            .where(StoredFile.id == str(file_id), StoredFile.org_id == est.org_id)
            .options(undefer(StoredFile.content))
        )
        if found is None:
            raise Invalid({FIELD: "Arquivo do certificado não encontrado."})
        hold(session, found)  # (``_record`` gives it the establishment through ``session.get``)
        row = StoredUpload(found.id, found.filename, found.content, found.establishment_id)
    report = inspect_for(
        est,
        row.content,
        None,
        cnpj_exception_reason=cnpj_exception_reason,
        settings=settings,
        now=now,
    )
    reason = _clean_reason(cnpj_exception_reason) if report.cnpj != est.cnpj else None
    if must_outlast_current:
        previous = current(session, est.id)
        if previous is not None and report.not_after <= previous.not_after:
            raise CertificateRejected(
                "not_later",
                "O novo certificado vence antes (ou no mesmo dia) que o atual; envie o certificado renovado.",
            )
    return _record(
        session, actor, est, report, filename=row.filename, reason=reason, now=now, stored=row
    )


def _record(
    session: Session,
    actor: Actor,
    est: Establishment,
    report: CertificateReport,
    *,
    filename: str,
    reason: str | None,
    now: datetime | None,
    stored: StoredUpload | None = None,
) -> Certificate:
    moment = now or utcnow()
    # The same certificate registered before, and the current one: one read for both.
    existing = previous = None
    for row in session.scalars(
        select(Certificate).where(
            Certificate.establishment_id == est.id,
            or_(Certificate.sha256 == report.sha256, Certificate.is_current.is_(True)),
        )
    ):
        if row.sha256 == report.sha256:
            existing = row
        if row.is_current:
            previous = row
    if existing is not None and existing.is_current:
        return _remember(session, existing)
    if previous is not None:
        # Flushed before the new row so the one-current-per-establishment index holds.
        previous.is_current, previous.replaced_at = False, moment
        session.flush()
    if existing is not None:
        existing.is_current, existing.replaced_at = True, None
        existing.cnpj_exception_reason = reason
        cert = existing
    else:
        file_row: StoredFile | StoredUpload | None = None
        if stored is not None and stored.content == report.der:
            file_row = stored
            if stored.establishment_id != est.id:  # (a task's completion attached it already)
                found = session.get(StoredFile, stored.id)
                assert found is not None
                found.establishment_id = est.id
        if file_row is None:
            file_row = _store_public(session, actor, est, report, filename)
        details = report.to_dict()
        cert = Certificate(
            org_id=est.org_id,
            establishment_id=est.id,
            file_id=file_row.id,
            subject=report.subject,
            issuer=report.issuer,
            serial=report.serial,
            sha256=report.sha256,
            not_before=report.not_before,
            not_after=report.not_after,
            cnpj=report.cnpj,
            cpf_responsavel=report.cpf_responsavel,
            cert_type=report.type,
            icp_brasil=report.icp_brasil,
            client_auth=report.client_auth,
            cnpj_exception_reason=reason,
            is_current=True,
            details=details,
            created_at=moment,
            created_by_id=actor.user_id,
        )
        insert_now(session, cert)
    session.flush()
    audit.record(
        session,
        actor,
        "certificate.registered",
        org_id=est.org_id,
        entity_type="certificate",
        entity_id=cert.id,
        data={
            "establishment_id": est.id,
            "cnes": est.cnes,
            "sha256": report.sha256,
            "subject": report.subject,
            "issuer": report.issuer,
            "serial": report.serial,
            "not_before": report.not_before.isoformat(),
            "not_after": report.not_after.isoformat(),
            "type": report.type,
            "icp_brasil": report.icp_brasil,
            "uploaded_as": report.file_kind,
            "cnpj_exception_reason": reason,
            "replaced_id": previous.id if previous is not None else None,
            "reactivated": existing is not None,
        },
    )
    return _remember(session, cert)


def _store_public(
    session: Session, actor: Actor, est: Establishment, report: CertificateReport, filename: str
) -> StoredFile:
    stem = Path(filename or "certificado").stem or "certificado"
    safe = "".join(ch for ch in stem if ch.isprintable() and ch not in "/\\")[:200] or "certificado"
    row = StoredFile(
        id=str(uuid.uuid4()),
        org_id=est.org_id,
        uploaded_by_id=actor.user_id,
        establishment_id=est.id,
        filename=f"{safe}.cer",
        content_type="application/pkix-cert",
        kind="certificate",
        size=len(report.der),
        sha256=hashlib.sha256(report.der).hexdigest(),
        content=report.der,
    )
    session.add(row)
    session.flush()
    return row
