"""Starting the certificate-renewal process when a certificate enters its renewal window.

The scheduler calls the hook once per certificate (its reminder row has a unique key), in
the transaction that records that reminder; a running renewal for the establishment is left
alone. Completing the renewal registers the new certificate as current, which ends the old
one's reminders (they follow the current certificate only). The renewal works on the
establishment's open credential bound to that certificate (the newest, when several
portfolios share it); the others bound to it follow when the renewal updates it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.credentials import service as credentials
from engine.credentials.models import LIVE, Credential
from engine.definitions import service as definitions
from engine.errors import Conflict, NotFound
from engine.establishments.models import Establishment

log = logging.getLogger(__name__)
PROCESS = "renovacao-certificado"
SCHEDULER = Actor(user_id=None, label="scheduler", is_system=True)


def start_renewal(session: Session, certificate: Any) -> int | None:
    """Start the renewal for the certificate's establishment; the new instance id, or None."""
    try:
        definitions.latest(session, PROCESS)
    except NotFound:
        log.info(
            "renewal window for certificate %s, but %s is not deployed", certificate.id, PROCESS
        )
        return None
    est = session.get(Establishment, certificate.establishment_id)
    if est is None or not certificate.is_current:
        return None
    credential_id = session.scalar(
        select(Credential.id)
        .where(
            Credential.establishment_id == est.id,
            Credential.status.in_(LIVE),
            Credential.certificate_sha256.in_([certificate.sha256, ""]),
        )
        .order_by(
            (Credential.certificate_sha256 == certificate.sha256).desc(), Credential.id.desc()
        )
        .limit(1)
    )
    try:
        with session.begin_nested():
            instance = credentials.start(
                session,
                SCHEDULER,
                org_id=est.org_id,
                process_key=PROCESS,
                establishment_cnes=est.cnes,
                credential_id=credential_id,
                **({} if credential_id else {"without_credential": True}),
            )
    except Conflict:
        return None  # a renewal is already running for this establishment
    return instance.id
