"""Invitations: how a person who is not yet a member comes into an organization.

An admin cannot attach someone to their organization by e-mail alone: that would let any
admin pull in (and learn of) any account of the installation. They invite instead; the link
goes by e-mail (the outbox) to that address, and only its holder accepts — signed in with
that account if it exists, or by choosing a password if not. The admin's answer and what is
stored are the same either way, so nothing tells them whether the e-mail has an account.

The link carries 256 random bits; only their SHA-256 is stored, with the expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts import passwords
from engine.accounts import service as accounts
from engine.accounts.models import Invitation, Organization, User
from engine.audit import service as audit
from engine.db import utcnow
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments.models import Establishment
from engine.notifications import service as notifications
from engine.notifications.render import language, render

VALID_FOR = timedelta(days=7)
PATH = "/convites/"
KIND = "invitation"
GONE = "Este convite expirou, foi cancelado ou já foi usado."

ROLE_NAMES = {
    "pt_BR": {
        "admin": "Administrador", "gestor": "Gestor", "integrador": "Integrador",
        "datasus": "DATASUS", "auditor": "Auditor", "gestor_municipal": "Gestor municipal",
        "admin_municipal": "Administrador municipal",
        "admin_instalacao": "Administrador da instalação",
    },
    "en": {
        "admin": "Administrator", "gestor": "Manager", "integrador": "Integrator",
        "datasus": "DATASUS", "auditor": "Auditor", "gestor_municipal": "Municipal manager",
        "admin_municipal": "Municipal administrator",
        "admin_instalacao": "Installation administrator",
    },
}  # fmt: skip


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _pending(now: datetime):
    return (
        Invitation.accepted_at.is_(None),
        Invitation.cancelled_at.is_(None),
        Invitation.expires_at > now,
    )


@dataclass
class Pending:
    invitation: Invitation
    expired: bool


def invite(
    session: Session,
    actor: Actor,
    org_id: int,
    grant: accounts.GrantRequest,
    settings: Any,
    *,
    now: datetime | None = None,
) -> Invitation:
    """Invite ``grant.email`` to the role; e-mail them the link. Inviting the same e-mail to
    the same role again replaces the earlier link (a new one, a new expiry)."""
    actor.require_role(org_id, "admin", "member.invite")
    if grant.org.id != org_id:
        raise NotFound("Organização não encontrada.")
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = session.scalar(
        select(Invitation).where(
            Invitation.org_id == org_id,
            Invitation.email == grant.email,
            Invitation.role == grant.role,
            Invitation.accepted_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
    )
    if row is None:
        row = Invitation(org_id=org_id, email=grant.email, role=grant.role)
        session.add(row)
    row.name = grant.name
    row.establishments = sorted(e.cnes for e in grant.establishments)
    row.token_hash = _hash(token)
    row.invited_by_id = actor.user_id
    row.created_at, row.expires_at = now, now + VALID_FOR
    session.flush()
    # The person's language if they have an account (the message is the same otherwise).
    user = session.scalar(select(User).where(User.email == grant.email))
    lang = language(user.locale if user is not None else None)
    rendered = render(
        KIND,
        lang,
        {
            "org_name": grant.org.name,
            "role_name": ROLE_NAMES[lang].get(grant.role, grant.role),
            "inviter": actor.label,
            "email": grant.email,
            "expires_at": row.expires_at,
            "link": settings.base_url.rstrip("/") + PATH + token,
        },
        tz=settings.timezone,
    )
    # Addressed by e-mail, not by account: the outbox row does not say whether one exists.
    notifications.enqueue_email(session, None, rendered, kind=KIND, mail_from=settings.mail_from,
                                org_id=org_id, to_addr=grant.email)  # fmt: skip
    audit.record(session, actor, "user.invited", org_id=org_id, entity_type="invitation",
                 entity_id=row.id, data={"email": grant.email, "role": grant.role,
                                         "establishments": row.establishments,
                                         "expires_at": row.expires_at.isoformat()})  # fmt: skip
    return row


def pending(session: Session, actor: Actor, org_id: int) -> list[Pending]:
    """The organization's invitations not yet accepted nor cancelled (expired ones too)."""
    actor.require_role(org_id, "admin", "member.list")
    now = utcnow()
    rows = session.scalars(
        select(Invitation)
        .where(
            Invitation.org_id == org_id,
            Invitation.accepted_at.is_(None),
            Invitation.cancelled_at.is_(None),
        )
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    ).all()
    return [Pending(row, row.expires_at <= now) for row in rows]


