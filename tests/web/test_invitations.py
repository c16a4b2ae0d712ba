"""An organization's admin cannot pull an existing account into their organization: anyone
who is not yet a member is invited by e-mail and comes in only by accepting, and the
admin's answer is the same whether the e-mail has an account or not."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from engine.accounts.models import ApiToken, Invitation, Membership, User
from engine.audit.models import AuditEvent
from engine.db import utcnow
from engine.notifications import delivery
from engine.notifications.models import OutboxMessage
from tests.support.builders import UserHandle

LINK = re.compile(r"https?://[^\s\"<]+/convites/([A-Za-z0-9_-]{40,})")
SENT = "Convite enviado para {}. O papel vale quando a pessoa aceitar pelo link que recebeu por e-mail."


def _link(db, email: str) -> str:
    """The path of the last invitation e-mailed to ``email``."""
    with db.read() as s:
        message = s.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.to_addr == email, OutboxMessage.kind == "invitation")
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
    assert message is not None, f"no invitation e-mailed to {email}"
    return "/convites/" + LINK.search(message.body_text).group(1)


def _memberships(db, email: str) -> set[tuple[int, str]]:
    with db.read() as s:
        return set(
            s.execute(
                select(Membership.org_id, Membership.role)
                .join(User, User.id == Membership.user_id)
                .where(User.email == email)
            ).all()
        )


def _flash(html: str) -> str:
    found = re.search(r'<span class="message-body">([^<]*)</span>', html)
    return found.group(1) if found else ""


def test_the_answer_is_the_same_whether_the_email_has_an_account_or_not(world, db, pages):
    admin = pages(world.users["admin"])
    known, unknown = world.other_admin.email, "ninguem.ainda@exemplo.gov.br"
    answers = {}
    for email in (known, unknown):
        res = admin.post("/administracao/papeis", {"email": email, "role": "auditor"})
        answers[email] = (res.status_code, _flash(res.get_data(as_text=True)).replace(email, "X"))
    assert answers[known] == answers[unknown] == (200, SENT.format("X"))
    # Nobody was attached, nobody was created: the other organization's admin is untouched.
    assert _memberships(db, known) == {(world.other_org, "admin")}
    with db.read() as s:
        assert s.scalar(select(User).where(User.email == unknown)) is None
        mails = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "invitation")).all()
        invited = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.invited")).all()
    # The e-mails and the audit events look alike too (addressed by e-mail, not by account).
    assert sorted(m.to_addr for m in mails) == sorted([known, unknown])
    assert {(m.user_id, m.org_id, m.subject) for m in mails} == {
        (None, world.org, "[Credencia] Convite para Secretaria da Saúde do Paraná")
    }
    assert {tuple(sorted(e.data)) for e in invited} == {
        ("email", "establishments", "expires_at", "role")
    }
    # The admin sees both as pending invitations, alike.
    html = admin.get("/administracao").get_data(as_text=True)
    section = html[html.index('id="convites"') :]
    assert known in section and unknown in section
    # The other organization's admin keeps using their token as before (no 422 "Informe a
    # organização" because they now belonged to two organizations).
    res = admin.client.get("/api/v1/instances", headers=world.other_admin.headers)
    assert res.status_code == 200


def test_a_member_gets_the_role_at_once(world, db, pages):
    admin = pages(world.users["admin"])
    email = world.users["datasus"].email
    res = admin.post("/administracao/papeis", {"email": email, "role": "auditor"})
    assert f"Papel concedido a {email}." in res.get_data(as_text=True)
    assert (world.org, "auditor") in _memberships(db, email)


def test_an_existing_account_accepts_signed_in(world, db, pages, app):
    admin = pages(world.users["admin"])
    invitee = world.other_admin
    admin.post("/administracao/papeis",
               {"email": invitee.email, "role": "gestor", "cnes": [world.est.cnes]})  # fmt: skip
    link = _link(db, invitee.email)
    with db.read() as s:
        stored = s.scalar(select(Invitation))
    assert link.rsplit("/", 1)[1] not in (stored.token_hash, str(stored.id))  # only a hash kept
    # Not signed in: asked to sign in with that account.
    anon = pages()
    page = anon.get(link).get_data(as_text=True)
    assert "Entrar para aceitar" in page and invitee.email in page
    assert anon.post(link).status_code == 302
    # Signed in as someone else: refused.
    other = pages(world.users["datasus"])
    assert "mas o convite é para" in other.get(link).get_data(as_text=True)
    assert other.post(link).status_code == 422
    assert _memberships(db, invitee.email) == {(world.other_org, "admin")}
    # The invited account accepts.
    me = pages(invitee)
    res = me.post(link)
    assert res.status_code == 302
    assert _memberships(db, invitee.email) == {(world.other_org, "admin"), (world.org, "gestor")}
    with db.read() as s:
        membership = s.scalar(
            select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(User.email == invitee.email, Membership.org_id == world.org)
        )
        assert [e.cnes for e in membership.establishments] == [world.est.cnes]
        actions = [
            e.action
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.org_id == world.org).order_by(AuditEvent.seq)
            )
        ]
        # The token the person had (acting in their only organization) stays bound to it.
        token = s.scalar(select(ApiToken).where(ApiToken.prefix == invitee.token[:12]))
        assert token.org_id == world.other_org
    assert actions[-2:] == ["user.role_granted", "user.invitation_accepted"]
    res = me.client.get("/api/v1/instances", headers=invitee.headers)
    assert res.status_code == 200 and {i["id"] for i in res.json["items"]} == {
        world.other_instance_id
    }
    # Used once: the link is gone, and the admin's pending list is empty.
    assert me.post(link).status_code == 404
    assert anon.get(link).status_code == 404
    assert "Nenhum convite pendente" in admin.get("/administracao").get_data(as_text=True)


def test_a_new_person_creates_an_account_from_the_link(world, db, pages):
    admin = pages(world.users["admin"])
    email = "nova.pessoa@exemplo.gov.br"
    admin.post("/administracao/papeis", {"email": email, "role": "auditor", "name": "Nova"})
    link = _link(db, email)
    visitor = pages()
    page = visitor.get(link).get_data(as_text=True)
    assert "Criar conta e aceitar" in page and 'value="Nova"' in page
    res = visitor.post(link, {"name": "Nova Pessoa", "password": "senha-boa-123",
                              "password2": "outra-coisa"})  # fmt: skip
    assert res.status_code == 422 and "As senhas não conferem" in res.get_data(as_text=True)
    res = visitor.post(link, {"name": "Nova Pessoa", "password": "curta", "password2": "curta"})
    assert res.status_code == 422 and "pelo menos 8 caracteres" in res.get_data(as_text=True)
    res = visitor.post(link, {"name": "Nova Pessoa", "password": "senha-boa-123",
                              "password2": "senha-boa-123"})  # fmt: skip
    assert res.status_code == 302 and res.headers["Location"].startswith("/entrar")
    assert _memberships(db, email) == {(world.org, "auditor")}
    with db.read() as s:
        user = s.scalar(select(User).where(User.email == email))
        assert user.name == "Nova Pessoa"
    person = UserHandle(email=email, token="", password="senha-boa-123", actor=None)
    assert pages(person).get("/auditoria").status_code == 200
    assert visitor.get(link).status_code == 404


def test_invitations_are_cancelled_expire_and_are_e_mailed_over_smtp(world, db, pages, settings):
    import dataclasses

    from tests.support.mail import SmtpServer

    admin = pages(world.users["admin"])
    admin.post("/administracao/papeis", {"email": "a@exemplo.gov.br", "role": "auditor"})
    admin.post("/administracao/papeis", {"email": "b@exemplo.gov.br", "role": "auditor"})
    first = _link(db, "a@exemplo.gov.br")
    # Inviting again sends a new link; the old one stops working.
    admin.post("/administracao/papeis", {"email": "a@exemplo.gov.br", "role": "auditor"})
    link_a, link_b = _link(db, "a@exemplo.gov.br"), _link(db, "b@exemplo.gov.br")
    assert link_a != first and pages().get(first).status_code == 404
    with db.read() as s:
        rows = {i.email: i for i in s.scalars(select(Invitation))}
    assert len(rows) == 2
    # Another organization's admin cannot cancel it.
    other = pages(world.other_admin)
    assert (
        other.post(f"/administracao/convites/{rows['a@exemplo.gov.br'].id}/cancelar").status_code
        == 404
    )
    assert (
        admin.post(f"/administracao/convites/{rows['a@exemplo.gov.br'].id}/cancelar").status_code
        == 302
    )
    assert pages().get(link_a).status_code == 404
    with db.write() as s:
        s.execute(update(Invitation).values(expires_at=utcnow() - timedelta(seconds=1)))
    res = pages().get(link_b)
    assert res.status_code == 404 and "expirou" in res.get_data(as_text=True)
    html = admin.get("/administracao").get_data(as_text=True)
    section = html[html.index('id="convites"') :]
    assert "b@exemplo.gov.br" in section and "expirado" in section
    assert "a@exemplo.gov.br" not in section
    with db.read() as s:
        cancelled = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.invitation_cancelled")
        ).all()
    assert [e.data["email"] for e in cancelled] == ["a@exemplo.gov.br"]
    # The e-mails go through the outbox over SMTP, with the link.
    server = SmtpServer().start()
    try:
        mail = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=server.port)
        delivery.deliver_due(db, mail)
    finally:
        server.stop()
    received = server.inbox.to("b@exemplo.gov.br")
    assert len(received) == 1
    text = received[0].get_body(("plain",)).get_content()
    assert link_b in text and "Auditor" in text
