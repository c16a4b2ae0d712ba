"""Sign-in hardening: failed attempts counted per account and per client address, and
server-side web sessions that signing out ends.

Counters live in the database (``login_attempt``) so every web worker sees the same counts.
Neither the e-mail nor the address is stored: each key is an HMAC under the installation's
secret (``pepper``), so a copy of the table does not reveal who tried or from where.

An attempt is *charged* before the password is checked, in a short transaction of its own
(``admit``): concurrent guesses each take a slot atomically, so no burst of parallel requests
gets more tries than the limit. ``settle`` then gives a successful attempt its slot back
(the account's count starts over) or locks the keys whose count reached the limit. The
same happens whether or not the account exists, so the answers and their timing say
nothing about which e-mails are registered.

A signed cookie cannot be revoked by itself: at sign-in a ``web_session`` row is opened and
its random id goes in the cookie; every request checks the row, and signing out deletes it,
so a copied cookie stops working at logout (or when the password changes).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.accounts.models import LoginAttempt, User, WebSession
from engine.db import UTCDateTime, utcnow

ACCOUNT, ADDRESS = "account", "address"


@dataclass(frozen=True)
class Policy:
    account_limit: int = 5
    address_limit: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)

    def limit(self, kind: str) -> int:
        return self.account_limit if kind == ACCOUNT else self.address_limit


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Keys:
    """The hashed keys of one sign-in attempt."""

    account: str
    address: str

    def pairs(self) -> list[tuple[str, str]]:
        return [(ACCOUNT, self.account), (ADDRESS, self.address)]


@dataclass
class Admission:
    admitted: bool
    retry_after: timedelta | None = None  # set when refused
    # Keys that this call locked (the count went past the limit under concurrency).
    locked: list[str] = field(default_factory=list)

    @property
    def minutes(self) -> int:
        """Whole minutes to wait, at least one."""
        seconds = self.retry_after.total_seconds() if self.retry_after else 0
        return max(1, math.ceil(seconds / 60))


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()[:254]


def normalize_address(address: str | None) -> str:
    """IPv4 as is; IPv6 by its /64 (one subscriber's whole prefix counts as one address)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return (address or "unknown")[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _hmac(pepper: bytes, kind: str, value: str) -> str:
    return hmac.new(pepper, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def keys_for(email: str, address: str | None, pepper: bytes) -> Keys:
    return Keys(
        account=_hmac(pepper, ACCOUNT, normalize_email(email)),
        address=_hmac(pepper, ADDRESS, normalize_address(address)),
    )


def typed_identifier(email: str, known: bool, pepper: bytes) -> dict[str, str]:
    """What the audit keeps of the e-mail typed at a sign-in: an existing account's e-mail, or
    only a keyed hash of anything else, since the permanent log must not keep whatever was
    typed there (a password pasted into the wrong field). The same text gives the same hash,
    so repeated tries stay recognizable."""
    if known:
        return {"email": normalize_email(email)}
    return {"email_hmac": _hmac(pepper, "identifier", normalize_email(email))}


def _insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LoginAttempt)


def _at(value: datetime):  # type: ignore[no-untyped-def]
    return literal(value, type_=UTCDateTime())


def admit(
    session: Session, keys: Keys, *, policy: Policy = DEFAULT_POLICY, now: datetime | None = None
) -> Admission:
    """Charge one attempt to both keys, or refuse it while either key is locked.

    Commit this (its own short transaction) before checking the password.
    """
    now = now or utcnow()
    pairs = keys.pairs()
    rows = session.execute(
        select(LoginAttempt.locked_until).where(
            or_(*[(LoginAttempt.kind == k) & (LoginAttempt.key_hash == h) for k, h in pairs]),
            LoginAttempt.locked_until > _at(now),
        )
    ).scalars()
    until = max(rows, default=None)
    if until is not None:
        return Admission(False, retry_after=until - now)
    counts = {kind: _charge(session, kind, key, policy, now) for kind, key in pairs}
    over = [kind for kind, count in counts.items() if count > policy.limit(kind)]
    if not over:
        return Admission(True)
    # Parallel attempts raced past the limit: this one is refused and locks its keys.
    for kind in over:
        _lock(session, kind, dict(pairs)[kind], now + policy.lockout)
    return Admission(False, retry_after=policy.lockout, locked=over)


def _charge(session: Session, kind: str, key: str, policy: Policy, now: datetime) -> int:
    expired = LoginAttempt.window_start <= _at(now - policy.window)
    stmt = (
        _insert(session)
        .values(kind=kind, key_hash=key, window_start=now, attempts=1, last_attempt_at=now)
        .on_conflict_do_update(
            index_elements=[LoginAttempt.kind, LoginAttempt.key_hash],
            set_={
                "attempts": case((expired, 1), else_=LoginAttempt.attempts + 1),
                "window_start": case((expired, _at(now)), else_=LoginAttempt.window_start),
                "last_attempt_at": _at(now),
            },
        )
        .returning(LoginAttempt.attempts)
    )
    return int(session.execute(stmt).scalar_one())


def _lock(session: Session, kind: str, key: str, until: datetime) -> None:
    session.execute(
        sql_update(LoginAttempt)
        .where(LoginAttempt.kind == kind, LoginAttempt.key_hash == key)
        .values(locked_until=until)
    )


def settle(
    session: Session,
    keys: Keys,
    succeeded: bool,
    *,
    policy: Policy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> list[str]:
    """After the password check: a success gives its slot back (and clears the account's
    count); a failure locks each key whose count reached the limit. Returns the kinds
    locked now."""
    now = now or utcnow()
    if succeeded:
        session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.kind == ACCOUNT, LoginAttempt.key_hash == keys.account
            )
        )
        session.execute(
            sql_update(LoginAttempt)
            .where(
                LoginAttempt.kind == ADDRESS,
                LoginAttempt.key_hash == keys.address,
                LoginAttempt.attempts > 0,
            )
            .values(attempts=LoginAttempt.attempts - 1)
        )
        return []
    locked = []
    for kind, key in keys.pairs():
        row = session.get(LoginAttempt, (kind, key))
        if row is None or row.attempts < policy.limit(kind):
            continue
        if row.locked_until is None or row.locked_until <= now:
            _lock(session, kind, key, now + policy.lockout)
            locked.append(kind)
    return locked


