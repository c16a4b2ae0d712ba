"""API tokens: made by an organization's admin (page) or the installation's operator (command
line), listed and revoked from both, refused once expired, and their last use recorded.

A token made on the page acts only within that organization. One made on the command line
acts within the organization named (``--org``, or the person's only one); only on explicit
request (``--all-orgs``) does it act with all the person's roles. The admin page lists, and
lets revoke, both the organization's tokens and the organization-less tokens of its members
(they reach the organization's data too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from engine import db
from engine.access.actor import Actor, Grant
from engine.accounts import service as accounts
from engine.accounts.members import member_ids
from engine.accounts.models import (
    SCOPED_ROLES,
    ApiToken,
    Membership,
    Organization,
    User,
    membership_establishment,
)
from engine.accounts.queries import existing_user, user_with_email
from engine.db import MAX_ID, utcnow
from engine.errors import Invalid, NotFound
from engine.identifiers import is_digits

# "Last used" is written when it is older than this: a busy token costs one write per period,
# not one per request.
LAST_USE_EVERY = timedelta(minutes=5)
MAX_EXPIRY_DAYS = 3650

ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"


@dataclass
class TokenRow:
    token: ApiToken
    email: str
    org_slug: str | None  # None: acts in every organization of its person
    status: str


def status_of(row: ApiToken, now: datetime | None = None) -> str:
    if row.revoked_at is not None:
        return REVOKED
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return EXPIRED
    return ACTIVE


def expiry(expires_in_days: int | str | None, *, now: datetime | None = None) -> datetime | None:
    """The expiry of a token valid for that many days (blank: no expiry)."""
    if expires_in_days is None or (
        isinstance(expires_in_days, str) and not expires_in_days.strip()
    ):
        return None
    try:
        days = int(expires_in_days)
    except (TypeError, ValueError):
        raise Invalid({"expires_in_days": "Informe um número inteiro de dias."}) from None
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise Invalid({"expires_in_days": f"Entre 1 e {MAX_EXPIRY_DAYS} dias."})
    return (now or utcnow()) + timedelta(days=days)


def _rows(session: Session, stmt) -> list[TokenRow]:
    now = utcnow()
    return [
        TokenRow(token, email, slug, status_of(token, now))
        for token, email, slug in session.execute(stmt)
    ]


def _listing():
    return (
        select(ApiToken, User.email, Organization.slug)
        .join(User, User.id == ApiToken.user_id)
        .outerjoin(Organization, Organization.id == ApiToken.org_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )


def _acts_in(org_id: int):
    """Tokens that reach the organization: minted for it, or organization-less of a member."""
    return or_(
        ApiToken.org_id == org_id,
        and_(
            ApiToken.org_id.is_(None),
            ApiToken.user_id.in_(select(Membership.user_id).where(Membership.org_id == org_id)),
        ),
    )


# ---------------------------------------------------------------- the admin page


def list_tokens(session: Session, actor: Actor, org_id: int) -> list[TokenRow]:
    actor.require_role(org_id, "admin", "token.list")
    return _rows(session, _listing().where(_acts_in(org_id)))


def create(
    session: Session,
    actor: Actor,
    org_id: int,
    email: str,
    name: str,
    expires_in_days: int | str | None = None,
) -> str:
    actor.require_role(org_id, "admin", "token.create")
    user = user_with_email(session, email)
    if user is None or user.id not in set(session.scalars(member_ids(session, org_id))):
        raise Invalid({"email": "Esta pessoa não é membro da organização."})
    return accounts.create_token(session, actor, user.email, (name or "").strip()[:100],
                                 org_id=org_id, expires_at=expiry(expires_in_days))  # fmt: skip


def revoke(session: Session, actor: Actor, org_id: int, token_id: int) -> None:
    actor.require_role(org_id, "admin", "token.revoke")
    row = session.scalar(select(ApiToken).where(ApiToken.id == token_id, _acts_in(org_id)))
    if row is None:
        raise NotFound("Token não encontrado.")
    accounts.revoke_token(session, actor, row)


# ---------------------------------------------------------------- the command line


def create_for(
    session: Session,
    actor: Actor,
    email: str,
    name: str = "",
    *,
    org_slug: str | None = None,
    all_orgs: bool = False,
    expires_in_days: int | str | None = None,
) -> str:
    """A token made by the installation's operator, bound to one organization of the person."""
    user = existing_user(session, email)
    orgs = dict(
        session.execute(
            select(Organization.slug, Organization.id)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == user.id)
        ).all()
    )
    if org_slug and all_orgs:
        raise Invalid({"org": "Use --org ou --all-orgs, não os dois."})
    if all_orgs:
        org_id = None
    elif org_slug:
        if org_slug not in orgs:
            accounts.get_org(session, org_slug)  # NotFound for an unknown slug
            raise Invalid({"org": f"{user.email} não tem papel em '{org_slug}'."})
        org_id = orgs[org_slug]
    elif len(orgs) == 1:
        org_id = next(iter(orgs.values()))
    elif not orgs:
        raise Invalid({"org": f"{user.email} não tem papel em nenhuma organização."})
    else:
        raise Invalid({"org": f"{user.email} tem papéis em {', '.join(sorted(orgs))}; "
                              "informe --org (ou --all-orgs)."})  # fmt: skip
    return accounts.create_token(session, actor, user.email, (name or "").strip()[:100],
                                 org_id=org_id, expires_at=expiry(expires_in_days))  # fmt: skip


