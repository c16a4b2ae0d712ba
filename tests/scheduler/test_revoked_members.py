"""A member whose role is revoked loses the tasks they had claimed in it (released to the
lane, audited, in the revocation's transaction) and no longer gets reminders for them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import delete, select

from engine.accounts import members
from engine.accounts.models import Membership
from engine.audit.models import AuditEvent
from engine.notifications import delivery
from engine.reminders import service as reminders
from engine.runtime.models import Task
from tests.support.scheduler import add_tasks

SP = ZoneInfo("America/Sao_Paulo")
WED = datetime(2027, 3, 3, 9, 0, tzinfo=SP)


def _membership(db, user, role: str) -> int:
    with db.read() as s:
        return s.scalar(
            select(Membership.id).where(
                Membership.user_id == user.actor.user_id, Membership.role == role
            )
        )


def _claimed(db, people, **extra) -> list[str]:
    org, est = people["org"], people["est"].id
    past, created = WED - timedelta(days=3), WED - timedelta(days=12)
    return add_tasks(db, org_id=org, establishment_id=est, created_at=created, due_at=past,
                     **extra)  # fmt: skip


def test_revoking_a_role_releases_the_tasks_claimed_in_it(db, people) -> None:
    users = people["users"]
    integrador = users["integrador"]
    mine = _claimed(db, people, count=2, lane="Integrador", role="integrador",
                    name="Desenvolver conector", assignee_id=integrador.actor.user_id)  # fmt: skip
    others = _claimed(db, people, lane="Gestor", role="gestor", name="Solicitar acesso",
                      assignee_id=users["gestor"].actor.user_id)  # fmt: skip
    with db.write() as s:
        members.revoke_role(s, users["admin"].actor, people["org"],
                            _membership(db, integrador, "integrador"))  # fmt: skip
    with db.read() as s:
        holders = dict(s.execute(select(Task.id, Task.assignee_id)).all())
        claimed_at = dict(s.execute(select(Task.id, Task.claimed_at)).all())
        released = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "task.released").order_by(AuditEvent.seq)
        ).all()
        revoked = s.scalar(select(AuditEvent).where(AuditEvent.action == "user.role_revoked"))
    assert [holders[t] for t in mine] == [None, None]
    assert [claimed_at[t] for t in mine] == [None, None]
    assert holders[others[0]] == users["gestor"].actor.user_id  # someone else's claim stays
    assert sorted(e.data["task"] for e in released) == sorted(mine)
    assert {
        (e.actor, e.org_id, e.data["reason"], e.data["previous_assignee"]) for e in released
    } == {(users["admin"].email, people["org"], "role_revoked", integrador.actor.user_id)}
    # Written in the revocation's transaction: right after it in the chain.
    assert all(e.seq > revoked.seq for e in released)


def test_a_failed_revocation_releases_nothing(db, people) -> None:
    users = people["users"]
    admin = users["admin"]
    task = _claimed(db, people, lane="Integrador", role="integrador",
                    assignee_id=admin.actor.user_id)  # fmt: skip
    with pytest.raises(Exception, match="próprio papel de administrador"), db.write() as s:
        members.revoke_role(s, admin.actor, people["org"], _membership(db, admin, "admin"))
    with db.read() as s:
        assert s.get(Task, task[0]).assignee_id == admin.actor.user_id


def test_digests_go_only_to_current_members(db, people, mail_settings, smtp) -> None:
    users = people["users"]
    integrador, other = users["integrador"], users["other_gestor"]
    _claimed(db, people, lane="Integrador", role="integrador", name="Desenvolver conector",
             assignee_id=integrador.actor.user_id)  # fmt: skip
    # A claim left from before a membership ended (here: the row deleted by hand), and one
    # held by someone who never had this establishment's lane.
    _claimed(db, people, lane="Gestor", role="gestor", name="Solicitar acesso",
             assignee_id=other.actor.user_id)  # fmt: skip
    with db.write() as s:
        s.execute(delete(Membership).where(Membership.user_id == integrador.actor.user_id))
    with time_machine.travel(WED, tick=True):
        summary = reminders.send_daily_digests(db, mail_settings)
        delivery.deliver_due(db, mail_settings)
    assert summary.sent == 0
    assert smtp.inbox.to("integrador@lab.test") == [] and smtp.inbox.to("gestor@outro.test") == []


def test_released_tasks_are_in_the_lanes_digest(db, people, mail_settings, smtp) -> None:
    users = people["users"]
    gestor = users["gestor"]
    _claimed(db, people, lane="Gestor", role="gestor", name="Solicitar acesso",
             assignee_id=gestor.actor.user_id)  # fmt: skip
    second = add_second_gestor(db, people)
    with db.write() as s:
        members.revoke_role(s, users["admin"].actor, people["org"],
                            _membership(db, gestor, "gestor"))  # fmt: skip
    with time_machine.travel(WED, tick=True):
        assert reminders.send_daily_digests(db, mail_settings).sent == 1
        delivery.deliver_due(db, mail_settings)
    assert smtp.inbox.to("gestor@lab.test") == []
    assert len(smtp.inbox.to(second)) == 1


def add_second_gestor(db, people) -> str:
    from engine.access.actor import SYSTEM
    from engine.accounts import service as accounts

    email = "gestora2@lab.test"
    with db.write() as s:
        accounts.create_user(s, SYSTEM, email, org_slug="sesa-pr", role="gestor",
                             establishments=[people["est"].cnes], password="senha-da-gestora")  # fmt: skip
    return email
