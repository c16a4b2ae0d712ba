"""Fixtures for the attack tests: two organizations with one of everything, a signed-in page
client and an API token for every role.

Organization A (``sesa-pr``) has establishments A1 (every scoped user's) and A2 (nobody's
but the org-wide roles' and ``gestor2``'s); organization B (``sesa-sp``) has B1. Each
establishment has a running credentialing instance with a ready Gestor task, a stored file
attached to it and audit events. A2's and B's data carry marker strings (``EST_MARKERS``,
``ORG_MARKERS``) that must never appear in a response to someone who may not see them.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from engine.accounts.models import ApiToken, Membership, User
from engine.audit.models import AuditEvent
from engine.credentials import service as credentials
from engine.notifications import service as notifications
from engine.notifications.models import OutboxMessage
from tests.support.builders import cast
from tests.support.security import (
    ORG_A,
    ORG_B,
    ROLES,
    SCOPED,
    SecWorld,
    build_side,
)


@pytest.fixture
def sec(make, db) -> SecWorld:
    people = cast(
        make, ORG_A, "Secretaria da Saúde do Paraná", roles=ROLES, scoped=SCOPED,
        emails={role: f"{role.replace('_', '.')}@pr.gov.br" for role in ROLES},
        others=({"uf": "PR", "municipio": "Londrina", "razao_social": "Posto Reservado A2 Ltda",
                 "nome_fantasia": "Reservado"},),
        uf="PR", razao_social="Hospital Aberto A1 Ltda",
    )  # fmt: skip
    org_a, a1, a2, users = people.org, people.est, people.others[0], people.users
    gestor2 = make.user(ORG_A, "gestor", a2.cnes, email="gestor.a2@pr.gov.br")
    spare = make.user(ORG_A, "auditor", email="substituto@pr.gov.br")  # loses the role
    robot = make.user(ORG_A, "integrador", a1.cnes, email="robo@pr.gov.br")  # loses the token
    org_b = make.org(ORG_B, "Secretaria da Saúde de São Paulo")
    b1 = make.establishment(org_b, uf="SP", municipio="Campinas",
                            razao_social="Clínica Sigilosa SP Ltda", nome_fantasia="Sigilosa")  # fmt: skip
    admin_b = make.user(ORG_B, "admin", email="admin.sigiloso.sp@sp.gov.br")
    gestor_b = make.user(ORG_B, "gestor", b1.cnes, email="gestor.sigiloso.sp@sp.gov.br")
    own = build_side(db, make, org_a, ORG_A, a1, users["admin"], users["gestor"], "aberto-a1")
    est = build_side(db, make, org_a, ORG_A, a2, users["admin"], gestor2, "segredo-do-a2")
    other = build_side(db, make, org_b, ORG_B, b1, admin_b, gestor_b, "segredo-da-org-b")
    with db.read() as s:
        event_a = s.scalar(select(func.min(AuditEvent.id)).where(AuditEvent.org_id == org_a))
        event_b = s.scalar(
            select(func.max(AuditEvent.id)).where(
                AuditEvent.org_id == org_b, AuditEvent.action == "comment.created"
            )
        )
        membership_a = s.scalar(select(Membership.id).join(User).where(User.email == spare.email))
        membership_b = s.scalar(
            select(Membership.id).join(User).where(User.email == gestor_b.email)
        )
        token_a = s.scalar(select(ApiToken.id).join(User).where(User.email == robot.email))
        token_b = s.scalar(select(ApiToken.id).join(User).where(User.email == admin_b.email))
    with db.write() as s:  # as if each organization's admin had minted them (org-bound tokens)
        s.get(ApiToken, token_a).org_id = org_a
        s.get(ApiToken, token_b).org_id = org_b
    with db.read() as s:
        from engine.definitions.models import ProcessDefinition

        definition_id = s.scalar(select(func.min(ProcessDefinition.id)))
    with db.write() as s:
        notes = [
            notifications.notify(s, user.actor.user_id, kind="overdue_digest", org_id=org,
                                 title=f"Tarefas atrasadas {marker}", link="/")
            for user, org, marker in ((users["gestor"], org_a, "aberto-a1"),
                                      (admin_b, org_b, "segredo-da-org-b"))
        ]  # fmt: skip
        messages = [
            OutboxMessage(org_id=org, user_id=user.actor.user_id, kind="overdue_digest",
                          to_addr=user.email, subject=f"Aviso {marker}", body_text="corpo",
                          status="failed", attempts=8, last_error="smtp fora do ar")
            for user, org, marker in ((users["gestor"], org_a, "aberto-a1"),
                                      (admin_b, org_b, "segredo-da-org-b"))
        ]  # fmt: skip
        s.add_all(messages)
        s.flush()
        ids = [n.id for n in notes] + [m.id for m in messages]
    with db.write() as s:  # each establishment holds a credential (REL), as an import brings it
        held = {variant: credentials.register(s, admin.actor, org_id=side.org_id, portfolio_code="REL",
                                              establishment_cnes=side.est.cnes, status="producao",
                                              requester_id=f"9000{i}").id
                for i, (variant, side, admin) in enumerate((("own", own, users["admin"]),
                                                            ("est", est, users["admin"]),
                                                            ("org", other, admin_b)))}  # fmt: skip
    return SecWorld(users, own, est, other, event_a, event_b, membership_a, membership_b,
                    token_a, token_b, definition_id, admin_b, *ids,
                    extra={"credentials": held})  # fmt: skip


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests sign a dozen people in per test; Argon2 with the production cost (~0.1 s a
    hash on this machine) would dominate them. The hashing itself is not under test here."""
    from argon2 import PasswordHasher

    from engine.accounts import service as accounts

    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def settings(settings):
    """The app under test accepts the tests' self-signed certificates."""
    return dataclasses.replace(settings, certificate_require_icp_brasil=False)


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app
