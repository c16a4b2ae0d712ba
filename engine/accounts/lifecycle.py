"""Deactivating and reactivating a person, and the CPF an OpenID provider finds them by.

Deactivation is installation-wide (an account is one person): every web session and API token
ends at once, the tasks they had claimed go back to their lanes, and nobody signs in with the
account — by password or through a provider — until it is reactivated. An organization's admin
may do it only to a person all of whose roles are in organizations they administer (the
installation's operator, from the command line, to anyone). Tokens stay revoked after a
reactivation: the person makes new ones.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts import service as accounts
from engine.accounts.members import _release_tasks
from engine.accounts.models import Membership, User, WebSession
from engine.audit import service as audit
from engine.db import utcnow
from engine.errors import Conflict, Invalid, NotFound


def _target(session: Session, actor: Actor, user_id: int, action: str,
            org_id: int | None) -> tuple[User, list[Membership]]:  # fmt: skip
    """The person, if the actor may (de)activate them: the operator, or an admin of ``org_id``
    where the person is a member and of every other organization where they are."""
    if not actor.is_system:
        actor.require_role(org_id, "admin", action)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("Pessoa não encontrada.")
    memberships = session.scalars(select(Membership).where(Membership.user_id == user.id)).all()
    if not actor.is_system:
        orgs = sorted({m.org_id for m in memberships})
        mine = [o for o in orgs if actor.has_role(o, "admin")]
        if org_id not in orgs:
            raise NotFound("Pessoa não encontrada.")
        if len(mine) < len(orgs):
            raise actor.deny("Esta pessoa também tem papéis em outra organização; peça ao "
                             "operador da instalação.", action=action, org_id=org_id,
                             entity_type="user", entity_id=user.id)  # fmt: skip
        if user.id == actor.user_id:
            raise Conflict("Você não pode desativar a sua própria conta.")
    return user, list(memberships)


def _record(
    session: Session, actor: Actor, action: str, user: User, memberships, data: dict
) -> None:
    for org in sorted({m.org_id for m in memberships}) or [None]:
        audit.record(session, actor, action, org_id=org, entity_type="user", entity_id=user.id,
                     data=data)  # fmt: skip


def deactivate(session: Session, actor: Actor, user_id: int, *, org_id: int | None = None) -> User:
    user, memberships = _target(session, actor, user_id, "user.deactivate", org_id)
    if not user.active:
        return user
    user.active = False
    user.deactivated_at = utcnow()
    sessions = session.execute(delete(WebSession).where(WebSession.user_id == user.id)).rowcount
    tokens = accounts.revoke_user_tokens(session, actor, user, reason="deactivated")
    for m in memberships:
        _release_tasks(session, actor, m.org_id, user.id, m.role, reason="deactivated")
    _record(session, actor, "user.deactivated", user, memberships,
            {"email": user.email, "sessions_ended": sessions or 0, "tokens_revoked": tokens})  # fmt: skip
    return user


def reactivate(session: Session, actor: Actor, user_id: int, *, org_id: int | None = None) -> User:
    user, memberships = _target(session, actor, user_id, "user.reactivate", org_id)
    if user.active:
        return user
    user.active = True
    user.deactivated_at = None
    _record(session, actor, "user.reactivated", user, memberships, {"email": user.email})
    return user


def _cpf_valid(cpf: str) -> bool:
    if len(cpf) != 11 or len(set(cpf)) == 1:
        return False
    for size in (9, 10):
        total = sum(int(d) * w for d, w in zip(cpf[:size], range(size + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != int(cpf[size]):
            return False
    return True


def set_cpf(session: Session, actor: Actor, user: User, cpf: str | None) -> User:
    """Record (or clear, with empty) the person's CPF, checked by its verifier digits."""
    digits = re.sub(r"\D", "", cpf or "")
    if digits and not _cpf_valid(digits):
        raise Invalid({"cpf": "CPF inválido."})
    if digits:
        other = session.scalar(select(User.id).where(User.cpf == digits, User.id != user.id))
        if other is not None:
            raise Conflict("Este CPF já está em outra conta.")
    user.cpf = digits or None
    memberships = session.scalars(select(Membership).where(Membership.user_id == user.id)).all()
    _record(session, actor, "user.cpf_set", user, memberships, {"cpf": bool(digits)})
    return user
