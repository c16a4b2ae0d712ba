"""Read models of users and organizations for the pages and the CLI."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts.models import Membership, Organization, User
from engine.errors import NotFound


def emails(
    session: Session, actor: Actor, org_id: int, user_ids: Iterable[int | None]
) -> dict[int, str]:
    """The e-mails of the given users (None ignored), to name who did what on a page."""
    if not actor.is_member(org_id):
        raise actor.deny("Sem acesso a esta organização.", action="user.read", org_id=org_id)
    ids = set(user_ids) - {None}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()
    return {user_id: email for user_id, email in rows}


def user_by_email(session: Session, email: str) -> User | None:
    """The account with this e-mail (sign-in bookkeeping; no actor exists yet)."""
    return session.scalar(select(User).where(User.email == email)) if email else None


def user_with_email(session: Session, email: str | None) -> User | None:
    """The account with this e-mail as typed (surrounding spaces and case do not matter)."""
    return session.scalar(select(User).where(User.email == (email or "").strip().lower()))


def existing_user(session: Session, email: str) -> User:
    user = user_with_email(session, email)
    if user is None:
        raise NotFound(f"Usuário '{email}' não encontrado.")
    return user


def membership_org_ids(session: Session, user_id: int) -> list[int]:
    """The organizations a user holds any role in, sorted."""
    return sorted(
        set(session.scalars(select(Membership.org_id).where(Membership.user_id == user_id)))
    )


def organizations(session: Session, actor: Actor) -> list[Organization]:
    """The organizations the actor belongs to, by name (every one for the system actor)."""
    stmt = select(Organization).order_by(Organization.name)
    if not actor.is_system:
        stmt = stmt.where(Organization.id.in_(actor.org_ids))
    return list(session.scalars(stmt))


def organization_slugs(session: Session, actor: Actor) -> list[tuple[int, str]]:
    """(id, slug) of every organization of the installation, by id (the system actor only)."""
    if not actor.is_system:
        raise actor.deny("Apenas o sistema lista todas as organizações.", action="org.list",
                         org_id=None)  # fmt: skip
    rows = session.execute(
        select(Organization.id, Organization.slug).order_by(Organization.id)
    ).all()
    return [(org_id, slug) for org_id, slug in rows]
