"""Organizations, users, memberships and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.access.actor import Actor, Grant
from engine.accounts.models import ROLES, SCOPED_ROLES, ApiToken, Membership, Organization, User
from engine.audit import service as audit
from engine.db import utcnow
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments.models import Establishment

_hasher = PasswordHasher()
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Compared against when the e-mail is unknown, so a login takes the same time either way.
_DUMMY_HASH = _hasher.hash("credencia-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def get_org(session: Session, slug: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise NotFound(f"Organização '{slug}' não encontrada.")
    return org


def create_org(session: Session, actor: Actor, slug: str, name: str) -> Organization:
    errors = {}
    if not SLUG_RE.match(slug or ""):
        errors["slug"] = "Use letras minúsculas, números e hífens (2 a 63 caracteres)."
    if not (name or "").strip():
        errors["name"] = "Campo obrigatório."
    if errors:
        raise Invalid(errors)
    if session.scalar(select(Organization.id).where(Organization.slug == slug)):
        raise Conflict(f"Já existe uma organização '{slug}'.")
    org = Organization(slug=slug, name=name.strip())
    session.add(org)
    session.flush()
    audit.record(
        session,
        actor,
        "org.created",
        org_id=org.id,
        entity_type="organization",
        entity_id=org.id,
        data={"slug": slug, "name": org.name},
    )
    return org


def create_user(
    session: Session,
    actor: Actor,
    email: str,
    *,
    org_slug: str,
    role: str,
    establishments: Iterable[str] = (),
    password: str | None = None,
    name: str = "",
) -> tuple[User, str | None]:
    """Create the user if new and give them ``role`` in the organization.

    Returns the user and the password set now (None when an existing user kept theirs).
    """
    email = (email or "").strip().lower()
    errors = {}
    if not EMAIL_RE.match(email) or len(email) > 254:
        errors["email"] = "E-mail inválido."
    if len(name or "") > 200:
        errors["name"] = "No máximo 200 caracteres."
    if role not in ROLES:
        errors["role"] = f"Papel inválido; use um de: {', '.join(ROLES)}."
    cnes_list = list(dict.fromkeys(establishments))
    if cnes_list and role not in SCOPED_ROLES:
        errors["establishment"] = (
            "Este papel vale para a organização inteira; não se vincula a estabelecimentos."
        )
    if password is not None and len(password) < 8:
        errors["password"] = "A senha deve ter pelo menos 8 caracteres."  # noqa: S105 (a message)
    if errors:
        raise Invalid(errors)
    org = get_org(session, org_slug)
    found = session.scalars(
        select(Establishment).where(
            Establishment.org_id == org.id, Establishment.cnes.in_(cnes_list)
        )
    ).all()
    missing = set(cnes_list) - {e.cnes for e in found}
    if missing:
        raise Invalid(
            {
                "establishment": f"CNES não cadastrado(s) na organização: {', '.join(sorted(missing))}."
            }
        )

    user = session.scalar(select(User).where(User.email == email))
    new_password = None
    if user is None:
        new_password = password or generate_password()
        user = User(
            email=email, name=name or email.split("@")[0], password_hash=hash_password(new_password)
        )
        session.add(user)
        session.flush()
        audit.record(
            session,
            actor,
            "user.created",
            org_id=org.id,
            entity_type="user",
            entity_id=user.id,
            data={"email": email},
        )
    elif password:
        user.password_hash = hash_password(password)
        new_password = password
    membership = session.scalar(
        select(Membership)
        .where(Membership.user_id == user.id, Membership.org_id == org.id, Membership.role == role)
        .options(selectinload(Membership.establishments))
    )
    if membership is None:
        membership = Membership(user_id=user.id, org_id=org.id, role=role)
        session.add(membership)
    for est in found:
        if est not in membership.establishments:
            membership.establishments.append(est)
    session.flush()
    audit.record(
        session,
        actor,
        "user.role_granted",
        org_id=org.id,
        entity_type="user",
        entity_id=user.id,
        data={"role": role, "establishments": sorted(e.cnes for e in found)},
    )
    return user, new_password


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session, actor: Actor, email: str, name: str = "", *, org_id: int | None = None
) -> str:
    """A new bearer token. With ``org_id`` (an organization's admin minted it) it acts only
    within that organization, whatever roles the person holds elsewhere."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"Usuário '{email}' não encontrado.")
    token = "cred_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            org_id=org_id,
            name=name,
            token_hash=_token_hash(token),
            prefix=token[:12],
        )
    )
    session.flush()
    orgs = [org_id] if org_id is not None else sorted({m.org_id for m in user.memberships})
    for org_id in orgs or [None]:
        audit.record(
            session,
            actor,
            "token.created",
            org_id=org_id,
            entity_type="user",
            entity_id=user.id,
            data={"prefix": token[:12], "name": name},
        )
    return token


def load_actor(session: Session, user: User, *, only_org: int | None = None) -> Actor:
    stmt = select(Membership).where(Membership.user_id == user.id)
    if only_org is not None:
        stmt = stmt.where(Membership.org_id == only_org)
    memberships = session.scalars(stmt.options(selectinload(Membership.establishments))).all()
    grants = tuple(
        Grant(
            org_id=m.org_id,
            role=m.role,
            establishment_ids=frozenset(e.id for e in m.establishments)
            if m.role in SCOPED_ROLES
            else None,
        )
        for m in memberships
    )
    return Actor(user_id=user.id, label=user.email, grants=grants, locale=user.locale)


def actor_for_token(session: Session, token: str) -> Actor | None:
    if not token or len(token) > 200:
        return None
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _token_hash(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return load_actor(session, user, only_org=row.org_id)


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    ok = verify_password(user.password_hash if user else None, password or "")
    if not ok or user is None or not user.active:
        return None
    return user


def touch_token(session: Session, token: str) -> None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    if row is not None:
        row.last_used_at = utcnow()
