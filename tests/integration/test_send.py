"""``engine.db.send``: a prebuilt Core statement sent on the driver's connection gives what
``connection.execute`` gives — the same rows, values processed by their types, SQLAlchemy's
errors, the engine's statement events — and refuses a statement only SQLAlchemy's execution can
run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.access.actor import SYSTEM
from engine.accounts.models import Organization
from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.db import send, send_many
from tests.support.sql import statements

_ORG = Organization.__table__
_EVENTS = (
    select(AuditEvent.id, AuditEvent.at, AuditEvent.data, AuditEvent.seq, AuditEvent.hash)
    .where(AuditEvent.org_id == bindparam("org_id"), AuditEvent.action != "nada")
    .order_by(AuditEvent.seq)
)
_RENAME = update(_ORG).where(_ORG.c.id == bindparam("org_id"), _ORG.c.slug != "nada")
_ADD = insert(_ORG)
_BY_IDS = select(_ORG.c.id).where(_ORG.c.id.in_(bindparam("ids", expanding=True)))


def test_rows_come_back_as_connection_execute_gives_them(db, make):
    org = make.org()
    with db.write() as s:
        audit.record(s, SYSTEM, "test.sent", org_id=org, data={"n": 1, "texto": "ação"})
    with db.read() as s:
        connection = s.connection()
        expected = [tuple(row) for row in connection.execute(_EVENTS, {"org_id": org})]
        sent = send(connection, _EVENTS, {"org_id": org})
    assert sent.rows == expected
    at = sent.rows[-1][1]
    assert (
        isinstance(at, datetime) and at.tzinfo is not None and at.utcoffset() == UTC.utcoffset(at)
    )
    assert sent.rows[-1][2] == {"n": 1, "texto": "ação"}  # the JSON column, decoded


def test_an_update_sets_the_columns_its_parameters_name(db, make):
    org = make.org()
    with statements(db) as seen, db.write() as s:
        sent = send(s.connection(), _RENAME, {"org_id": org, "name": "Secretaria renomeada"})
    assert sent.rowcount == 1 and sent.rows == []
    assert any(sql.startswith("UPDATE organization SET name=") for sql in seen), seen
    with db.read() as s:
        assert s.get(Organization, org).name == "Secretaria renomeada"


def test_the_after_execute_listeners_see_each_statement_as_connection_execute_gives_it(db, make):
    # Timing listeners (bench/engine.py's statement counts, a slow-query log) pair the two
    # events: a statement seen before and not after is lost to them.
    org = make.org()
    seen: list[tuple[str, int]] = []

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, cursor.rowcount))

    event.listen(db.engine, "after_cursor_execute", after)
    try:
        with db.write() as s:
            send(s.connection(), _RENAME, {"org_id": org, "name": "Renomeada"})
            s.connection().execute(_RENAME, {"org_id": org, "name": "De novo"})
    finally:
        event.remove(db.engine, "after_cursor_execute", after)
    renames = [(sql, n) for sql, n in seen if sql.startswith("UPDATE organization SET name=")]
    assert len(renames) == 2 and renames[0] == renames[1], seen


def test_many_rows_in_one_executemany(db, make):
    now = datetime.now(UTC)
    rows = [{"slug": f"lote-{i}", "name": f"Lote {i}", "created_at": now} for i in range(3)]
    with statements(db) as seen, db.write() as s:
        send_many(s.connection(), _ADD, rows)
    assert len([sql for sql in seen if sql.startswith("INSERT INTO organization")]) == 1
    with db.read() as s:
        found = s.scalars(select(Organization).where(Organization.slug.like("lote-%"))).all()
    assert sorted(o.name for o in found) == ["Lote 0", "Lote 1", "Lote 2"]
    assert all(o.created_at.tzinfo is not None for o in found)


def test_a_refused_statement_raises_sqlalchemys_error_and_writes_nothing(db, make):
    make.org()
    with db.read() as s:
        taken = s.scalars(select(Organization.slug)).first()
    row = {"slug": taken, "name": "Duplicada", "created_at": datetime.now(UTC)}
    with pytest.raises(IntegrityError), db.write() as s:
        send(s.connection(), _RENAME, {"org_id": -1, "name": "não existe"})
        send(s.connection(), _ADD, row)
    with db.read() as s:
        assert s.scalar(select(Organization.id).where(Organization.name == "Duplicada")) is None


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (_BY_IDS, {"ids": [1, 2]}),  # rendered at execution: an expanding IN
        (_ADD, {"slug": "sem-data", "name": "Sem data"}),  # created_at's Python-side default
    ],
    ids=["expanding", "python-default"],
)
def test_a_statement_only_sqlalchemy_can_run_is_refused(db, statement, params):
    with pytest.raises(ValueError, match="not a statement for send"), db.write() as s:
        send(s.connection(), statement, params)


def test_a_connection_not_yet_in_a_transaction_begins_one(db, make):
    """As ``connection.execute`` autobegins: what ``send`` wrote is undone by a rollback."""
    org = make.org()
    with db.engine.connect() as connection:
        send(connection, _RENAME, {"org_id": org, "name": "Nunca gravado"})
        assert connection.in_transaction()
        connection.rollback()
    with db.read() as s:
        assert s.get(Organization, org).name != "Nunca gravado"