def cancel(session: Session, actor: Actor, org_id: int, invitation_id: int) -> None:
    actor.require_role(org_id, "admin", "member.invite")
    row = session.get(Invitation, invitation_id)
    if row is None or row.org_id != org_id:
        raise NotFound("Convite não encontrado.")
    if row.accepted_at is not None or row.cancelled_at is not None:
        return
    row.cancelled_at = utcnow()
    audit.record(session, actor, "user.invitation_cancelled", org_id=org_id,
                 entity_type="invitation", entity_id=row.id,
                 data={"email": row.email, "role": row.role})  # fmt: skip


# ---------------------------------------------------------------- the invited person


@dataclass
class Opened:
    invitation: Invitation
    organization: Organization
    has_account: bool


def open_link(session: Session, token: str, *, now: datetime | None = None) -> Opened:
    """The invitation behind a link, if it can still be accepted."""
    if not token or not isinstance(token, str) or len(token) > 100:
        raise NotFound(GONE)
    row = session.scalar(
        select(Invitation).where(Invitation.token_hash == _hash(token), *_pending(now or utcnow()))
    )
    if row is None:
        raise NotFound(GONE)
    has_account = session.scalar(select(User.id).where(User.email == row.email)) is not None
    return Opened(row, session.get(Organization, row.org_id), has_account)


def _take(session: Session, token: str, user_id: int, now: datetime) -> Invitation:
    """Mark the invitation accepted; exactly one of two simultaneous acceptances gets it."""
    taken = session.execute(
        update(Invitation)
        .where(Invitation.token_hash == _hash(token), *_pending(now))
        .values(accepted_at=now, accepted_by_id=user_id)
        .returning(Invitation.id)
    ).scalar_one_or_none()
    if taken is None:
        raise Conflict(GONE)
    return session.get(Invitation, taken)


def _grant(session: Session, actor: Actor, row: Invitation, user: User) -> None:
    org = session.get(Organization, row.org_id)
    # Establishments deleted since the invitation are simply left out.
    found = session.scalars(
        select(Establishment).where(
            Establishment.org_id == org.id, Establishment.cnes.in_(row.establishments or [])
        )
    ).all()
    grant = accounts.GrantRequest(org, row.email, row.role, list(found), row.name)
    accounts.add_membership(session, actor, user, grant)
    audit.record(session, actor, "user.invitation_accepted", org_id=org.id,
                 entity_type="invitation", entity_id=row.id,
                 data={"email": row.email, "role": row.role})  # fmt: skip


def accept(
    session: Session, user_id: int, token: str, *, now: datetime | None = None
) -> Invitation:
    """The signed-in person accepts: the invitation must be for their own e-mail."""
    now = now or utcnow()
    opened = open_link(session, token, now=now)
    user = session.get(User, user_id)
    if user is None or not user.active or opened.invitation.email != user.email:
        raise Invalid(
            {"email": "Este convite foi enviado para outro e-mail; entre com a conta convidada."}
        )
    row = _take(session, token, user.id, now)
    _grant(session, accounts.load_actor(session, user), row, user)
    return row


def accept_new(
    session: Session, token: str, *, name: str, password: str, now: datetime | None = None
) -> User:
    """Someone without an account accepts by choosing a password: the account is created."""
    now = now or utcnow()
    opened = open_link(session, token, now=now)
    if opened.has_account:
        raise Conflict("Já existe uma conta com este e-mail: entre com ela para aceitar o convite.")
    name = (name or "").strip() or opened.invitation.name
    if len(name) > 200:
        raise Invalid({"name": "No máximo 200 caracteres."})
    email = opened.invitation.email
    passwords.check_new_password(password, email=email)
    who = Actor(user_id=None, label=email)
    user = accounts.new_user(session, who, email, name, password, org_id=opened.invitation.org_id)
    row = _take(session, token, user.id, now)
    _grant(session, Actor(user_id=user.id, label=email), row, user)
    return user
