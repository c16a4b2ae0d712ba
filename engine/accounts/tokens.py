"""API tokens of an organization's members, listed, made and revoked by its admins."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts import service as accounts
from engine.accounts.members import member_ids
from engine.accounts.models import ApiToken, User
from engine.audit import service as audit
from engine.db import utcnow
from engine.errors import Invalid, NotFound


def list_tokens(session: Session, actor: Actor, org_id: int) -> list[tuple[ApiToken, str]]:
    actor.require_role(org_id, "admin", "token.list")
    return list(
        session.execute(
            select(ApiToken, User.email)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.org_id == org_id)  # only the tokens this organization minted
            .order_by(ApiToken.created_at.desc())
        )
    )


def create(session: Session, actor: Actor, org_id: int, email: str, name: str) -> str:
    actor.require_role(org_id, "admin", "token.create")
    user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None or user.id not in set(session.scalars(member_ids(session, org_id))):
        raise Invalid({"email": "Esta pessoa não é membro da organização."})
    return accounts.create_token(
        session, actor, user.email, (name or "").strip()[:100], org_id=org_id
    )


def revoke(session: Session, actor: Actor, org_id: int, token_id: int) -> None:
    actor.require_role(org_id, "admin", "token.revoke")
    row = session.get(ApiToken, token_id)
    if row is None or row.org_id != org_id:
        raise NotFound("Token não encontrado.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, "token.revoked", org_id=org_id, entity_type="user",
                     entity_id=row.user_id, data={"prefix": row.prefix})  # fmt: skip
