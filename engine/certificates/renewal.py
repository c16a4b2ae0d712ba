"""Starting the certificate-renewal process when a certificate enters its renewal window.

The scheduler calls the hook once per certificate (its reminder row has a unique key), in
the transaction that records that reminder; a running renewal for the establishment is left
alone. Completing the renewal registers the new certificate as current, which ends the old
one's reminders (they follow the current certificate only).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.definitions import service as definitions
from engine.errors import Conflict, NotFound
from engine.establishments.models import Establishment
from engine.runtime import instances as runtime_instances

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
    try:
        with session.begin_nested():
            instance = runtime_instances.start_instance(
                session,
                SCHEDULER,
                org_id=est.org_id,
                process_key=PROCESS,
                establishment_cnes=est.cnes,
            )
    except Conflict:
        return None  # a renewal is already running for this establishment
    return instance.id
