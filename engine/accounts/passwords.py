"""Passwords a person manages: the rules, changing one's own, and resetting it by e-mail.

A reset link is signed (HMAC under the installation's key), short-lived and single-use: it
carries the account id and its expiry, and the signature also covers a digest of the current
password hash, so once the password changes (the link was used, or the person changed it
otherwise) the link no longer verifies. Asking for a link answers the same whether or not the
e-mail has an account, and sends the mail through the outbox like every other notice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy.orm import Session

from engine import secrets as secret_store
from engine.access.actor import Actor
from engine.accounts import queries as account_queries
from engine.accounts import service as accounts
from engine.accounts.models import User
from engine.audit import service as audit
from engine.db import utcnow
from engine.errors import Invalid, NotFound
from engine.notifications import service as notifications
from engine.notifications.render import language, render

RESET_PATH = "/senha/redefinir/"
KIND = "password_reset"
GONE = "Este link de redefinição expirou ou já foi usado. Peça outro."
# Common in Brazil and not in the general list below.
_LOCAL_COMMON = (
    "senha123", "senha1234", "senha12345", "mudar123", "mudar@123", "brasil123", "brasil2024",
    "brasil2025", "brasil2026", "flamengo", "flamengo123", "corinthians", "palmeiras",
    "saopaulo", "vasco123", "gremio123", "12345678910", "123mudar", "admin123", "admin1234",
    "credencia", "credencia123", "datasus", "datasus123", "saude123", "saude2024", "sus12345",
)  # fmt: skip


@cache
def common_passwords() -> frozenset[str]:
    """About 30,000 passwords most found in public leaks (the list zxcvbn ships), and a few
    common in Brazil."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"]) | frozenset(_LOCAL_COMMON)


def check_new_password(password: str, *, email: str = "") -> None:
    """The rules for a password chosen now: length, and not a common or guessable one."""
    accounts.check_password(password)
    lowered = password.lower()
    local = (email or "").split("@")[0].lower()
    if lowered in common_passwords() or (local and lowered in (local, email.lower())):
        raise Invalid({"password": "Esta senha é comum demais (está em listas de senhas "  # noqa: S105
                       "vazadas) ou repete o e-mail; escolha outra."})  # fmt: skip
    if len(set(password)) < 4:
        raise Invalid({"password": "Senha repetitiva demais; use mais caracteres diferentes."})  # noqa: S105


def change_own(session: Session, actor: Actor, *, current: str, new: str) -> User:
    """The signed-in person changes their password: the current one is required."""
    user = session.get(User, actor.user_id)
    if user is None or not user.active:
        raise NotFound("Conta não encontrada.")
    if user.password_hash and not accounts.verify_password(user.password_hash, current or ""):
        raise Invalid({"current": "Senha atual incorreta."})  # noqa: S105 (a message)
    check_new_password(new, email=user.email)
    accounts.set_password(session, actor, user, new)
    return user


# ------------------------------------------------------------------ reset by e-mail


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(user: User, expires: int) -> bytes:
    key = secret_store.keyring().current.signing_key
    state = hashlib.sha256((user.password_hash or "").encode()).hexdigest()
    message = f"password-reset|{user.id}|{expires}|{state}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def reset_token(user: User, *, valid_for: timedelta, now: datetime | None = None) -> str:
    expires = int(((now or utcnow()) + valid_for).timestamp())
    payload = _b64(f"{user.id}.{expires}".encode())
    return f"{payload}.{_b64(_signature(user, expires))}"


def user_of_reset_token(session: Session, token: str, *, now: datetime | None = None) -> User:
    """The account a reset link is for, while the link is valid (NotFound otherwise)."""
    try:
        payload, sig = (token or "").split(".")
        uid_text, exp_text = _unb64(payload).decode().split(".")
        uid, expires = int(uid_text), int(exp_text)
        given = _unb64(sig)
    except (ValueError, UnicodeDecodeError):
        raise NotFound(GONE) from None
    if expires < (now or utcnow()).timestamp():
        raise NotFound(GONE)
    user = session.get(User, uid)
    if user is None or not user.active or not hmac.compare_digest(_signature(user, expires), given):
        raise NotFound(GONE)
    return user


def request_reset(session: Session, email: str, settings: Any, *,
                  remote_addr: str | None = None) -> None:  # fmt: skip
    """E-mail a reset link to the account with ``email``, if there is an active one. The
    caller's answer must not depend on which (it says the same either way)."""
    email = (email or "").strip().lower()
    user = account_queries.user_by_email(session, email) if "\x00" not in email else None
    if user is None or not user.active:
        return
    valid_for = timedelta(minutes=settings.password_reset_minutes)
    token = reset_token(user, valid_for=valid_for)
    lang = language(user.locale)
    rendered = render(KIND, lang, {"email": user.email, "minutes": settings.password_reset_minutes,
                                   "link": settings.base_url.rstrip("/") + RESET_PATH + token},
                      tz=settings.timezone)  # fmt: skip
    notifications.enqueue_email(session, user, rendered, kind=KIND, mail_from=settings.mail_from)
    who = Actor(user_id=None, label=user.email)
    for org in account_queries.membership_org_ids(session, user.id) or [None]:
        audit.record(session, who, "user.password_reset_requested", org_id=org,
                     entity_type="user", entity_id=user.id,
                     data={"remote_addr": remote_addr})  # fmt: skip


def reset(session: Session, token: str, new: str) -> User:
    """Set the password through a reset link (which stops working with it)."""
    user = user_of_reset_token(session, token)
    check_new_password(new, email=user.email)
    accounts.set_password(session, Actor(user_id=user.id, label=user.email), user, new)
    for org in account_queries.membership_org_ids(session, user.id) or [None]:
        audit.record(session, Actor(user_id=user.id, label=user.email), "user.password_reset",
                     org_id=org, entity_type="user", entity_id=user.id)  # fmt: skip
    return user
