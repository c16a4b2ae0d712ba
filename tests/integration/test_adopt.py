"""``engine.db.adopt``: a row a Core statement read becomes the session's object as if the ORM
had loaded it (``populate_existing``) — found by ``session.get`` without a statement, not
dirty, its left-out columns loaded on first use, its changes flushed as an UPDATE of what
changed — and a row the session already holds is refreshed, not duplicated.
``engine.db.load``: the same, as the ORM's plain load — a held object keeps its values and
its unflushed changes, only its unloaded attributes take the row's."""

from __future__ import annotations

from sqlalchemy import bindparam, inspect, select, update

from engine.accounts.models import Organization
from engine.db import adopt, columns_of, load, send
from tests.support.sql import statements

_WITHOUT_NAME = columns_of(Organization, without=("name",))
_ORG = Organization.__table__
_READ = select(*_WITHOUT_NAME.columns).where(_ORG.c.id == bindparam("org_id"))


def _read(session, org_id: int) -> Organization:
    row = send(session.connection(), _READ, {"org_id": org_id}).rows[0]
    return adopt(session, _WITHOUT_NAME, _WITHOUT_NAME.of(row, 0))


def test_a_new_row_is_the_sessions_persistent_object(db, make):
    org_id = make.org(slug="sesa-pr", name="Secretaria da Saúde do Paraná")
    with db.read() as s:
        org = _read(s, org_id)
        state = inspect(org)
        assert state.persistent and not state.modified and not s.dirty
        assert (org.id, org.slug) == (org_id, "sesa-pr")
        assert org.created_at is not None and org.created_at.tzinfo is not None
        with statements(db) as seen:
            assert s.get(Organization, org_id) is org  # from the identity map
        assert seen == []
        assert state.unloaded == {"name"}
        with statements(db) as seen:
            assert org.name == "Secretaria da Saúde do Paraná"  # the column left out, on use
        assert len(seen) == 1 and "organization.name" in seen[0], seen


def test_a_row_the_session_holds_is_refreshed_not_duplicated(db, make):
    org_id = make.org(slug="sesa-pr", name="Antes")
    with db.write() as s:
        held = s.get(Organization, org_id)
        assert held.name == "Antes"
        s.execute(update(_ORG).where(_ORG.c.id == org_id).values(slug="sesa-pr2", name="Depois"))
        assert (held.slug, held.name) == ("sesa-pr", "Antes")  # the session's stale copy
        assert _read(s, org_id) is held
        assert held.slug == "sesa-pr2" and not inspect(held).modified
        assert "name" in inspect(held).unloaded  # expired: read again when asked for
        assert held.name == "Depois"


def test_a_change_to_an_adopted_object_is_written_as_an_update_of_that_column(db, make):
    org_id = make.org(slug="sesa-pr", name="Secretaria")
    with statements(db, lambda sql: sql.startswith("UPDATE")) as seen, db.write() as s:
        org = _read(s, org_id)
        org.slug = "sesa-pr-novo"
    assert len(seen) == 1 and "SET slug=" in seen[0] and "name" not in seen[0], seen
    with db.read() as s:
        org = s.get(Organization, org_id)
        assert (org.slug, org.name) == ("sesa-pr-novo", "Secretaria")


_ALL = columns_of(Organization)
_READ_ALL = select(*_ALL.columns).where(_ORG.c.id == bindparam("org_id"))


def _load(session, org_id: int) -> Organization:
    return load(session, _ALL, send(session.connection(), _READ_ALL, {"org_id": org_id}).rows[0])


def test_load_keeps_what_the_session_holds_and_fills_what_it_has_not_loaded(db, make):
    org_id = make.org(slug="sesa-pr", name="Antes")
    with db.write() as s:
        held = s.get(Organization, org_id)
        held.slug = "mudado-nesta-transacao"  # an unflushed change
        s.expire(held, ["name"])
        # (on the connection: a session's execute would flush the change first)
        s.connection().execute(update(_ORG).where(_ORG.c.id == org_id).values(name="Depois"))
        with statements(db) as seen:
            assert _load(s, org_id) is held
            assert held.name == "Depois"  # unloaded: taken from the row, no statement more
        assert len(seen) == 1, seen
        assert held.slug == "mudado-nesta-transacao"  # the change survives (adopt would lose it)
        assert inspect(held).modified
    with db.read() as s:
        assert s.get(Organization, org_id).slug == "mudado-nesta-transacao"


def test_load_of_a_row_not_held_is_a_new_persistent_object(db, make):
    org_id = make.org(slug="sesa-ba", name="Secretaria da Saúde da Bahia")
    with db.read() as s:
        org = _load(s, org_id)
        assert inspect(org).persistent and not inspect(org).modified
        assert (org.slug, org.name) == ("sesa-ba", "Secretaria da Saúde da Bahia")
        assert s.get(Organization, org_id) is org
