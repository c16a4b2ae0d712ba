"""How a read's transaction ends on PostgreSQL: with COMMIT when it wrote nothing, so that
the driver keeps the statements it prepared on the connection (psycopg drops them all at a
ROLLBACK); a read that wrote (reads never should) is rolled back, as before."""

from __future__ import annotations

import pytest
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
