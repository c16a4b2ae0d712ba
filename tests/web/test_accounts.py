"""Accounts a person and an admin manage: changing one's password (the current one required,
common ones refused), a reset link by e-mail (signed, short-lived, single-use, the same answer
for unknown e-mails; delivered by the outbox to a real SMTP server), deactivation (sessions
and tokens end at once, claimed tasks released, audited) and the TOTP second factor — on the
pages and on the command line."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import timedelta

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select

from engine import settings as settings_mod
from engine.accounts import passwords, totp
from engine.accounts.models import ApiToken, User
from engine.audit.models import AuditEvent
from engine.db import utcnow
from engine.notifications.delivery import deliver_due
from engine.notifications.models import OutboxMessage
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import READY, Task
from tests.support.mail import BASE_URL, SmtpServer
from web.cli import main


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, smtp):
    return dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=smtp.port,
                               base_url=BASE_URL, mail_from="Credencia <noreply@credencia.test>")  # fmt: skip


@pytest.fixture
def cli(db_url, db, app, monkeypatch, smtp):
    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setenv("CREDENCIA_BASE_URL", BASE_URL)
    monkeypatch.setattr(settings_mod, "_settings", None)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def _actions(db, action: str) -> list[AuditEvent]:
    with db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _user(db, email: str) -> User:
    with db.read() as s:
        return s.scalar(select(User).where(User.email == email))


# ------------------------------------------------------------------ change password


def test_changing_ones_password_needs_the_current_one_and_refuses_common_ones(
    world, pages, db
) -> None:
    gestor = world.users["gestor"]
    me, elsewhere = pages(gestor), pages(gestor)
    wrong = me.post("/conta/senha", {"current": "nao-e-esta", "password": "uma-senha-nova-boa",
                                     "password2": "uma-senha-nova-boa"})  # fmt: skip
    assert wrong.status_code == 422
    assert "Senha atual incorreta" in wrong.get_data(as_text=True)
    common = me.post("/conta/senha", {"current": gestor.password, "password": "password123",
                                      "password2": "password123"})  # fmt: skip
    assert common.status_code == 422
    assert "comum demais" in common.get_data(as_text=True)
    assert passwords.check_new_password  # the rule the page used
    with pytest.raises(Exception, match="Há campos"):
        passwords.check_new_password("senha123")
    done = me.post("/conta/senha", {"current": gestor.password, "password": "uma-senha-nova-boa",
                                    "password2": "uma-senha-nova-boa"})  # fmt: skip
    assert done.status_code == 302
    assert me.get("/conta").status_code == 200  # this browser goes on
    assert elsewhere.get("/conta").status_code == 302  # the other session ended
    with db.read() as s:
        tokens = s.scalars(select(ApiToken).join(User).where(User.email == gestor.email)).all()
        assert tokens and all(t.revoked_at is not None for t in tokens)
    assert _actions(db, "user.password_changed")


# ------------------------------------------------------------------ reset by e-mail


def test_a_reset_link_by_email_works_once_and_not_for_long(
    world, pages, db, settings, smtp
) -> None:
    auditor = world.users["auditor"]
    anon = pages()
    known = anon.post("/senha/esqueci", {"email": auditor.email})
    unknown = anon.post("/senha/esqueci", {"email": "ninguem@exemplo.gov.br"})
    assert known.status_code == unknown.status_code == 200

    def without_csrf(res) -> str:
        return re.sub(r'name="csrf_token" value="[^"]+"', "", res.get_data(as_text=True))

    assert without_csrf(known) == without_csrf(unknown)  # the same answer either way
    assert "Se houver uma conta ativa" in without_csrf(known)
    with db.read() as s:
        queued = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "password_reset")
        ).all()
        assert [m.to_addr for m in queued] == [auditor.email]
    deliver_due(db, settings)
    received = smtp.inbox.to(auditor.email)
    assert len(received) == 1
    body = received[0].get_body(("plain",)).get_content()
    path = re.search(r"/senha/redefinir/[A-Za-z0-9_.-]+", body).group(0)

    assert anon.get(path).status_code == 200
    weak = anon.post(path, {"password": "12345678", "password2": "12345678"})
    assert weak.status_code == 422 and "comum demais" in weak.get_data(as_text=True)
    done = anon.post(
        path, {"password": "nova-senha-do-auditor", "password2": "nova-senha-do-auditor"}
    )
    assert done.status_code == 302
    assert anon.get(path).status_code == 404  # single use
    again = anon.post(
        path, {"password": "outra-senha-qualquer", "password2": "outra-senha-qualquer"}
    )
    assert again.status_code == 404
    fresh = pages()
    res = fresh.client.post("/entrar", data={"email": auditor.email, "password": "nova-senha-do-auditor",
                                             "csrf_token": fresh.csrf()})  # fmt: skip
    assert res.status_code == 302
    assert _actions(db, "user.password_reset") and _actions(db, "user.password_reset_requested")

    # A link is short-lived.
    with db.read() as s:
        user = s.get(User, _user(db, auditor.email).id)
        token = passwords.reset_token(user, valid_for=timedelta(minutes=30))
    with time_machine.travel(utcnow() + timedelta(minutes=31)):
        assert pages().get(f"/senha/redefinir/{token}").status_code == 404
    assert pages().get(f"/senha/redefinir/{token}").status_code == 200
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert pages().get(f"/senha/redefinir/{forged}").status_code == 404


# ------------------------------------------------------------------ deactivation


def test_deactivating_ends_sessions_and_tokens_and_releases_tasks(world, pages, db, client) -> None:
    with db.read() as s:
        task = s.scalar(
            select(Task).where(Task.instance_id == world.instance_id, Task.state == READY)
        )
    person = world.users[task.role]
    with db.write() as s:
        runtime_tasks.claim(s, person.actor, task.id)
    their = pages(person)
    assert their.get("/conta").status_code == 200
    assert client.get("/api/v1/establishments", headers=person.headers).status_code == 200
    admin = pages(world.users["admin"])
    uid = _user(db, person.email).id
    assert "Desativar" in admin.get("/administracao").get_data(as_text=True)
    assert admin.post(f"/administracao/pessoas/{uid}/desativar").status_code == 302
    assert their.get("/conta").status_code == 302  # signed out at once
    assert client.get("/api/v1/establishments", headers=person.headers).status_code == 401
    with db.read() as s:
        assert s.get(Task, task.id).assignee_id is None
        assert not s.get(User, uid).active
    event = _actions(db, "user.deactivated")[0]
    assert event.data["tokens_revoked"] >= 1 and event.data["sessions_ended"] >= 1
    assert any(e.data.get("reason") == "deactivated" and e.data.get("task") == task.id
               for e in _actions(db, "task.released"))  # fmt: skip
    anon = pages()
    refused = anon.client.post("/entrar", data={"email": person.email, "password": person.password,
                                                "csrf_token": anon.csrf()})  # fmt: skip
    assert refused.status_code == 401
    assert "Reativar" in admin.get("/administracao").get_data(as_text=True)
    assert admin.post(f"/administracao/pessoas/{uid}/reativar").status_code == 302
    assert pages(person).get("/conta").status_code == 200
    assert _actions(db, "user.reactivated")
    # An admin cannot deactivate themselves, nor a person of another organization.
    other = _user(db, world.other_admin.email).id
    assert admin.post(f"/administracao/pessoas/{other}/desativar").status_code == 404
    assert _user(db, world.other_admin.email).active


# ------------------------------------------------------------------ TOTP


def _code(secret: str, offset: int = 0) -> str:
    return totp.code_at(secret, totp.now_step() + offset)


def test_totp_is_set_up_on_the_page_then_asked_at_sign_in_once_per_code(world, pages, db) -> None:
    gestor = world.users["gestor"]
    me = pages(gestor)
    page = me.get("/conta/dois-fatores").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert (
        me.post(
            "/conta/dois-fatores", {"code": "000000" if _code(secret) != "000000" else "111111"}
        ).status_code
        == 422
    )
    assert me.post("/conta/dois-fatores", {"code": _code(secret)}).status_code == 302
    stored = _user(db, gestor.email).totp_secret
    assert stored and secret not in stored  # encrypted, never in clear
    assert _actions(db, "user.totp_enabled")

    browser = pages()
    first = browser.client.post("/entrar", data={"email": gestor.email, "password": gestor.password,
                                                 "csrf_token": browser.csrf()})  # fmt: skip
    assert first.status_code == 302 and first.headers["Location"].endswith("/entrar/codigo")
    assert browser.get("/conta").status_code == 302  # not signed in yet
    wrong = browser.post("/entrar/codigo", {"code": "12345"})
    assert wrong.status_code == 401
    # The code used to turn it on is spent: the next step's code signs in.
    with time_machine.travel(time.time() + totp.STEP, tick=False):
        ok = browser.post("/entrar/codigo", {"code": _code(secret)})
        assert ok.status_code == 302
        assert browser.get("/conta").status_code == 200
        other = pages()
        other.client.post("/entrar", data={"email": gestor.email, "password": gestor.password,
                                           "csrf_token": other.csrf()})  # fmt: skip
        replay = other.post("/entrar/codigo", {"code": _code(secret)})
        assert replay.status_code == 401  # the same code does not work twice
    assert _actions(db, "auth.totp_failed")


def test_totp_can_be_required_of_admins(world, pages, app) -> None:
    app.extensions["credencia.settings"] = dataclasses.replace(
        app.extensions["credencia.settings"], totp_required_for_admins=True
    )
    admin = pages(world.users["admin"])
    res = admin.get("/administracao")
    assert res.status_code == 302 and res.headers["Location"].endswith("/conta/dois-fatores")
    assert pages(world.users["gestor"]).get("/").status_code == 200  # only admins


# ------------------------------------------------------------------ command line


def test_the_command_line_deactivates_sets_cpf_invites_and_sends_reset_links(
    world, cli, db
) -> None:
    auditor = world.users["auditor"]
    assert "desativado" in cli("users", "deactivate", auditor.email)
    assert not _user(db, auditor.email).active
    assert "reativado" in cli("users", "reactivate", auditor.email)
    assert _user(db, auditor.email).active
    assert "CPF registrado" in cli("users", "set-cpf", auditor.email, "529.982.247-25")
    assert _user(db, auditor.email).cpf == "52998224725"
    assert "CPF inválido" in cli("users", "set-cpf", auditor.email, "123.456.789-00", code=1)
    out = cli(
        "users", "invite", "nova.pessoa@exemplo.gov.br", "--org", "sesa-pr", "--role", "auditor"
    )
    assert "convite enviado" in out and "senha" not in out
    assert "link de redefinição enviado" in cli("users", "reset-password", auditor.email)
    with db.read() as s:
        kinds = s.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
    assert "invitation" in kinds and "password_reset" in kinds
    cli("users", "deactivate", "ninguem@exemplo.gov.br", code=1)
    assert _actions(db, "user.deactivated") and _actions(db, "user.cpf_set")


def test_wrong_codes_slow_the_account_down_like_wrong_passwords(world, pages, db) -> None:
    gestor = world.users["gestor"]
    secret = totp.new_secret()
    with db.write() as s:
        user = s.scalar(select(User).where(User.email == gestor.email))
        totp.enable(s, gestor.actor, user, secret, totp.code_at(secret, totp.now_step()))
    statuses = []
    for _ in range(4):  # the right password, then a wrong code: neither clears the count
        browser = pages()
        res = browser.client.post("/entrar", data={"email": gestor.email, "password": gestor.password,
                                                   "csrf_token": browser.csrf()})  # fmt: skip
        statuses.append(res.status_code)
        if res.status_code == 302:
            statuses.append(browser.post("/entrar/codigo", {"code": "999999"}).status_code)
    assert statuses[:2] == [302, 401]
    assert statuses[-1] == 429
