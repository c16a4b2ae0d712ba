"""Secret form values: authenticated encryption, key configuration, masking, storage with no
plaintext anywhere in the database, and rotation (on SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, text

from engine import secrets as S
from engine import settings as settings_mod
from engine.access.actor import SYSTEM
from engine.audit.models import AuditEvent
from engine.db import Base

PLAIN = "Zq8-segr3do-PEC-ÇÃO-41f9c"


@pytest.fixture
def ring() -> S.Keyring:
    return S.Keyring(S.Key.from_text(S.generate_key()))


@pytest.fixture(autouse=True)
def _no_global_key(monkeypatch):
    for name in (S.KEY_ENV, S.KEY_FILE_ENV, S.OLD_KEYS_ENV):
        monkeypatch.delenv(name, raising=False)
    S.configure(None)
    yield
    S.configure(None)


# --- encryption --------------------------------------------------------------------------


def test_round_trip_and_token_shape(ring):
    token = ring.encrypt(PLAIN, context="org:1")
    prefix, key_id, body = token.split(".")
    assert prefix == "cv1" and key_id == ring.current.id and len(key_id) == 16
    assert PLAIN not in token and PLAIN.encode() not in base64.urlsafe_b64decode(body + "==")
    assert ring.decrypt(token, context="org:1") == PLAIN
    assert ring.encrypt(PLAIN, context="org:1") != token  # a fresh nonce every time
    assert S.is_token(token) and not S.is_token(PLAIN) and S.key_id_of(token) == key_id


def test_tampering_and_wrong_place_are_detected(ring):
    token = ring.encrypt(PLAIN, context="a")
    body = token.rsplit(".", 1)[1]
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    for bad in (token.rsplit(".", 1)[0] + "." + flipped, token[:-4], "cv1.x.y", "nope", ""):
        with pytest.raises(S.SecretDecryptError):
            ring.decrypt(bad, context="a")
    with pytest.raises(S.SecretDecryptError):
        ring.decrypt(token, context="b")  # moved to another row
    other = S.Keyring(S.Key.from_text(S.generate_key()))
    with pytest.raises(S.SecretDecryptError, match="chave desconhecida"):
        other.decrypt(token, context="a")


def test_keys(ring):
    text_key = S.generate_key()
    assert len(base64.b64decode(text_key)) == 32
    key = S.Key.from_text(text_key)
    assert S.Key.from_text(text_key + "\n").id == key.id  # stable id, whitespace ignored
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(text_key)).decode().rstrip("=")
    assert S.Key.from_text(urlsafe).id == key.id
    for bad in ("curta", base64.b64encode(b"x" * 16).decode(), "!!!!", ""):
        with pytest.raises(S.SecretKeyError):
            S.Key.from_text(bad)
    older = S.Keyring(S.Key.from_text(S.generate_key()))
    token = older.encrypt("x")
    both = S.Keyring(key, [older.current])
    assert both.decrypt(token) == "x"
    assert S.key_id_of(both.encrypt("y")) == key.id


def test_mask():
    assert S.mask(PLAIN) == S.mask("1") == "••••••••"
    assert S.mask("") == "" and S.mask(None) == ""


# --- configuration -------------------------------------------------------------------------


def test_load_keyring_from_env_and_file(tmp_path):
    assert S.load_keyring({}) is None
    key = S.generate_key()
    assert S.load_keyring({S.KEY_ENV: key}).current.id == S.Key.from_text(key).id
    path = tmp_path / "secret.key"
    file_key = S.generate_key()
    path.write_text(file_key + "\n")
    ring = S.load_keyring({S.KEY_FILE_ENV: str(path), S.KEY_ENV: key, S.OLD_KEYS_ENV: f"{key}, "})
    assert ring.current.id == S.Key.from_text(file_key).id  # the file wins
    assert S.Key.from_text(key).id in ring.keys
    with pytest.raises(S.SecretKeyError, match="CREDENCIA_SECRET_KEY inválida"):
        S.load_keyring({S.KEY_ENV: "test"})
    with pytest.raises(S.SecretKeyError, match="Não foi possível ler"):
        S.load_keyring({S.KEY_FILE_ENV: str(tmp_path / "missing.key")})


def test_production_refuses_to_start_without_a_key(tmp_path):
    with pytest.raises(S.SecretKeyError) as info:
        S.require_key(True, environ={}, local_key_file=tmp_path / "k")
    message = str(info.value)
    assert message.startswith("CREDENCIA_SECRET_KEY não configurada")
    assert "credencia secrets generate-key" in message
    assert not (tmp_path / "k").exists()
    with pytest.raises(S.SecretKeyError):
        S.encrypt("x")  # nothing configured anywhere


def test_local_runs_get_a_local_key(tmp_path):
    path = tmp_path / "instance" / "secret.key"
    ring = S.require_key(False, environ={}, local_key_file=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert S.decrypt(S.encrypt(PLAIN)) == PLAIN  # installed process-wide
    again = S.require_key(False, environ={}, local_key_file=path)
    assert again.current.id == ring.current.id  # kept, not regenerated
    configured = S.require_key(True, environ={S.KEY_ENV: S.generate_key()})
    assert configured.current.id != ring.current.id


def test_cli_generate_key(tmp_path):
    from web.cli.secrets import secrets_group

    runner = CliRunner()
    out = runner.invoke(secrets_group, ["generate-key"])
    assert out.exit_code == 0 and len(base64.b64decode(out.output.strip())) == 32
    path = tmp_path / "k"
    assert runner.invoke(secrets_group, ["generate-key", "--file", str(path)]).exit_code == 0
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    refused = runner.invoke(secrets_group, ["generate-key", "--file", str(path)])
    assert refused.exit_code == 1 and "não sobrescrevo" in refused.output
    kept = runner.invoke(secrets_group, ["generate-key", "--file", str(path), "--if-missing"])
    assert kept.exit_code == 0 and path.read_text() == first


# --- storage (SQLite and PostgreSQL) -------------------------------------------------------


@pytest.fixture
def instance_ids(make):
    from engine.runtime.instances import start_instance

    org = make.org()
    ests = [make.establishment(org), make.establishment(org)]
    with make.db.write() as s:
        return org, [
            start_instance(
                s,
                SYSTEM,
                org_id=org,
                process_key="credenciamento-rnds",
                establishment_cnes=e.cnes,
                portfolio_code="RIRA",
            ).id
            for e in ests
        ]


def all_rows_text(db) -> str:
    """Every row of every table, as the database returns it (bytes decoded leniently)."""
    parts = []
    with db.engine.connect() as conn:
        for table in sa_inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value).decode("latin-1"))
                        parts.append(bytes(value).decode("utf-8", "replace"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def test_no_plaintext_anywhere_in_the_database(db, instance_ids, ring):
    org, (first, second) = instance_ids
    with db.write() as s:
        S.put(s, org_id=org, instance_id=first, field_path="token_pec", value=PLAIN, ring=ring)
        S.put(s, org_id=org, instance_id=second, field_path="token_pec", value="outro", ring=ring)
    dump = all_rows_text(db)
    assert PLAIN not in dump and "segr3do" not in dump
    assert "secret_value" in {t.name for t in Base.metadata.sorted_tables}
    with db.read() as s:
        assert S.get(s, first, "token_pec", ring=ring) == PLAIN
        assert S.get(s, second, "token_pec", ring=ring) == "outro"
        assert S.get(s, first, "nada", ring=ring) is None
        assert S.fields_of(s, first) == ["token_pec"]


def test_put_replaces_and_rows_are_bound_to_their_place(db, instance_ids, ring):
    org, (first, second) = instance_ids
    with db.write() as s:
        S.put(s, org_id=org, instance_id=first, field_path="token_pec", value="v1", ring=ring)
        S.put(s, org_id=org, instance_id=first, field_path="token_pec", value="v2", ring=ring)
        S.put(s, org_id=org, instance_id=second, field_path="token_pec", value="b", ring=ring)
    with db.write() as s:
        rows = {r.instance_id: r for r in s.scalars(select(S.SecretValue))}
        assert len(rows) == 2
        rows[second].ciphertext = rows[first].ciphertext  # an attacker copies a value across
    with db.read() as s:
        assert S.get(s, first, "token_pec", ring=ring) == "v2"
        with pytest.raises(S.SecretDecryptError):
            S.get(s, second, "token_pec", ring=ring)


def test_rotate(db, instance_ids, ring):
    org, (first, second) = instance_ids
    with db.write() as s:
        for iid in (first, second):
            for field_path in ("token_pec", "contra_chave"):
                S.put(s, org_id=org, instance_id=iid, field_path=field_path, value=f"{iid}-{field_path}", ring=ring)  # fmt: skip
    new = S.Key.from_text(S.generate_key())
    with db.write() as s:
        assert S.rotate(s, ring, new) == 4
    with db.write() as s:
        assert S.rotate(s, ring, new) == 0  # already done: idempotent
    only_new = S.Keyring(new)
    with db.read() as s:
        assert {r.key_id for r in s.scalars(select(S.SecretValue))} == {new.id}
        assert S.get(s, second, "contra_chave", ring=only_new) == f"{second}-contra_chave"
        with pytest.raises(S.SecretDecryptError):
            S.get(s, first, "token_pec", ring=ring)  # the old key alone no longer opens it


def test_rotate_with_the_wrong_old_key_changes_nothing(db, instance_ids, ring):
    org, (first, _) = instance_ids
    with db.write() as s:
        S.put(s, org_id=org, instance_id=first, field_path="token_pec", value=PLAIN, ring=ring)
    stranger = S.Key.from_text(S.generate_key())
    with pytest.raises(S.SecretDecryptError), db.write() as s:
        S.rotate(s, [stranger], S.generate_key())
    with db.read() as s:
        assert S.get(s, first, "token_pec", ring=ring) == PLAIN


def test_cli_rotate(db, db_url, instance_ids, ring, tmp_path, monkeypatch):
    from web.cli.secrets import secrets_group

    org, (first, _) = instance_ids
    old_text = S.generate_key()
    old_ring = S.Keyring(S.Key.from_text(old_text))
    with db.write() as s:
        S.put(s, org_id=org, instance_id=first, field_path="token_pec", value=PLAIN, ring=old_ring)
    new_file = tmp_path / "new.key"
    S.ensure_key_file(new_file)
    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    runner = CliRunner()
    missing = runner.invoke(secrets_group, ["rotate", "--new-key-file", str(new_file)])
    assert missing.exit_code == 1 and "não configurada" in missing.output
    monkeypatch.setenv(S.KEY_ENV, old_text)
    result = runner.invoke(secrets_group, ["rotate", "--new-key-file", str(new_file)])
    assert result.exit_code == 0, result.output
    assert "1 valor(es) recifrado(s)" in result.output
    new_ring = S.Keyring(S.Key.from_text(new_file.read_text()))
    with db.read() as s:
        assert S.get(s, first, "token_pec", ring=new_ring) == PLAIN
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "secrets.rotated"))
        assert event is not None and event.data["count"] == 1
        assert PLAIN not in str(event.data)
    assert os.environ.get(S.KEY_ENV) == old_text  # the command never rewrites configuration
