"""Administration of an organization's people: members and roles, API tokens, locale.

Also holds the establishment update, which belongs in ``engine.establishments.service``
(``update``) and moves there once that module has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.accounts import service as accounts
from engine.accounts.actor import Actor
from engine.accounts.models import (
    ROLES,
    SCOPED_ROLES,
    ApiToken,
    Membership,
    User,
    membership_establishment,
)
from engine.audit import service as audit
from engine.db import utcnow
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments import service as establishments
from engine.establishments.models import Establishment
from engine.runtime import counts

LOCALES = ("pt_BR", "en")


@dataclass
class Member:
    user: User
    memberships: list[Membership]


def _require_admin(actor: Actor, org_id: int, action: str) -> None:
    if not actor.has_role(org_id, "admin"):
        raise actor.deny("Apenas administradores da organização.", action=action, org_id=org_id)


def members(session: Session, actor: Actor, org_id: int) -> list[Member]:
    _require_admin(actor, org_id, "member.list")
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


def grant_role(session: Session, actor: Actor, org_id: int, org_slug: str, *, email: str, role: str,
               cnes: list[str], name: str = "") -> tuple[User, str | None]:  # fmt: skip
    """Give ``role`` to the person (created when new); returns the new password, if one was set."""
    _require_admin(actor, org_id, "member.grant")
    if role in SCOPED_ROLES and not cnes:
        raise Invalid(
            {"establishments": "Escolha ao menos um estabelecimento para gestor ou integrador."}
        )
    return accounts.create_user(
        session, actor, email, org_slug=org_slug, role=role, establishments=cnes, name=name
    )


def revoke_role(session: Session, actor: Actor, org_id: int, membership_id: int) -> None:
    _require_admin(actor, org_id, "member.revoke")
    membership = session.get(Membership, membership_id)
    if membership is None or membership.org_id != org_id:
        raise NotFound("Papel não encontrado.")
    if membership.user_id == actor.user_id and membership.role == "admin":
        raise Conflict("Você não pode retirar o seu próprio papel de administrador.")
    user = session.get(User, membership.user_id)
    data = {"role": membership.role, "email": user.email if user else ""}
    session.delete(membership)
    session.flush()
    audit.record(session, actor, "user.role_revoked", org_id=org_id, entity_type="user",
                 entity_id=membership.user_id, data=data)  # fmt: skip


def _member_ids(session: Session, org_id: int):  # type: ignore[no-untyped-def]
    return select(Membership.user_id).where(Membership.org_id == org_id)


def tokens(session: Session, actor: Actor, org_id: int) -> list[tuple[ApiToken, str]]:
    _require_admin(actor, org_id, "token.list")
    return list(
        session.execute(
            select(ApiToken, User.email)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.org_id == org_id)  # only the tokens this organization minted
            .order_by(ApiToken.created_at.desc())
        )
    )


def create_token(session: Session, actor: Actor, org_id: int, email: str, name: str) -> str:
    _require_admin(actor, org_id, "token.create")
    user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None or user.id not in set(session.scalars(_member_ids(session, org_id))):
        raise Invalid({"email": "Esta pessoa não é membro da organização."})
    return accounts.create_token(
        session, actor, user.email, (name or "").strip()[:100], org_id=org_id
    )


def revoke_token(session: Session, actor: Actor, org_id: int, token_id: int) -> None:
    _require_admin(actor, org_id, "token.revoke")
    row = session.get(ApiToken, token_id)
    if row is None or row.org_id != org_id:
        raise NotFound("Token não encontrado.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, "token.revoked", org_id=org_id, entity_type="user",
                     entity_id=row.user_id, data={"prefix": row.prefix})  # fmt: skip


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


def update_establishment(
    session: Session, actor: Actor, org_id: int, cnes: str, raw: dict[str, Any]
) -> Establishment:
    """Change an establishment's register data (the CNES itself does not change)."""
    if not actor.has_role(org_id, "admin"):
        raise actor.deny("Apenas administradores alteram estabelecimentos.", action="establishment.update",
                         org_id=org_id)  # fmt: skip
    est = session.scalar(
        select(Establishment).where(Establishment.org_id == org_id, Establishment.cnes == cnes)
    )
    if est is None:
        raise NotFound(f"Estabelecimento CNES {cnes} não encontrado.")
    values, errors = establishments.clean({**raw, "cnes": est.cnes})
    if errors:
        raise Invalid(errors)
    changed = {k: v for k, v in values.items() if k != "cnes" and getattr(est, k) != v}
    if "uf" in changed:
        counts.establishment_moved(session, org_id, est.id, est.uf, changed["uf"])
    for key, value in changed.items():
        setattr(est, key, value)
    if changed:
        session.flush()
        audit.record(session, actor, "establishment.updated", org_id=org_id, entity_type="establishment",
                     entity_id=est.id, data={"cnes": est.cnes, "changed": changed})  # fmt: skip
    return est
