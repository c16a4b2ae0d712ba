"""How ``Database.write`` ends: a block whose work a view already committed ends without a
second, empty commit; anything still to write — a transaction begun since, an object not yet
flushed, an audit event or a counter change queued for the commit — is committed as before."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, func, select

from engine.access.actor import SYSTEM
from engine.accounts.models import Organization
from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.dashboard import counts


@contextmanager
def _commits(db) -> Iterator[list[object]]:
    seen: list[object] = []

    def committing(session: object) -> None:
        seen.append(session)

    event.listen(db.session_factory, "before_commit", committing)
    try:
        yield seen
    finally:
        event.remove(db.session_factory, "before_commit", committing)


def _events(db, action: str) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).where(AuditEvent.action == action))


def test_a_block_committed_inside_ends_without_another_commit(db, make):
    org_id = make.org()
    with _commits(db) as seen, db.write() as s:
        s.get(Organization, org_id).name = "Secretaria renomeada"
        audit.record(s, SYSTEM, "test.renamed", org_id=org_id, data={})
        s.commit()
        assert not s.in_transaction()
    assert len(seen) == 1
    with db.read() as s:
        assert s.get(Organization, org_id).name == "Secretaria renomeada"
    assert _events(db, "test.renamed") == 1


def test_what_comes_after_an_inner_commit_is_still_committed(db, make):
    org_id = make.org()
    with _commits(db) as seen:
        with db.write() as s:  # an event queued with no statement since the commit
            s.commit()
            audit.record(s, SYSTEM, "test.after", org_id=org_id, data={})
        with db.write() as s:  # an object changed, not flushed
            s.commit()
            s.get(Organization, org_id).name = "Depois"
        with db.write() as s:  # a statement since: a transaction of its own
            s.commit()
            s.execute(select(Organization.id)).all()
        with db.write() as s:  # counter changes queued for the commit
            s.commit()
            s.info[counts._PENDING] = (Counter(), Counter())
    assert len(seen) == 8  # each block's inner commit, and its own at the end
    assert _events(db, "test.after") == 1
    with db.read() as s:
        assert s.get(Organization, org_id).name == "Depois"
