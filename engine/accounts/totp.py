"""A second factor: time-based one-time passwords (RFC 6238, HMAC-SHA1, 6 digits, 30 s).

The secret is stored encrypted by engine.secrets (bound to the account by the cipher's
associated data), never in clear. A code is accepted once (the step is remembered), with one
step of allowance either side for the phone's clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

from sqlalchemy.orm import Session

from engine import secrets as secret_store
from engine.access.actor import Actor
from engine.accounts import queries as account_queries
from engine.accounts import service as accounts
from engine.accounts.models import User
from engine.audit import service as audit
from engine.errors import Invalid

STEP = 30
DIGITS = 6
WINDOW = 1
ISSUER = "Credencia"


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def code_at(secret: str, step: int) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def now_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP)


def matching_step(
    secret: str, code: str, *, after: int | None, now: float | None = None
) -> int | None:
    """The step whose code is ``code`` (within the window, later than ``after``), or None."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = now_step(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if (after is None or step > after) and hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, email: str) -> str:
    label = quote(f"{ISSUER}:{email}")
    return f"otpauth://totp/{label}?" + urlencode({"secret": secret, "issuer": ISSUER,
                                                   "digits": DIGITS, "period": STEP})  # fmt: skip


def _context(user: User) -> str:
    return f"user:{user.id}:totp"


def _record(session: Session, actor: Actor, action: str, user: User) -> None:
    for org in account_queries.membership_org_ids(session, user.id) or [None]:
        audit.record(session, actor, action, org_id=org, entity_type="user", entity_id=user.id)


def enable(session: Session, actor: Actor, user: User, secret: str, code: str) -> None:
    """Turn the second factor on, once the person typed a code of the new secret."""
    step = matching_step(secret, code, after=None)
    if step is None:
        raise Invalid(
            {"code": "Código incorreto. Confira o horário do celular e digite o código atual."}
        )
    user.totp_secret = secret_store.encrypt(secret, context=_context(user))
    user.totp_last_step = step
    _record(session, actor, "user.totp_enabled", user)


def disable(session: Session, actor: Actor, user: User, *, password: str | None = None) -> None:
    """Turn it off: by the person (their password required) or the installation's operator."""
    if not actor.is_system and (
        user.password_hash and not accounts.verify_password(user.password_hash, password or "")
    ):
        raise Invalid({"password": "Senha incorreta."})  # noqa: S105 (a message)
    user.totp_secret = None
    user.totp_last_step = None
    _record(session, actor, "user.totp_disabled", user)


def verify(session: Session, user: User, code: str, *, now: float | None = None) -> bool:
    """Whether ``code`` is the person's current one, not used before (it is then used)."""
    if not user.totp_secret:
        return False
    secret = secret_store.decrypt(user.totp_secret, context=_context(user))
    step = matching_step(secret, code, after=user.totp_last_step, now=now)
    if step is None:
        return False
    user.totp_last_step = step
    return True
