"""Organizations, users, memberships and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, selectinload

from engine.access.actor import Actor, Grant
from engine.accounts.models import (
    ROLES,
    SCOPED_ROLES,
    ApiToken,
    Membership,
    Organization,
    User,
    WebSession,
)
from engine.accounts.queries import existing_user, user_with_email
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


@dataclass
class GrantRequest:
    """A validated request to give ``role`` in ``org`` to the person with ``email``."""

    org: Organization
    email: str
    role: str
    establishments: list[Establishment]
    name: str


def check_grant(
    session: Session,
    email: str,
    *,
    org_slug: str,
    role: str,
    establishments: Iterable[str] = (),
    name: str = "",
) -> GrantRequest:
    """Validate a grant (the same checks whether or not the person has an account)."""
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
    return GrantRequest(org, email, role, list(found), name or "")


def check_password(password: str) -> None:
    if len(password or "") < 8:
        raise Invalid({"password": "A senha deve ter pelo menos 8 caracteres."})  # noqa: S105 (a message)
    if len(password) > 1000:
        raise Invalid({"password": "No máximo 1000 caracteres."})  # noqa: S105 (a message)


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
    """Create the user if new and give them ``role`` in the organization (the installation's
    operator, from the command line: nobody is asked).

    Returns the user and the password set now (None when an existing user kept theirs).
    """
    if password is not None:
        check_password(password)
    grant = check_grant(session, email, org_slug=org_slug, role=role,
                        establishments=establishments, name=name)  # fmt: skip
    user = session.scalar(select(User).where(User.email == grant.email))
    new_password = None
    if user is None:
        new_password = password or generate_password()
        user = new_user(session, actor, grant.email, name, new_password, org_id=grant.org.id)
    elif password:
        set_password(session, actor, user, password)
        new_password = password
    add_membership(session, actor, user, grant)
    return user, new_password


def new_user(session: Session, actor: Actor, email: str, name: str, password: str, *,
             org_id: int | None) -> User:  # fmt: skip
    user = User(
        email=email, name=name or email.split("@")[0], password_hash=hash_password(password)
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.created", org_id=org_id, entity_type="user",
                 entity_id=user.id, data={"email": email})  # fmt: skip
    return user


def add_membership(session: Session, actor: Actor, user: User, grant: GrantRequest) -> Membership:
    """Give the role (adding establishments to a scoped role already held). A first role in
    a second organization pins the person's organization-less tokens to the organization
    they already had, so those keep working there (an API call with such a token must
    otherwise name its organization)."""
    org_ids = set(session.scalars(select(Membership.org_id).where(Membership.user_id == user.id)))
    if grant.org.id not in org_ids and len(org_ids) == 1:
        _pin_tokens(session, actor, user, org_ids.pop())
    membership = session.scalar(
        select(Membership)
        .where(
            Membership.user_id == user.id,
            Membership.org_id == grant.org.id,
            Membership.role == grant.role,
        )
        .options(selectinload(Membership.establishments))
    )
    if membership is None:
        membership = Membership(user_id=user.id, org_id=grant.org.id, role=grant.role)
        session.add(membership)
    for est in grant.establishments:
        if est not in membership.establishments:
            membership.establishments.append(est)
    session.flush()
    audit.record(
        session,
        actor,
        "user.role_granted",
        org_id=grant.org.id,
        entity_type="user",
        entity_id=user.id,
        data={"role": grant.role, "establishments": sorted(e.cnes for e in grant.establishments)},
    )
    return membership


def _pin_tokens(session: Session, actor: Actor, user: User, org_id: int) -> None:
    rows = session.scalars(
        select(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.org_id.is_(None), ApiToken.revoked_at.is_(None)
        )
    ).all()
    for row in rows:
        row.org_id = org_id
        audit.record(session, actor, "token.bound", org_id=org_id, entity_type="user",
                     entity_id=user.id, data={"prefix": row.prefix})  # fmt: skip


def set_password(session: Session, actor: Actor, user: User, password: str) -> int:
    """A new password: every API token of the person is revoked and every web session ends
    (whoever knew the old password may have made or copied them). Returns the tokens revoked."""
    check_password(password)
    user.password_hash = hash_password(password)
    revoked = revoke_user_tokens(session, actor, user, reason="password_changed")
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    orgs = sorted(
        set(session.scalars(select(Membership.org_id).where(Membership.user_id == user.id)))
    )
    for org_id in orgs or [None]:
        audit.record(session, actor, "user.password_changed", org_id=org_id, entity_type="user",
                     entity_id=user.id, data={"tokens_revoked": revoked})  # fmt: skip
    return revoked


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session,
    actor: Actor,
    email: str,
    name: str = "",
    *,
    org_id: int | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A new bearer token. With ``org_id`` it acts only within that organization, whatever
    roles the person holds elsewhere; without, with all of them."""
    user = existing_user(session, email)
    token = "cred_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            org_id=org_id,
            name=name,
            token_hash=_token_hash(token),
            prefix=token[:12],
            expires_at=expires_at,
        )
    )
    session.flush()
    data: dict = {"prefix": token[:12], "name": name}
    if expires_at is not None:
        data["expires_at"] = expires_at.isoformat()
    for org in token_orgs(session, user.id, org_id):
        audit.record(session, actor, "token.created", org_id=org, entity_type="user",
                     entity_id=user.id, data=data)  # fmt: skip
    return token


def token_orgs(session: Session, user_id: int, org_id: int | None) -> list[int | None]:
    """The organizations whose logs hear of a token: its own, or (an organization-less
    token) every organization of its person."""
    if org_id is not None:
        return [org_id]
    orgs = sorted(
        set(session.scalars(select(Membership.org_id).where(Membership.user_id == user_id)))
    )
    return list(orgs) or [None]


def revoke_token(session: Session, actor: Actor, row: ApiToken, *, reason: str = "") -> bool:
    """Revoke one token (audited where it acts); False if it already was."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    data = {"prefix": row.prefix, "name": row.name}
    if reason:
        data["reason"] = reason
    for org in token_orgs(session, row.user_id, row.org_id):
        audit.record(session, actor, "token.revoked", org_id=org, entity_type="user",
                     entity_id=row.user_id, data=data)  # fmt: skip
    return True


def revoke_user_tokens(session: Session, actor: Actor, user: User, *, reason: str) -> int:
    rows = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    return sum(revoke_token(session, actor, row, reason=reason) for row in rows)


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


def live_token(session: Session, token: str, *, now: datetime | None = None) -> ApiToken | None:
    """The token's row if it is neither revoked nor expired and its person is active."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    now = now or utcnow()
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _token_hash(token),
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    )
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return row


def actor_for_token(session: Session, token: str) -> Actor | None:
    """The actor of a live token. The API authenticates with engine.accounts.tokens.authenticate,
    which also says when to record the token's use."""
    row = live_token(session, token)
    if row is None:
        return None
    return load_actor(session, session.get(User, row.user_id), only_org=row.org_id)


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = user_with_email(session, email)
    ok = verify_password(user.password_hash if user else None, password or "")
    if not ok or user is None or not user.active:
        return None
    return user
