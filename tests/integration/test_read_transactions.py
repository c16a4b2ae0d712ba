"""How a read's transaction ends on PostgreSQL: with COMMIT when it wrote nothing, so that
the driver keeps the statements it prepared on the connection (psycopg drops them all at a
ROLLBACK); a read that wrote (reads never should) is rolled back, as before."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import select, text

from engine.accounts.models import Organization


def _prepared_on(session) -> int:
    return session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()


@pytest.mark.postgres_only
def test_a_read_keeps_the_connections_prepared_statements(db, make):
    make.org()
    db.engine.dispose()  # one pooled connection, used by every read below
    query = select(Organization.slug).where(Organization.id > 0)
    for _ in range(8):  # psycopg prepares a statement on its fifth execution
        with db.read() as s:
            assert s.execute(query).all()
    with db.read() as s:
        assert _prepared_on(s) >= 1
    # A ROLLBACK would have emptied them: ended by COMMIT, they are still there.
    with db.read() as s:
        assert _prepared_on(s) >= 1


@pytest.mark.postgres_only
def test_a_read_that_wrote_is_rolled_back(db, make):
    org_id = make.org()
    with db.read() as s:
        s.execute(text("UPDATE organization SET name = 'mudado' WHERE id = :id"), {"id": org_id})
    with db.read() as s:
        assert s.get(Organization, org_id).name != "mudado"
    with db.read() as s:  # a change left pending in a read's session is not written either
        s.get(Organization, org_id).name = "pendente"
    with db.read() as s:
        assert s.get(Organization, org_id).name not in ("mudado", "pendente")


# ---------------------------------------------------------------- the check at checkout
# On PostgreSQL a connection leaving the pool is checked by one round trip: for the
# transactions of ``Database`` that is the transaction's own BEGIN (no ping before it), for any
# other use of the engine a ping.


def _count_pings(db, monkeypatch) -> list[int]:
    pings: list[int] = []
    real = db.engine.dialect.do_ping

    def counted(dbapi_conn):
        pings.append(1)
        return real(dbapi_conn)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return pings


@pytest.mark.postgres_only
def test_a_transaction_begins_as_its_connection_leaves_the_pool_without_a_ping(
    db, make, monkeypatch
):
    org_id = make.org()
    pings = _count_pings(db, monkeypatch)
    with db.write() as s:
        # Before any statement of ours, the server already has the transaction open.
        status = s.connection().connection.driver_connection.pgconn.transaction_status
        assert status == pq.TransactionStatus.INTRANS
        s.get(Organization, org_id).name = "escrito"
    with db.read() as s:
        assert s.get(Organization, org_id).name == "escrito"
        level = s.execute(text("SHOW transaction_isolation")).scalar_one()
        assert level == "read committed"
    with db.statements() as conn:
        conn.execute(text("UPDATE organization SET name = 'outro' WHERE id = :id"), {"id": org_id})
    with pytest.raises(RuntimeError), db.write() as s:
        s.get(Organization, org_id).name = "desfeito"
        s.flush()
        raise RuntimeError
    with db.read() as s:
        assert s.get(Organization, org_id).name == "outro"  # the failed write rolled back
    assert pings == []
    # The engine used elsewhere (the CLI, migrations) still pings what leaves the pool.
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert pings == [1]


@pytest.mark.postgres_only
def test_a_snapshot_read_sees_one_moment(db, make):
    org_id = make.org()
    with db.read(snapshot=True) as s:
        assert s.execute(text("SHOW transaction_isolation")).scalar_one() == "repeatable read"
        before = s.get(Organization, org_id).name
        with db.write() as w:  # committed meanwhile, by another transaction
            w.get(Organization, org_id).name = "depois"
        seen = s.execute(
            text("SELECT name FROM organization WHERE id = :id"), {"id": org_id}
        ).scalar_one()
        assert seen == before
    with db.read() as s:
        assert s.get(Organization, org_id).name == "depois"


@pytest.mark.postgres_only
def test_connections_the_server_dropped_are_replaced_as_they_leave_the_pool(db, make):
    org_id = make.org()
    db.engine.dispose()
    sessions = [db.session_factory() for _ in range(3)]
    for s in sessions:  # three connections into the pool, then all idle there
        db._checkout(s)
    for s in sessions:
        s.close()
    admin_url = db.engine.url.set(drivername="postgresql").render_as_string(False)
    name = db.engine.url.database
    others = "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"  # noqa: S608
    with psycopg.connect(admin_url, autocommit=True) as admin:
        cut = admin.execute(
            f"SELECT count(pg_terminate_backend(pid)) {others} AND state = 'idle'", (name,)
        ).fetchone()[0]
        assert cut >= 3
        deadline = time.monotonic() + 10  # until the backends are gone, not just signalled
        while admin.execute(f"SELECT count(*) {others}", (name,)).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # Each kind of transaction draws a dead connection first, and works all the same.
    with db.write() as s:
        s.get(Organization, org_id).name = "de novo"
    with db.read() as s:
        assert s.get(Organization, org_id).name == "de novo"
    with db.statements() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    with db.engine.connect() as conn:  # the ping's path
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
