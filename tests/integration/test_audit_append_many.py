"""``audit.append_many``: many events in one statement, chained exactly as ``record`` chains
them (the bulk start writes its ``instance.started`` events with it)."""

from __future__ import annotations

from sqlalchemy import select

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.audit.models import AuditChain, AuditEvent

ACTOR = Actor(user_id=None, label="cli:test", is_system=True)


def test_append_many_continues_the_chain_between_single_events(db, make) -> None:
    org = make.org()
    with db.write() as s:
        audit.record(s, ACTOR, "first", org_id=org, entity_type="x", entity_id=1)
        added = audit.append_many(
            s,
            ACTOR,
            org,
            [
                audit.NewEvent(
                    "many", "instance", str(i), {"n": i, "nome": "São Paulo", "ok": True}
                )
                for i in range(5)
            ],
        )
        audit.record(s, ACTOR, "last", org_id=org, entity_type="x", entity_id=2)
    assert added == 5
    with db.read() as s:
        events = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.chain == audit.chain_key(org))
                .order_by(AuditEvent.seq)
            )
        )
        head = s.get(AuditChain, audit.chain_key(org))
        assert audit.verify(s)[1] is None
    # (the organization's creation is the chain's first event)
    assert [e.action for e in events][-7:] == ["first", *["many"] * 5, "last"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.prev_hash == p.hash for p, e in zip(events, events[1:], strict=False))
    assert (head.last_seq, head.last_hash) == (events[-1].seq, events[-1].hash)
    many = [e for e in events if e.action == "many"]
    assert [e.entity_id for e in many] == ["0", "1", "2", "3", "4"]
    assert many[2].data == {"n": 2, "nome": "São Paulo", "ok": True}
    assert {(e.actor, e.actor_id, e.org_id) for e in many} == {("cli:test", None, org)}


def test_append_many_with_nothing_writes_nothing(db, make) -> None:
    org = make.org()
    with db.read() as s:
        before = s.scalar(select(AuditChain.last_seq).where(AuditChain.key == audit.chain_key(org)))
    with db.write() as s:
        assert audit.append_many(s, ACTOR, org, []) == 0
    with db.read() as s:
        after = s.scalar(select(AuditChain.last_seq).where(AuditChain.key == audit.chain_key(org)))
    assert before == after
