"""Sign-in hardening: failed attempts slowed down per account (and per client address where
that address can be trusted), and server-side web sessions that signing out ends.

No lockout. After a few failures in a row each further attempt of the same key must wait a
delay that doubles with every failure, up to a cap (``Policy``); an attempt that comes
earlier is refused *without looking at the password* and told how many seconds to wait. A
success clears the account's count. So a guesser gets a few tries and then one per capped
delay, while the account's owner — even while someone hammers at it — waits at most the cap,
never a lockout that a stranger can impose with five wrong guesses.

The address counts only where it is the client's: a direct connection, or the address the
trusted reverse proxies report (``CREDENCIA_TRUSTED_PROXIES``; web/security.py decides). When
it is the proxy's own address everyone behind it would share one count, so it is not used.

Counters live in the database (``login_attempt``) so every web worker sees the same counts.
Neither the e-mail nor the address is stored: each key is an HMAC under the installation's
secret (``pepper``), so a copy of the table does not reveal who tried or from where.

An attempt is *charged* before the password is checked, in a short transaction of its own
(``admit``), and the delay that a failure would bring is set at once: concurrent guesses
each take the row lock in turn, so no burst of parallel requests gets more tries than the
free ones. ``settle`` then gives a successful attempt its slot back (the account's count
starts over). The same happens whether or not the account exists, so the answers and their
timing say nothing about which e-mails are registered.

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

from sqlalchemy import delete, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.accounts.models import LoginAttempt, User, WebSession
from engine.db import UTCDateTime, utcnow

ACCOUNT, ADDRESS = "account", "address"


@dataclass(frozen=True)
class Backoff:
    """``free`` failures in a row cost nothing; the next attempt waits ``first``, and each
    further failure doubles the wait, up to ``cap``."""

    free: int
    first: timedelta
    cap: timedelta

    def delay(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        doublings = min(failures - self.free, 30)
        return min(self.first * (2**doublings), self.cap)


@dataclass(frozen=True)
class Policy:
    account: Backoff = Backoff(free=5, first=timedelta(seconds=30), cap=timedelta(minutes=5))
    # Many people may share one address (a health secretariat's network): more free tries,
    # a shorter cap.
    address: Backoff = Backoff(free=20, first=timedelta(seconds=5), cap=timedelta(minutes=1))
    # A key with no failure for this long starts from zero again.
    forget_after: timedelta = timedelta(minutes=30)

    def of(self, kind: str) -> Backoff:
        return self.account if kind == ACCOUNT else self.address


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Keys:
    """The hashed keys of one sign-in attempt (no address key when it cannot be trusted)."""

    account: str
    address: str | None

    def pairs(self) -> list[tuple[str, str]]:
        # Always in this order: concurrent attempts take the row locks in the same order.
        out = [(ACCOUNT, self.account)]
        if self.address is not None:
            out.append((ADDRESS, self.address))
        return out


@dataclass
class Admission:
    admitted: bool
    retry_after: timedelta | None = None  # set when refused
    # Keys whose count reached the free limit with this attempt (they start to be slowed).
    throttled: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> int:
        """Whole seconds to wait, at least one."""
        seconds = self.retry_after.total_seconds() if self.retry_after else 0
        return max(1, math.ceil(seconds))


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
    """``address`` None: the client's address is not known (see the module's docstring)."""
    return Keys(
        account=_hmac(pepper, ACCOUNT, normalize_email(email)),
        address=_hmac(pepper, ADDRESS, normalize_address(address)) if address else None,
    )


def typed_identifier(email: str, known: bool, pepper: bytes) -> dict[str, str]:
    """What the audit keeps of the e-mail typed at a sign-in: an existing account's e-mail, or
    only a keyed hash of anything else, since the permanent log must not keep whatever was
    typed there (a password pasted into the wrong field). The same text gives the same hash,
    so repeated tries stay recognizable."""
    if known:
        return {"email": normalize_email(email)}
    return {"email_hmac": _hmac(pepper, "identifier", normalize_email(email))}


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LoginAttempt)


def _at(value: datetime):
    return literal(value, type_=UTCDateTime())


def _row(session: Session, kind: str, key: str, now: datetime) -> LoginAttempt:
    """The key's row, created if missing, locked until the end of the transaction."""
    session.execute(
        _insert(session)
        .values(kind=kind, key_hash=key, window_start=now, attempts=0, last_attempt_at=now)
        .on_conflict_do_nothing(index_elements=[LoginAttempt.kind, LoginAttempt.key_hash])
    )
    return session.execute(
        select(LoginAttempt)
        .where(LoginAttempt.kind == kind, LoginAttempt.key_hash == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def admit(
    session: Session, keys: Keys, *, policy: Policy = DEFAULT_POLICY, now: datetime | None = None
) -> Admission:
    """Charge one attempt to each key, or refuse it while any key must still wait.

    Commit this (its own short transaction) before checking the password.
    """
    now = now or utcnow()
    rows = [(kind, _row(session, kind, key, now)) for kind, key in keys.pairs()]
    waits = [
        row.locked_until - now for _, row in rows if row.locked_until and row.locked_until > now
    ]
    if waits:
        return Admission(False, retry_after=max(waits))
    throttled = []
    for kind, row in rows:
        if row.last_attempt_at <= now - policy.forget_after:
            row.attempts, row.window_start = 0, now
        row.attempts += 1
        row.last_attempt_at = now
        # Charged as a failure until settle() hears otherwise: the delay starts now.
        delay = policy.of(kind).delay(row.attempts)
        row.locked_until = now + delay if delay else None
        if row.attempts == policy.of(kind).free:
            throttled.append(kind)
    session.flush()
    return Admission(True, throttled=throttled)


def settle(
    session: Session,
    keys: Keys,
    succeeded: bool,
    *,
    policy: Policy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> None:
    """After the password check: a success gives its slot back (the account starts over, the
    address loses one failure); a failure stays charged, with the delay admit() set."""
    if not succeeded:
        return
    now = now or utcnow()
    session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.kind == ACCOUNT, LoginAttempt.key_hash == keys.account
        )
    )
    if keys.address is None:
        return
    row = session.get(LoginAttempt, (ADDRESS, keys.address), with_for_update=True)
    if row is not None and row.attempts > 0:
        row.attempts -= 1
        delay = policy.address.delay(row.attempts)
        row.locked_until = row.last_attempt_at + delay if delay else None


def cleanup(
    session: Session, *, policy: Policy = DEFAULT_POLICY, now: datetime | None = None
) -> int:
    """Forget counters with no attempt for a while, and sessions past their expiry."""
    now = now or utcnow()
    stale = session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.last_attempt_at < _at(now - policy.forget_after),
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
