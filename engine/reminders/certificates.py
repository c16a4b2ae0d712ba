"""Certificate expiry: at each of ``settings.certificate_reminder_days`` before ``not_after``
the establishment's gestores and integradores are reminded (occurrence ``d<threshold>``: after
downtime only the current threshold is sent); an expired certificate is announced once and the
expiry is audited once; at ``RENEWAL_WINDOW_DAYS`` the renewal process is started once
(``engine.credentials.renewal``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.access.actor import SYSTEM
from engine.audit import service as audit
from engine.certificates.models import Certificate
from engine.credentials import renewal
from engine.credentials.models import ENCERRADA, OPEN, Credential
from engine.db import Database, utcnow
from engine.reminders.delivery import (
    RunSummary,
    establishment_path,
    existing_keys,
    send_to_each,
    take_hook,
)
from engine.reminders.models import CERTIFICATE_EXPIRED, CERTIFICATE_EXPIRY, CERTIFICATE_RENEWAL
from engine.reminders.recipients import (
    est_context,
    establishments_by_id,
    role_holders,
    unique_users,
)

log = logging.getLogger(__name__)

RENEWAL_WINDOW_DAYS = 30


def certificate_threshold(days_left: int, thresholds: Sequence[int]) -> int | None:
    """The reminder due now: the smallest threshold not below the days left, if any."""
    candidates = [t for t in thresholds if t >= days_left]
    return min(candidates) if candidates else None


def _still_credentialed(certificate_cls: Any) -> Any:
    """A certificate is reminded of unless every credential of its establishment has ended
    (a withdrawn establishment stops hearing about it); one with no credential yet is."""
    of_est = Credential.establishment_id == certificate_cls.establishment_id
    ended = select(Credential.id).where(of_est, Credential.status == ENCERRADA).exists()
    still_open = select(Credential.id).where(of_est, Credential.status.in_(OPEN)).exists()
    return or_(~ended, still_open)


def remind_certificates(db: Database, settings: Any, *, now: datetime | None = None) -> RunSummary:
    certificate_cls = Certificate
    now = now or utcnow()
    summary = RunSummary()
    zone = ZoneInfo(settings.timezone)
    today = now.astimezone(zone).date()
    thresholds = sorted({int(d) for d in settings.certificate_reminder_days if int(d) > 0})
    horizon = now + timedelta(days=max([*thresholds, RENEWAL_WINDOW_DAYS]) + 1)
    with db.read() as session:
        stmt = select(certificate_cls).where(
            certificate_cls.not_after <= horizon, _still_credentialed(certificate_cls)
        )
        if hasattr(certificate_cls, "is_current"):
            stmt = stmt.where(certificate_cls.is_current.is_(True))
        certificates = list(
            session.scalars(stmt.order_by(certificate_cls.not_after, certificate_cls.id))
        )
        if not certificates:
            return summary
        summary.subjects = len(certificates)
        holders = role_holders(
            session,
            [c.org_id for c in certificates],
            [c.establishment_id for c in certificates],
            ("gestor", "integrador"),
        )
        ests = establishments_by_id(session, [c.establishment_id for c in certificates])
        subjects = [f"certificate:{c.id}" for c in certificates]
        taken = {
            kind: existing_keys(session, kind, subjects)
            for kind in (CERTIFICATE_EXPIRY, CERTIFICATE_EXPIRED, CERTIFICATE_RENEWAL)
        }
    for cert in certificates:
        subject = f"certificate:{cert.id}"
        expired = cert.not_after <= now
        days_left = (cert.not_after.astimezone(zone).date() - today).days
        users = unique_users(
            holders.get((cert.org_id, "gestor", cert.establishment_id), ()),
            holders.get((cert.org_id, "integrador", cert.establishment_id), ()),
        )
        if expired:
            kind, occ = CERTIFICATE_EXPIRED, "expired"
        else:
            threshold = certificate_threshold(days_left, thresholds)
            kind, occ = (CERTIFICATE_EXPIRY, f"d{threshold}") if threshold is not None else ("", "")
        todo = [u for u in users if kind and (subject, f"user:{u.id}", occ) not in taken[kind]]
        needs_expired_hook = (
            expired and (subject, "hook:expired", "expired") not in taken[CERTIFICATE_EXPIRED]
        )
        needs_renewal = (
            days_left <= RENEWAL_WINDOW_DAYS
            and (subject, "hook:renewal", "window") not in taken[CERTIFICATE_RENEWAL]
        )
        if not (todo or needs_expired_hook or needs_renewal):
            continue
        est = ests.get(cert.establishment_id)
        context = {"not_after": cert.not_after, "days_left": max(days_left, 0), **est_context(est)}
        data = {
            "certificate_id": cert.id,
            "not_after": cert.not_after.isoformat(),
            "establishment_id": cert.establishment_id,
        }
        try:
            with db.write() as session:
                sent = send_to_each(
                    session,
                    settings,
                    todo,
                    kind=kind,
                    subject=subject,
                    occurrence=occ,
                    org_id=cert.org_id,
                    context=context,
                    link_path=establishment_path(est.cnes if est else ""),
                    data=data,
                )
                hooks: list[str] = []
                if needs_expired_hook and take_hook(
                    session, CERTIFICATE_EXPIRED, subject, "expired", "expired", cert.org_id, data
                ):
                    hooks.append("expired")
                if needs_renewal and take_hook(
                    session, CERTIFICATE_RENEWAL, subject, "renewal", "window", cert.org_id, data
                ):
                    hooks.append("renewal")
                    # In this transaction: a failing start is retried on the next run.
                    renewal.start_renewal(session, cert)
                if sent or hooks:
                    action = "certificate.expired" if expired else "certificate.expiry_reminder"
                    audit.record(
                        session,
                        SYSTEM,
                        action,
                        org_id=cert.org_id,
                        entity_type="establishment",
                        entity_id=cert.establishment_id,
                        data={
                            **data,
                            "occurrence": occ,
                            "days_left": days_left,
                            "recipients": sent,
                            "hooks": hooks,
                        },
                    )
            summary.sent += len(sent)
        except Exception:
            summary.failed += 1
            log.exception("could not process the expiry of certificate %s", cert.id)
    return summary


def expired_certificate_establishments(
    session: Session, org_id: int, *, now: datetime | None = None
) -> set[int]:
    """Establishments of the organization flagged *certificado vencido*: their current
    certificate's ``not_after`` has passed ."""
    certificate_cls = Certificate
    stmt = select(certificate_cls.establishment_id).where(
        certificate_cls.org_id == org_id, certificate_cls.not_after <= (now or utcnow())
    )
    if hasattr(certificate_cls, "is_current"):
        stmt = stmt.where(certificate_cls.is_current.is_(True))
    return set(session.scalars(stmt))