def cleanup(
    session: Session, *, policy: Policy = DEFAULT_POLICY, now: datetime | None = None
) -> int:
    """Forget counters whose window and lock are over, and sessions past their expiry."""
    now = now or utcnow()
    stale = session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.last_attempt_at < _at(now - max(policy.window, policy.lockout)),
            or_(LoginAttempt.locked_until.is_(None), LoginAttempt.locked_until < _at(now)),
        )
    ).rowcount
    ended = session.execute(delete(WebSession).where(WebSession.expires_at < _at(now))).rowcount
    return (stale or 0) + (ended or 0)


# ---------------------------------------------------------------- web sessions


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _credential(user: User) -> str:
    return _sha256(user.password_hash or "")


def open_session(
    session: Session, user: User, lifetime: timedelta, *, now: datetime | None = None
) -> str:
    """Start a web session; returns the id for the cookie (only its hash is stored)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=_sha256(token),
            user_id=user.id,
            credential=_credential(user),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def session_valid(
    session: Session, token: str | None, user: User, *, now: datetime | None = None
) -> bool:
    """Whether the cookie's session is still open for this user with this password."""
    if not token or not isinstance(token, str) or len(token) > 100:
        return False
    row = session.get(WebSession, _sha256(token))
    return bool(
        row is not None
        and row.user_id == user.id
        and row.expires_at > (now or utcnow())
        and hmac.compare_digest(row.credential, _credential(user))
    )


def end_session(session: Session, token: str | None) -> None:
    if token and isinstance(token, str):
        session.execute(delete(WebSession).where(WebSession.id == _sha256(token)))


def end_all_sessions(session: Session, user_id: int) -> int:
    """Sign the person out everywhere (e.g. after their password was reset)."""
    return session.execute(delete(WebSession).where(WebSession.user_id == user_id)).rowcount or 0
