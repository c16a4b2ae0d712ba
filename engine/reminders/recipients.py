"""Who a reminder goes to: the active holders of a role, by organization and establishment."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts.models import SCOPED_ROLES, Membership, User, membership_establishment
from engine.establishments.models import Establishment
from engine.reminders.delivery import CHUNK


def role_holders(
    session: Session, org_ids: Iterable[int], establishment_ids: Iterable[int], roles: Sequence[str]
) -> dict[tuple[int, str, int | None], list[User]]:
    """Active users by (org, role, establishment) for scoped roles and (org, role, None) for
    organization-wide ones."""
    org_ids, est_ids = sorted(set(org_ids)), sorted(set(establishment_ids))
    out: dict[tuple[int, str, int | None], list[User]] = defaultdict(list)
    if not org_ids:
        return out
    scoped = [r for r in roles if r in SCOPED_ROLES]
    wide = [r for r in roles if r not in SCOPED_ROLES]
    if scoped and est_ids:
        rows = session.execute(
            select(
                Membership.org_id,
                Membership.role,
                membership_establishment.c.establishment_id,
                User,
            )
            .join(
                membership_establishment, membership_establishment.c.membership_id == Membership.id
            )
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.org_id.in_(org_ids),
                Membership.role.in_(scoped),
                User.active.is_(True),
                membership_establishment.c.establishment_id.in_(est_ids),
            )
            .order_by(User.id)
        ).all()
        for org_id, role, est_id, user in rows:
            out[(org_id, role, est_id)].append(user)
    if wide:
        rows = session.execute(
            select(Membership.org_id, Membership.role, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.org_id.in_(org_ids), Membership.role.in_(wide), User.active.is_(True))
            .order_by(User.id)
        ).all()
        for org_id, role, user in rows:
            out[(org_id, role, None)].append(user)
    return out


def establishments_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, Establishment]:
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, Establishment] = {}
    for i in range(0, len(wanted), CHUNK):
        for est in session.scalars(
            select(Establishment).where(Establishment.id.in_(wanted[i : i + CHUNK]))
        ):
            found[est.id] = est
    return found


def est_context(est: Establishment | None) -> dict[str, str]:
    if est is None:
        return {"establishment": "—", "cnes": "—"}
    return {"establishment": est.nome_fantasia or est.razao_social, "cnes": est.cnes}


def unique_users(*groups: Iterable[User]) -> list[User]:
    seen: dict[int, User] = {}
    for group in groups:
        for user in group:
            seen.setdefault(user.id, user)
    return list(seen.values())
