"""Unauthenticated API calls are counted, not audited one by one.

Anyone can send a request with no token or a made-up one; an audit event for each would let
them grow the undeletable log for free. Instead each failure adds one to a counter per
minute, client address (a keyed hash: the table does not say who called) and reason, and the
first failure after a minute has passed sums up every closed minute in *one* system event
(``api.auth_failures``) and deletes those counters. The log thus gets at most one event per
minute however many calls come, from however many addresses.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.audit.models import AuditEvent, AuthFailureCount
from engine.db import utcnow

ACTION = "api.auth_failures"
WINDOW = timedelta(minutes=1)
TOP = 20  # addresses named in a summary, the busiest first


def address_key(secret: bytes | str, address: str | None) -> str:
    """A keyed hash of the client address (the same address gives the same key)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    key = hashlib.sha256(b"credencia-auth-failures:" + raw).digest()
    return hmac.new(key, (address or "unknown").encode(), hashlib.sha256).hexdigest()


def _window(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def note(
    session: Session, *, address_hash: str, reason: str, now: datetime | None = None
) -> AuditEvent | None:
    """Count one failure; returns the summary event when this failure wrote one."""
    now = now or utcnow()
    window = _window(now)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(AuthFailureCount)
        .values(window_start=window, address_hash=address_hash, reason=reason[:40], failures=1)
        .on_conflict_do_update(
            index_elements=[
                AuthFailureCount.window_start,
                AuthFailureCount.address_hash,
                AuthFailureCount.reason,
            ],
            set_={"failures": AuthFailureCount.failures + 1},
        )
    )
    return summarize(session, before=window)


def summarize(session: Session, *, before: datetime) -> AuditEvent | None:
    """One system event for every minute counted before ``before``; their counters go.

    The rows are claimed by deleting them: of two concurrent callers, one gets them and the
    other nothing, so no minute is summed up twice.
    """
    rows = session.execute(
        delete(AuthFailureCount)
        .where(AuthFailureCount.window_start < before)
        .returning(
            AuthFailureCount.window_start,
            AuthFailureCount.address_hash,
            AuthFailureCount.reason,
            AuthFailureCount.failures,
        )
    ).all()
    if not rows:
        return None
    by_address: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for _, address, reason, failures in rows:
        by_address[address] += failures
        by_reason[reason] += failures
    starts = [row.window_start for row in rows]
    data = {
        "from": min(starts).isoformat(),
        "until": (max(starts) + WINDOW).isoformat(),
        "failures": sum(by_reason.values()),
        "addresses": len(by_address),
        "reasons": dict(sorted(by_reason.items())),
        "busiest": [{"address": a, "failures": n} for a, n in by_address.most_common(TOP)],
    }
    return audit.record(session, None, ACTION, org_id=None, entity_type="api", data=data)