def list_all(session: Session, org_slug: str | None = None) -> list[TokenRow]:
    """Every token of the installation, or those that reach one organization."""
    stmt = _listing()
    if org_slug:
        stmt = stmt.where(_acts_in(accounts.get_org(session, org_slug).id))
    return _rows(session, stmt)


def revoke_ref(session: Session, actor: Actor, ref: str) -> ApiToken:
    """Revoke by id or by the prefix shown in the listings (``cred_xxxxxxx``)."""
    ref = (ref or "").strip()
    if is_digits(ref):
        number = int(ref)  # a number beyond any id names no token
        found = select(ApiToken).where(ApiToken.id == number)
        rows = list(session.scalars(found)) if number <= MAX_ID else []
    elif len(ref) >= 8:
        rows = list(
            session.scalars(
                select(ApiToken).where(ApiToken.prefix.startswith(ref[:12], autoescape=True))
            )
        )
    else:
        raise Invalid(
            {"token": "Informe o id do token ou o seu prefixo (cred_… 8 a 12 caracteres)."}
        )
    if not rows:
        raise NotFound(f"Token '{ref}' não encontrado.")
    if len(rows) > 1:
        ids = ", ".join(str(r.id) for r in rows)
        raise Invalid({"token": f"O prefixo '{ref}' é de mais de um token (ids {ids}); use o id."})
    accounts.revoke_token(session, actor, rows[0])
    return rows[0]


# ---------------------------------------------------------------- use by the API


@dataclass
class TokenCheck:
    actor: Actor
    token_id: int
    record_use: bool  # "last used" is stale: write it (record_use) after the request


# Built once (a request only binds the token's hash and the time): the token with its person,
# and the person's grants — in the token's organization only, for a token of one — with their
# establishments, one row per (grant, establishment).
_TOKEN_GRANTS = (
    select(ApiToken.id, ApiToken.org_id, ApiToken.last_used_at, User.id, User.email,
           User.locale, Membership.id, Membership.org_id, Membership.role,
           membership_establishment.c.establishment_id)
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(Membership, and_(
        Membership.user_id == User.id,
        or_(ApiToken.org_id.is_(None), Membership.org_id == ApiToken.org_id),
    ))
    .outerjoin(membership_establishment,
               membership_establishment.c.membership_id == Membership.id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")),
        User.active.is_(True),
    )
    .order_by(Membership.id)
)  # fmt: skip


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> TokenCheck | None:
    """The actor of a live token (not revoked, not expired, of an active person), or None.

    Every API request asks this: one statement, no ORM objects — the token with its person,
    the person's grants in the token's organization and their establishments, one row per
    (grant, establishment) (what ``accounts.live_token`` and ``accounts.load_actor`` read, in
    four)."""
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    now = now or utcnow()
    # On the session's connection, as Core: plain rows, none of the ORM's statement handling.
    params = {"token_hash": accounts._token_hash(token), "now": now}
    rows = db.send(session.connection(), _TOKEN_GRANTS, params).rows
    if not rows:
        return None
    token_id, _org_id, last_used_at, user_id, email, locale = rows[0][:6]
    grants: dict[int, tuple[int, str, set[int]]] = {}
    for *_, membership_id, grant_org, role, establishment_id in rows:
        if membership_id is None:
            continue
        entry = grants.setdefault(membership_id, (grant_org, role, set()))
        if establishment_id is not None:
            entry[2].add(establishment_id)
    actor = Actor(
        user_id=user_id,
        label=email,
        grants=tuple(
            Grant(org_id=o, role=r, establishment_ids=frozenset(e) if r in SCOPED_ROLES else None)
            for o, r, e in grants.values()
        ),
        locale=locale,
    )
    stale = last_used_at is None or last_used_at <= now - LAST_USE_EVERY
    return TokenCheck(actor, token_id, stale)


def record_use(session: Session, token_id: int, *, now: datetime | None = None) -> bool:
    """Write the token's last use unless a request of the last few minutes did."""
    now = now or utcnow()
    done = session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USE_EVERY),
        )
        .values(last_used_at=now)
    )
    return bool(done.rowcount)
