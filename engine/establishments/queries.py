"""Read models of establishments and portfolios for the pages and the CLI."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.establishments.models import Establishment, Portfolio


def _require_member(actor: Actor, org_id: int, action: str) -> None:
    if not actor.is_member(org_id):
        raise actor.deny("Sem acesso a esta organização.", action=action, org_id=org_id)


def active_portfolios(session: Session) -> list[Portfolio]:
    """The portfolios a credentialing can be started for (the catalogue is installation-wide)."""
    return list(
        session.scalars(
            select(Portfolio).where(Portfolio.active.is_(True)).order_by(Portfolio.code)
        )
    )


def all_portfolios(session: Session, actor: Actor, org_id: int) -> list[Portfolio]:
    """The whole catalogue, inactive portfolios included (administrators)."""
    actor.require_role(org_id, "admin", "portfolio.list")
    return list(session.scalars(select(Portfolio).order_by(Portfolio.code)))


def portfolio_by_code(session: Session, code: str) -> Portfolio | None:
    return session.scalar(select(Portfolio).where(Portfolio.code == code))


def municipios(session: Session, actor: Actor, org_id: int) -> list[str]:
    """The municipalities of the organization's establishments, for the dashboard filter."""
    _require_member(actor, org_id, "establishment.list")
    return sorted(
        set(
            session.scalars(
                select(Establishment.municipio).where(Establishment.org_id == org_id).distinct()
            )
        )
    )


def find_visible(session: Session, actor: Actor, org_id: int, cnes: str) -> Establishment | None:
    """The organization's establishment with this CNES if the actor sees it, else None."""
    est = session.scalar(
        select(Establishment).where(Establishment.org_id == org_id, Establishment.cnes == cnes)
    )
    return est if est is not None and actor.can_see_establishment(org_id, est.id) else None
