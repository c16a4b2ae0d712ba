"""``engine.db.insert_now``: a new object's row written by one Core statement, as
``session.add(obj); session.flush()`` writes it — the same row, the same object afterwards
(persistent, its defaults and id read back, its later changes written as an UPDATE), the
session's other pending changes written first — on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select

from engine.accounts.models import Organization
from engine.credentials.models import Credential
from engine.db import insert_now
from tests.support.sql import statements

MOMENT = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)


def _credential(org_id: int, est_id: int, portfolio: str) -> Credential:
    # Some columns given (one JSON, one None), most left to their defaults (a callable, a
    # factory, scalars), the key given as None: the database's to number.
    return Credential(id=None, org_id=org_id, establishment_id=est_id, portfolio_code=portfolio, uf="PR",
                      history=[{"status": "em_solicitacao", "at": MOMENT.isoformat()}],
                      homologation_on=None, origin="process")  # fmt: skip


def _row(session, credential_id: int) -> dict:
    table = Credential.__table__
    found = session.execute(select(table).where(table.c.id == credential_id)).one()._asdict()
    return {k: v for k, v in found.items() if k not in ("id", "portfolio_code")}


def _times(values: dict) -> dict:
    """Without the columns set from the clock (compared for being set, not for their value)."""
    return {
        k: v for k, v in values.items() if k not in ("status_since", "created_at", "updated_at")
    }


def test_the_row_and_the_object_are_the_flushs(db, make):
    org_id = make.org()
    est = make.establishment(org_id)
    with db.write() as s:
        flushed = _credential(org_id, est.id, "REL")
        s.add(flushed)
        s.flush()
        ours = insert_now(s, _credential(org_id, est.id, "RIA"))
        for obj in (flushed, ours):
            state = inspect(obj)
            assert state.persistent and not state.modified
            assert obj.id is not None and obj.status_since is not None
        # Every column read back (the flush leaves those it sent nothing for to load on use).
        assert not inspect(ours).unloaded
        assert ours.id != flushed.id
        assert s.get(Credential, ours.id) is ours
        assert _times(_row(s, ours.id)) == _times(_row(s, flushed.id))
        loaded = {a.key: getattr(ours, a.key) for a in inspect(Credential).column_attrs}
        expected = {a.key: getattr(flushed, a.key) for a in inspect(Credential).column_attrs}
        for values in (loaded, expected):
            del values["id"], values["portfolio_code"]
        assert _times(loaded) == _times(expected)
        assert ours.history == flushed.history and ours.request_numbers == []


def test_a_later_change_is_an_update_of_that_column(db, make):
    org_id = make.org()
    est = make.establishment(org_id)
    with statements(db, lambda sql: sql.startswith("UPDATE credential")) as seen, db.write() as s:
        credential = insert_now(s, _credential(org_id, est.id, "REL"))
        credential.requester_id = "40111"
        s.flush()
    assert len(seen) == 1 and "requester_id" in seen[0] and "uf" not in seen[0], seen
    with db.read() as s:
        assert s.get(Credential, credential.id).requester_id == "40111"


def test_the_sessions_other_changes_are_written_first(db, make):
    org_id = make.org()
    est = make.establishment(org_id)
    writes = statements(db, lambda sql: sql.split()[0] in ("INSERT", "UPDATE"))
    with writes as seen, db.write() as s:
        s.get(Organization, org_id).name = "Secretaria renomeada"
        insert_now(s, _credential(org_id, est.id, "REL"))
    assert [sql.split()[0] + " " + sql.split()[1 if sql.startswith("UPDATE") else 2]
            for sql in seen] == ["UPDATE organization", "INSERT credential"]  # fmt: skip


def test_an_object_already_in_the_session_takes_the_flush(db, make):
    org_id = make.org()
    est = make.establishment(org_id)
    with db.write() as s:
        credential = _credential(org_id, est.id, "REL")
        s.add(credential)  # pending: insert_now leaves it to the flush
        assert insert_now(s, credential) is credential
        assert inspect(credential).persistent and credential.id is not None
