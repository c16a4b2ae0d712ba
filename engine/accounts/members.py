"""An organization's members: who holds which role, granted and revoked by its admins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.access.actor import Actor
from engine.accounts import invitations
from engine.accounts import service as accounts
from engine.accounts.models import ROLES, SCOPED_ROLES, Membership, User, membership_establishment
from engine.audit import service as audit
from engine.errors import Conflict, Invalid, NotFound
from engine.runtime.models import READY, Task

LOCALES = ("pt_BR", "en")


@dataclass
class Member:
    user: User
    memberships: list[Membership]


def members(session: Session, actor: Actor, org_id: int) -> list[Member]:
    actor.require_role(org_id, "admin", "member.list")
    rows = session.scalars(
        select(Membership)
        .where(Membership.org_id == org_id)
        .options(selectinload(Membership.user), selectinload(Membership.establishments))
        .order_by(Membership.user_id, Membership.role)
    ).all()
    grouped: dict[int, Member] = {}
    for m in rows:
        grouped.setdefault(m.user_id, Member(m.user, [])).memberships.append(m)
    return sorted(grouped.values(), key=lambda x: x.user.email)


GRANTED, INVITED = "granted", "invited"


def grant_role(session: Session, actor: Actor, org_id: int, org_slug: str, *, email: str, role: str,
               cnes: list[str], name: str = "", settings: Any) -> str:  # fmt: skip
    """Give ``role`` to a member of the organization, or invite anyone else (with or without
    an account: the answer is the same). Returns GRANTED or INVITED."""
    actor.require_role(org_id, "admin", "member.grant")
    if role in SCOPED_ROLES and not cnes:
        raise Invalid(
            {"establishments": "Escolha ao menos um estabelecimento para gestor ou integrador."}
        )
    grant = accounts.check_grant(session, email, org_slug=org_slug, role=role,
                                 establishments=cnes, name=name)  # fmt: skip
    if grant.org.id != org_id:
        raise NotFound("Organização não encontrada.")
    member = session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(User.email == grant.email, Membership.org_id == org_id)
        .limit(1)
    )
    if member is not None:  # already listed on the admin's page: nothing to reveal
        accounts.add_membership(session, actor, member, grant)
        return GRANTED
    invitations.invite(session, actor, org_id, grant, settings)
    return INVITED


def revoke_role(session: Session, actor: Actor, org_id: int, membership_id: int) -> None:
    """Take a role away; the tasks the person had claimed in it go back to the lane (each
    release audited), in the same transaction."""
    actor.require_role(org_id, "admin", "member.revoke")
    membership = session.get(Membership, membership_id)
    if membership is None or membership.org_id != org_id:
        raise NotFound("Papel não encontrado.")
    if membership.user_id == actor.user_id and membership.role == "admin":
        raise Conflict("Você não pode retirar o seu próprio papel de administrador.")
    user = session.get(User, membership.user_id)
    data = {"role": membership.role, "email": user.email if user else ""}
    user_id, role = membership.user_id, membership.role
    session.delete(membership)
    session.flush()
    audit.record(session, actor, "user.role_revoked", org_id=org_id, entity_type="user",
                 entity_id=user_id, data=data)  # fmt: skip
    _release_tasks(session, actor, org_id, user_id, role)


def _release_tasks(session: Session, actor: Actor, org_id: int, user_id: int, role: str,
                   reason: str = "role_revoked") -> None:  # fmt: skip
    """Open tasks of the role's lane claimed by the person (the lane is the task's role; a
    person holds a role once per organization, so all of them lose their holder)."""
    tasks = session.scalars(
        select(Task)
        .where(
            Task.org_id == org_id,
            Task.assignee_id == user_id,
            Task.role == role,
            Task.state == READY,
        )
        .order_by(Task.created_at, Task.id)
        .with_for_update()
    ).all()
    for task in tasks:
        task.assignee_id, task.claimed_at = None, None
        audit.record(session, actor, "task.released", org_id=org_id, entity_type="instance",
                     entity_id=task.instance_id,
                     data={"task": task.id, "name": task.name, "previous_assignee": user_id,
                           "reason": reason})  # fmt: skip


def member_ids(session: Session, org_id: int):
    return select(Membership.user_id).where(Membership.org_id == org_id)


def set_locale(session: Session, actor: Actor, locale: str) -> None:
    if locale not in LOCALES or actor.user_id is None:
        return
    user = session.get(User, actor.user_id)
    if user is not None and user.locale != locale:
        user.locale = locale


def lane_users(session: Session, org_id: int, role: str, establishment_id: int | None) -> list[str]:
    """E-mails of the people who hold ``role`` for the establishment (reassign choices)."""
    stmt = (
        select(User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id, Membership.role == role, User.active.is_(True))
    )
    if role in SCOPED_ROLES:
        stmt = stmt.join(
            membership_establishment, membership_establishment.c.membership_id == Membership.id
        ).where(membership_establishment.c.establishment_id == establishment_id)
    return sorted(set(session.scalars(stmt)))


def roles() -> tuple[str, ...]:
    return ROLES
