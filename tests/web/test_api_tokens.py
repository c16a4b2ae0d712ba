"""API tokens however made (admin page, command line): listed and revocable from both,
refused once expired, their last use written at most once per few minutes, and revoked
when their person's password changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from engine import settings as settings_mod
from engine.accounts import service as accounts
from engine.accounts import tokens as tokens_mod
from engine.accounts.models import ApiToken, User
from engine.audit.models import AuditEvent
from engine.db import utcnow
from web.cli import main


@pytest.fixture
def cli(db_url, db, app, monkeypatch):
    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def _me(client, token: str):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _row(db, token: str) -> ApiToken:
    with db.read() as s:
        return s.scalar(select(ApiToken).where(ApiToken.prefix == token[:12]))


def test_command_line_tokens_are_listed_and_revoked_on_the_page(world, db, pages, client, cli):
    gestor = world.users["gestor"]
    token = cli("tokens", "create", gestor.email, "--name", "robô").strip().splitlines()[-1]
    assert _me(client, token).status_code == 200
    row = _row(db, token)
    assert row.org_id == world.org  # bound to the person's only organization
    admin = pages(world.users["admin"])
    html = admin.get("/administracao").get_data(as_text=True)
    assert row.prefix in html and "robô" in html
    # The builders' organization-less tokens of members are listed too (they reach the org).
    assert world.users["datasus"].token[:12] in html
    assert world.other_admin.token[:12] not in html  # another organization's person
    # Another organization's admin cannot revoke it.
    other = pages(world.other_admin)
    assert other.post(f"/administracao/tokens/{row.id}/revogar").status_code == 404
    assert _me(client, token).status_code == 200
    assert admin.post(f"/administracao/tokens/{row.id}/revogar").status_code == 302
    res = _me(client, token)
    assert res.status_code == 401 and "revogado" in res.json["message"]
    # An organization-less token (made before tokens were bound) is revocable there too.
    with db.read() as s:
        unbound = s.scalar(
            select(ApiToken).where(ApiToken.prefix == world.users["datasus"].token[:12])
        )
    assert unbound.org_id is None
    assert admin.post(f"/administracao/tokens/{unbound.id}/revogar").status_code == 302
    assert _me(client, world.users["datasus"].token).status_code == 401
    with db.read() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "token.revoked")).all()
    assert {(e.org_id, e.data["prefix"]) for e in events} == {
        (world.org, row.prefix),
        (world.org, unbound.prefix),
    }


def test_tokens_list_and_revoke_on_the_command_line(world, db, client, cli):
    gestor = world.users["gestor"]
    token = cli("tokens", "create", gestor.email).strip().splitlines()[-1]
    row = _row(db, token)
    listed = cli("tokens", "list")
    line = next(x for x in listed.splitlines() if x.startswith(f"{row.id}\t"))
    assert line.split("\t")[1:4] == [row.prefix, gestor.email, "sesa-pr"]
    assert line.endswith("\tativo")
    assert world.other_admin.email in listed
    only_pr = cli("tokens", "list", "--org", "sesa-pr")
    assert row.prefix in only_pr and world.other_admin.email not in only_pr
    assert "não encontrada" in cli("tokens", "list", "--org", "nao-existe", code=1)
    assert cli("tokens", "revoke", row.prefix) == f"token {row.id} ({row.prefix}…) revogado\n"
    assert _me(client, token).status_code == 401
    assert cli("tokens", "list").count("\trevogado") == 1
    # By id as well; an unknown one is an error.
    other = cli("tokens", "create", gestor.email).strip().splitlines()[-1]
    assert "revogado" in cli("tokens", "revoke", str(_row(db, other).id))
    assert _me(client, other).status_code == 401
    assert "não encontrado" in cli("tokens", "revoke", "cred_nao_existe", code=1)
    with db.read() as s:
        revoked = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "token.revoked")
        )
    assert revoked == 2


def test_a_person_in_two_organizations_gets_a_token_bound_to_one(world, db, client, cli, make):
    gestor = world.users["gestor"]
    cli("users", "create", gestor.email, "--org", "sesa-sp", "--role", "auditor")
    out = cli("tokens", "create", gestor.email, code=1)
    assert "--org" in out and "sesa-pr" in out and "sesa-sp" in out
    token = cli("tokens", "create", gestor.email, "--org", "sesa-sp").strip().splitlines()[-1]
    me = _me(client, token)
    assert me.json["roles"] == [{"org": "sesa-sp", "role": "auditor"}]
    # Bound: its calls need no 'org' parameter (an organization-less one would get 422).
    listed = client.get("/api/v1/instances", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    # The token the person already had keeps working in the organization it worked in.
    old = client.get("/api/v1/instances", headers=gestor.headers)
    assert old.status_code == 200
    assert _row(db, gestor.token).org_id == world.org
    wide = cli("tokens", "create", gestor.email, "--all-orgs").strip().splitlines()[-1]
    assert _row(db, wide).org_id is None
    datasus = world.users["datasus"].email
    assert "não tem papel em 'sesa-sp'" in cli(
        "tokens", "create", datasus, "--org", "sesa-sp", code=1
    )


def test_expired_tokens_are_refused(world, db, pages, client, cli):
    gestor = world.users["gestor"]
    token = (
        cli("tokens", "create", gestor.email, "--expires-in-days", "30").strip().splitlines()[-1]
    )
    row = _row(db, token)
    assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
    assert _me(client, token).status_code == 200
    with db.write() as s:
        s.execute(update(ApiToken).where(ApiToken.id == row.id).values(expires_at=utcnow()))
    res = _me(client, token)
    assert res.status_code == 401 and "expirado" in res.json["message"]
    assert "\texpirado" in cli("tokens", "list")
    cli("tokens", "create", gestor.email, "--expires-in-days", "0", code=1)
    # On the page: a field with the number of days.
    admin = pages(world.users["admin"])
    assert "expirado" in admin.get("/administracao").get_data(as_text=True)
    res = admin.post("/administracao/tokens", {"email": gestor.email, "name": "curto",
                                               "expires_in_days": "7"})  # fmt: skip
    assert res.status_code == 200
    with db.read() as s:
        made = s.scalar(select(ApiToken).where(ApiToken.name == "curto"))
    assert timedelta(days=6) < made.expires_at - utcnow() <= timedelta(days=7)
    bad = admin.post("/administracao/tokens", {"email": gestor.email, "expires_in_days": "nunca"})
    assert bad.status_code == 422 and "número inteiro de dias" in bad.get_data(as_text=True)


def test_last_use_is_written_at_most_once_per_period(world, db, client, monkeypatch):
    token = world.users["gestor"].token
    writes = []
    record = tokens_mod.record_use
    monkeypatch.setattr(
        tokens_mod, "record_use", lambda s, i, **k: writes.append(i) or record(s, i, **k)
    )
    assert _row(db, token).last_used_at is None
    for _ in range(3):
        assert _me(client, token).status_code == 200
    first = _row(db, token).last_used_at
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    assert len(writes) == 1  # one write, not one per request
    with db.write() as s:
        s.execute(update(ApiToken).values(last_used_at=first - timedelta(minutes=6)))
    assert _me(client, token).status_code == 200
    assert _row(db, token).last_used_at > first - timedelta(seconds=1)
    assert len(writes) == 2
    # Two workers racing on a stale token: one write wins, the other changes nothing.
    with db.write() as s:
        assert tokens_mod.record_use(s, _row(db, token).id, now=utcnow() + timedelta(minutes=6))
        assert not tokens_mod.record_use(s, _row(db, token).id, now=utcnow() + timedelta(minutes=6))


def test_a_password_change_revokes_the_persons_tokens(world, db, pages, client, cli):
    gestor = world.users["gestor"]
    made = cli("tokens", "create", gestor.email).strip().splitlines()[-1]
    browser = pages(gestor)
    out = cli("users", "set-password", gestor.email, "--password", "uma-senha-nova-123")
    assert "2 token(s) revogado(s)" in out
    for token in (gestor.token, made):
        assert _me(client, token).status_code == 401
    assert browser.get("/").status_code == 302  # signed out everywhere
    assert _me(client, world.users["integrador"].token).status_code == 200  # others keep theirs
    with db.read() as s:
        revoked = s.scalars(select(AuditEvent).where(AuditEvent.action == "token.revoked")).all()
        changed = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.password_changed")
        ).all()
    assert {e.data["reason"] for e in revoked} == {"password_changed"} and len(revoked) == 2
    assert [(e.org_id, e.data["tokens_revoked"]) for e in changed] == [(world.org, 2)]
    cli("users", "set-password", gestor.email, "--password", "curta", code=1)
    generated = cli("users", "set-password", gestor.email)
    assert "senha: " in generated
    # The engine's other way to set a password (re-creating the user with one) does the same.
    token = accounts_token(db, gestor.email)
    with db.write() as s:
        accounts.create_user(s, world.users["admin"].actor, gestor.email, org_slug="sesa-pr",
                             role="gestor", establishments=[world.est.cnes],
                             password="outra-senha-nova-456")  # fmt: skip
    assert _me(client, token).status_code == 401
    with db.read() as s:
        user = s.scalar(select(User).where(User.email == gestor.email))
        assert accounts.verify_password(user.password_hash, "outra-senha-nova-456")


def accounts_token(db, email: str) -> str:
    from engine.access.actor import SYSTEM

    with db.write() as s:
        return accounts.create_token(s, SYSTEM, email)
