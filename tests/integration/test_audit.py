"""The hash chain detects edits, deletions, reordering and a removed tail; every chain is
verified on its own, every break reported, and checkpoints make verification incremental."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from engine import settings as settings_mod
from engine.access.actor import SYSTEM
from engine.audit import service as audit
from engine.audit import verify as verification
from engine.audit.models import AuditCheckpoint, AuditEvent
from engine.demo import samples
from tests.support.builders import LANE_ROLES, cast
from tests.support.flows import flow
from tests.support.sql import statements


@pytest.fixture
def chain(make, client, db):
    people = cast(make, roles=LANE_ROLES)
    org, est, users = people.org, people.est, people.lanes
    f = flow(client, {"est": est, "users": users})
    f.complete("ambientar_servicos")
    f.complete("desenvolver_conector")
    with db.read() as s:
        assert verification.verify(s).ok
        return [
            e.id
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.chain == f"org:{org}").order_by(AuditEvent.seq)
            )
        ]


def _verify(db):
    """The first break found, or None."""
    with db.read() as s:
        breaks = verification.verify(s).breaks
    return breaks[0] if breaks else None


def _sql(db, statement: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _org(db, chain) -> int:
    with db.read() as s:
        return s.get(AuditEvent, chain[0]).org_id


def _append(db, org_id: int | None, n: int, **data: object) -> list[int]:
    with db.write() as s:
        rows = [
            audit.record(s, SYSTEM, "test.event", org_id=org_id, data={"i": i, **data})
            for i in range(n)
        ]
    return [row.id for row in rows]  # (appended at the commit)


def test_edit_is_detected(db, chain):
    _sql(db, "UPDATE audit_event SET actor = 'alguem@else' WHERE id = :id", id=chain[3])
    broken = _verify(db)
    assert broken is not None and broken.event_id == chain[3] and "alterado" in broken.problem


def test_edited_data_is_detected(db, chain):
    _sql(db, "UPDATE audit_event SET action = 'task.claimed' WHERE id = :id", id=chain[-2])
    assert _verify(db).event_id == chain[-2]


def test_a_data_text_that_means_the_same_but_reads_differently_is_detected(db, chain):
    """The hash covers the stored bytes: even a space added in the data text is a change."""
    with db.engine.begin() as conn:
        stored = conn.execute(
            text("SELECT data FROM audit_event WHERE id = :id"), {"id": chain[2]}
        ).scalar_one()
    _sql(db, "UPDATE audit_event SET data = :d WHERE id = :id", d=" " + stored, id=chain[2])
    assert _verify(db).event_id == chain[2]


def test_deletion_is_detected(db, chain):
    _sql(db, "DELETE FROM audit_event WHERE id = :id", id=chain[2])
    broken = _verify(db)
    assert broken is not None and broken.event_id == chain[3]


def test_reorder_is_detected(db, chain):
    a, b = chain[1], chain[2]
    _sql(db, "UPDATE audit_event SET seq = -seq WHERE id IN (:a, :b)", a=a, b=b)
    _sql(
        db,
        "UPDATE audit_event SET seq = CASE WHEN id = :a THEN -seq + 1 ELSE -seq - 1 END WHERE id IN (:a, :b)",
        a=a,
        b=b,
    )
    assert _verify(db) is not None


def test_removed_tail_is_detected(db, chain):
    _sql(db, "DELETE FROM audit_event WHERE id = :id", id=chain[-1])
    broken = _verify(db)
    assert broken is not None and "cabeça" in broken.problem


def test_an_event_appended_behind_the_head_is_detected(db, chain):
    """An event inserted by SQL after the last one, without moving the chain's head. (On
    SQLite the insert itself moves the head, by a trigger: whoever forges the event there
    drops the trigger first, as on PostgreSQL they would leave the head alone.)"""
    if db.dialect == "sqlite":
        _sql(db, "DROP TRIGGER audit_event_moves_head")
    with db.read() as s:
        last = s.get(AuditEvent, chain[-1])
        fields = {c: getattr(last, c) for c in ("chain", "at", "org_id", "actor_id", "actor",
                                                "action", "entity_type", "entity_id")}  # fmt: skip
        forged = {**fields, "seq": last.seq + 1, "data": "{}", "prev_hash": last.hash}
    forged["hash"] = audit.event_hash(**forged)
    with db.write() as s:
        s.add(AuditEvent(**{**forged, "data": {}}))
    broken = _verify(db)
    assert broken is not None and "cabeça" in broken.problem


def _forged_after(db, event_id: int, **changes: object) -> dict:
    with db.read() as s:
        last = s.get(AuditEvent, event_id)
        fields = {c: getattr(last, c) for c in ("chain", "at", "org_id", "actor_id", "actor",
                                                "action", "entity_type", "entity_id")}  # fmt: skip
        forged = {**fields, "seq": last.seq + 1, "data": "{}", "prev_hash": last.hash, **changes}
    forged["hash"] = audit.event_hash(**forged)
    return {**forged, "data": {}}


@pytest.mark.parametrize(
    "changes", [{"seq_step": 2}, {"prev_hash": "f" * 64}], ids=["a gap", "another prev_hash"]
)
def test_sqlite_refuses_an_event_that_does_not_follow_the_head(db, chain, changes):
    """SQLite's trigger: an event inserted anywhere but right after the head, by any path, is
    refused by the database, and the head and the chain stay as they were."""
    if db.dialect != "sqlite":
        pytest.skip("the head's trigger is SQLite's; PostgreSQL's appends lock the head")
    with db.read() as s:
        last = s.get(AuditEvent, chain[-1])
    step = changes.pop("seq_step", 1)
    forged = _forged_after(db, chain[-1], seq=last.seq + step, **changes)
    with pytest.raises(IntegrityError, match="does not follow the head"), db.write() as s:
        s.add(AuditEvent(**forged))
    assert _head(db, _org(db, chain)) == (last.seq, last.hash)
    assert _verify(db) is None


def test_sqlite_moves_the_head_with_the_insert_of_an_event(db, chain):
    """SQLite's trigger: an event that follows the head moves it, with no statement of its
    own (PostgreSQL: the append's one statement moves it)."""
    if db.dialect != "sqlite":
        pytest.skip("the head's trigger is SQLite's")
    forged = _forged_after(db, chain[-1])
    with statements(db) as seen, db.write() as s:
        s.add(AuditEvent(**forged))
    assert not [sql for sql in seen if "audit_chain" in sql], seen
    assert _head(db, _org(db, chain)) == (forged["seq"], forged["hash"])


def test_every_chain_reports_every_break(db, make, chain):
    """Before: the check stopped at the first break of the whole installation, so an edit in
    another organization's chain (or later in the same one) went unreported."""
    other = make.org("sesa-sp", "Secretaria da Saúde de São Paulo")
    theirs = _append(db, other, 5)
    system = _append(db, None, 3)
    _sql(db, "UPDATE audit_event SET actor = 'x' WHERE id IN (:a, :b)", a=chain[1], b=chain[4])
    _sql(db, "UPDATE audit_event SET entity_id = 'y' WHERE id = :id", id=theirs[3])
    with db.read() as s:
        report = verification.verify(s)
    assert not report.ok
    by_chain = {c.chain: c for c in report.chains}
    ours = by_chain[f"org:{_org(db, chain)}"]
    assert [b.event_id for b in ours.breaks] == [chain[1], chain[4]] and ours.broken == 2
    assert [b.event_id for b in by_chain[f"org:{other}"].breaks] == [theirs[3]]
    assert by_chain["system"].broken == 0 and by_chain["system"].checked >= len(system)
    assert ours.intact.seq == 1  # the prefix before the first break


def test_checkpoints_verify_only_what_is_new(db, chain):
    org = _org(db, chain)
    first = verification.run(db, by="teste")
    assert first.ok and first.chain(f"org:{org}").checked == len(chain)
    with db.read() as s:
        cp = s.get(AuditCheckpoint, f"org:{org}")
        assert (cp.seq, cp.event_id, cp.status, cp.full) == (len(chain), chain[-1], "ok", True)
    new = _append(db, org, 3)
    second = verification.run(db, by="teste", org_ids=[org])
    ours = second.chain(f"org:{org}")
    assert ours.status == "ok"
    assert ours.checked == 3 and ours.start.seq == len(chain) and not ours.full
    with db.read() as s:
        assert s.get(AuditCheckpoint, f"org:{org}").event_id == new[-1]


def test_an_edit_after_the_checkpoint_is_found_by_the_incremental_run(db, chain):
    org = _org(db, chain)
    verification.run(db, by="teste")
    new = _append(db, org, 4)
    _sql(db, "UPDATE audit_event SET actor = 'x' WHERE id = :id", id=new[1])
    report = verification.run(db, by="teste", org_ids=[org])
    ours = report.chain(f"org:{org}")
    assert [b.event_id for b in ours.breaks] == [new[1]] and ours.checked == 4
    with db.read() as s:
        cp = s.get(AuditCheckpoint, f"org:{org}")
    assert cp.status == "broken" and cp.event_id == new[0] and str(new[1]) in cp.problems[0]
    # The break stays reported: the checkpoint does not pass it.
    assert not verification.run(db, by="teste", org_ids=[org]).ok


def test_an_edit_before_the_checkpoint_is_found_by_a_full_run(db, chain):
    org = _org(db, chain)
    verification.run(db, by="teste")
    _append(db, org, 2)
    _sql(db, "UPDATE audit_event SET entity_id = 'x' WHERE id = :id", id=chain[2])
    assert verification.run(db, by="teste").ok  # incremental: only the two new events
    full = verification.run(db, by="teste", full=True)
    assert [b.event_id for b in full.breaks] == [chain[2]]
    with db.read() as s:
        cp = s.get(AuditCheckpoint, f"org:{org}")
    assert cp.seq == 2 and cp.status == "broken" and cp.full  # moved back before the break
    # From now on the incremental runs report it too.
    assert [b.event_id for b in verification.run(db, by="teste").breaks] == [chain[2]]


def test_a_changed_checkpoint_event_sends_the_chain_back_to_a_full_check(db, chain):
    org = _org(db, chain)
    verification.run(db, by="teste")
    _sql(db, "UPDATE audit_event SET actor = 'x' WHERE id = :id", id=chain[-1])
    report = verification.run(db, by="teste", org_ids=[org])
    assert [b.event_id for b in report.breaks] == [chain[-1]] and report.chains[0].full


def test_a_run_with_a_limit_goes_on_where_it_stopped(db, chain):
    org = _org(db, chain)
    key = f"org:{org}"
    part = verification.run(db, by="teste", org_ids=[org], limit=3).chain(key)
    assert (part.status, part.checked, part.pending) == ("partial", 3, len(chain) - 3)
    rest = verification.run(db, by="teste", org_ids=[org]).chain(key)
    assert (rest.status, rest.checked, rest.start.seq) == ("ok", len(chain) - 3, 3)


def test_the_audit_holds_numbers_the_database_would_rewrite(db, make, client):
    """Issue 12 item 1: ``1e20`` in an integer field and ``-0.0`` were hashed as ``1e+20`` and
    ``-0.0`` while PostgreSQL's JSONB gave back ``100000000000000000000`` and ``0``: the chain
    was reported broken though nobody touched it."""
    people = cast(make, roles=LANE_ROLES)
    est, users = people.est, people.lanes
    f = flow(client, {"est": est, "users": users})
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    f.complete("ambientar_servicos")
    data = samples.answer("solicitar_acesso_homologacao", f.ctx)
    data |= {"quantidade_atendimentos": 1e20, "atendimentos_minimo_dia": -0.0}
    f.complete("solicitar_acesso_homologacao", data=data)
    with db.read() as s:
        report = verification.verify(s)
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "task.completed").order_by(AuditEvent.id)
        ).all()[-1]
    assert report.ok, [str(b) for b in report.breaks]
    kept = event.data["data"]
    # Form cleaning turns integral floats into ints before anything is stored or hashed (the
    # audit itself keeps any JSON number as given: tests/integration/test_audit_json.py).
    assert repr(kept["quantidade_atendimentos"]) == "100000000000000000000"
    assert repr(kept["atendimentos_minimo_dia"]) == "0"


def test_cli_verify_reports_every_broken_link(db, chain, db_url, monkeypatch):
    from web.cli import main

    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    ok = CliRunner().invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "íntegra" in ok.output and "desde o início" in ok.output
    # Before the checkpoints: only a full run looks there.
    _sql(db, "UPDATE audit_event SET data = :d WHERE id = :id", d='{"x": 1}', id=chain[4])
    _sql(db, "UPDATE audit_event SET actor = 'x' WHERE id = :id", id=chain[6])
    again = CliRunner().invoke(main, ["audit", "verify"])
    assert again.exit_code == 0 and "após o seq" in again.output
    bad = CliRunner().invoke(main, ["audit", "verify", "--full"])
    assert bad.exit_code == 1
    assert f"evento {chain[4]}" in bad.output and f"evento {chain[6]}" in bad.output
    assert "2 quebra(s)" in bad.output


def _actions(db, org_id: int) -> list[str]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.chain == audit.chain_key(org_id))
                .order_by(AuditEvent.seq)
            )
        )


def test_the_chain_head_is_locked_only_from_the_append_to_the_commit(db, make):
    """Recording queues the event: the transaction works on without touching the chain's
    head, and its events are appended, in order, under one lock just before it commits."""
    from sqlalchemy import event

    org = make.org()
    seen: list[str] = []

    def statement(conn, cursor, sql, *args) -> None:
        seen.append(sql)

    event.listen(db.engine, "before_cursor_execute", statement)
    try:
        with db.write() as s:
            first = audit.record(s, SYSTEM, "test.first", org_id=org, data={"i": 1})
            second = audit.record(s, SYSTEM, "test.second", org_id=org, data={"i": 2})
            s.execute(text("SELECT 1"))  # the transaction goes on
            assert not any("audit_chain" in sql for sql in seen)
            assert first.id is None
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
    locks = [sql for sql in seen if sql.lstrip().startswith("SELECT") and "audit_chain" in sql]
    assert len(locks) == 1, locks  # one lock of the head for both events
    assert (second.seq, second.prev_hash) == (first.seq + 1, first.hash)
    assert _actions(db, org)[-2:] == ["test.first", "test.second"]
    assert _verify(db) is None


def _head(db, org) -> tuple[int, str]:
    with db.read() as s:
        head = s.execute(
            text("SELECT last_seq, last_hash FROM audit_chain WHERE key = :k"),
            {"k": audit.chain_key(org)},
        ).one()
        return head.last_seq, head.last_hash


def _started(db, make) -> tuple[int, int, str]:
    """A new organization whose chain has one event: (org, the head's seq and hash)."""
    org = make.org()
    with db.write() as s:
        audit.record(s, SYSTEM, "test.start", org_id=org)
    return (org, *_head(db, org))


def test_a_head_seen_in_the_transaction_is_moved_without_being_read_again(db, make):
    """A statement of the transaction read the head (the completion's UPDATE of its
    instance): the append moves it only if it is still that one, and reads it no more."""
    org, seq, last_hash = _started(db, make)
    with statements(db) as seen, db.write() as s:
        audit.head_seen(s, audit.chain_key(org), seq, last_hash)
        event = audit.record(s, SYSTEM, "test.seen", org_id=org, data={"i": 1})
    assert not [sql for sql in seen if sql.startswith("SELECT") and "audit_chain" in sql], seen
    moves = [sql for sql in seen if "UPDATE audit_chain" in sql]
    if db.dialect == "postgresql":
        assert len(moves) == 1 and "last_seq = " in moves[0].split("WHERE")[1], moves
    else:  # the insert's trigger moves it: one statement
        assert moves == [] and len([sql for sql in seen if "INTO audit_event" in sql]) == 1, seen
    assert (event.seq, event.prev_hash) == (seq + 1, last_hash)
    assert _head(db, org) == (event.seq, event.hash)
    assert _verify(db) is None


def test_a_head_moved_since_it_was_seen_is_locked_and_read_again(db, make):
    """Another append after the head was seen (here the transaction's own, on both
    databases): the conditional move changes nothing and the events chain after the head
    as it now is."""
    org, seq, last_hash = _started(db, make)
    with db.write() as s:
        audit.head_seen(s, audit.chain_key(org), seq, last_hash)
        audit.append_many(s, SYSTEM, org, [audit.NewEvent("test.between", "", "", {})])
        event = audit.record(s, SYSTEM, "test.after", org_id=org)
    assert event.seq == seq + 2
    assert _actions(db, org)[-2:] == ["test.between", "test.after"]
    assert _head(db, org) == (event.seq, event.hash)
    assert _verify(db) is None


@pytest.mark.postgres_only
def test_a_head_another_transaction_moved_since_it_was_seen_is_locked_and_read_again(db, make):
    org, seq, last_hash = _started(db, make)
    with statements(db) as seen, db.write() as s:
        audit.head_seen(s, audit.chain_key(org), seq, last_hash)
        mine = audit.record(s, SYSTEM, "test.mine", org_id=org)
        with db.write() as other:  # commits first
            theirs = audit.record(other, SYSTEM, "test.theirs", org_id=org)
    assert (theirs.seq, mine.seq) == (seq + 1, seq + 2)
    assert mine.prev_hash == theirs.hash
    locks = [sql for sql in seen if sql.startswith("SELECT") and "FOR UPDATE" in sql]
    assert any("audit_chain" in sql for sql in locks), seen
    assert _actions(db, org)[-2:] == ["test.theirs", "test.mine"]
    assert _verify(db) is None


def test_a_completion_reads_the_head_with_its_instance_and_appends_in_one_statement(
    client, db, make
):
    """A plain step: on PostgreSQL its audit event goes in one statement, the head having been
    read by the instance's UPDATE; on SQLite the head is not read either."""
    people = cast(make, roles=LANE_ROLES)
    f = flow(client, {"est": people.est, "users": people.lanes})
    with statements(db) as seen:
        f.complete("ambientar_servicos")
    chain_reads = [sql for sql in seen if sql.startswith("SELECT") and "FROM audit_chain" in sql]
    assert chain_reads == [], chain_reads
    instance_update = [
        sql
        for sql in seen
        if "UPDATE process_instance SET" in sql and "audit_chain" in sql.split("RETURNING")[-1]
    ]
    assert len(instance_update) == 1, seen
    appends = [sql for sql in seen if "INTO audit_event" in sql]
    assert len(appends) == 1
    if db.dialect == "postgresql":
        assert appends[0].startswith("WITH moved AS (UPDATE audit_chain")
    with db.read() as s:
        assert verification.verify(s).ok


def test_a_transactions_events_are_appended_in_one_statement_with_their_ids(db, make):
    """Several events of one chain go in one INSERT on both databases (on SQLite they used to
    go one by one), and each returned row gets the id of its own event."""
    org = make.org()
    with statements(db) as seen, db.write() as s:
        events = [audit.record(s, SYSTEM, f"test.many.{i}", org_id=org) for i in range(3)]
    appends = [sql for sql in seen if "INTO audit_event" in sql]
    assert len(appends) == 1, seen
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    with db.read() as s:
        stored = {
            row.id: (row.seq, row.action, row.hash)
            for row in s.scalars(select(AuditEvent).where(AuditEvent.org_id == org))
        }
    for i, event in enumerate(events):
        assert stored[event.id] == (event.seq, f"test.many.{i}", event.hash)
    assert _verify(db) is None


def test_hundreds_of_events_of_one_transaction_keep_their_own_ids(db, make):
    """More events than one statement takes on SQLite (100): several INSERTs, and every row
    returned still carries its own event's id."""
    org = make.org()
    with statements(db) as seen, db.write() as s:
        events = [audit.record(s, SYSTEM, f"test.lot.{i}", org_id=org) for i in range(250)]
    if db.dialect == "sqlite":
        assert len([sql for sql in seen if "INTO audit_event" in sql]) == 3
    with db.read() as s:
        stored = dict(
            s.execute(
                select(AuditEvent.id, AuditEvent.action).where(AuditEvent.org_id == org)
            ).all()
        )
    assert [stored[e.id] for e in events] == [f"test.lot.{i}" for i in range(250)]
    assert _verify(db) is None


def test_events_of_a_rolled_back_savepoint_are_not_appended(db, make):
    org = make.org()
    with db.write() as s:
        audit.record(s, SYSTEM, "test.before", org_id=org)
        with pytest.raises(RuntimeError), s.begin_nested():
            audit.record(s, SYSTEM, "test.dropped", org_id=org)
            raise RuntimeError("the savepoint rolls back")
        audit.record(s, SYSTEM, "test.after", org_id=org)
    actions = _actions(db, org)
    assert "test.dropped" not in actions
    assert actions[-2:] == ["test.before", "test.after"]
    assert _verify(db) is None


def test_events_of_a_rolled_back_transaction_are_not_appended(db, make):
    org = make.org()
    with pytest.raises(RuntimeError), db.write() as s:
        audit.record(s, SYSTEM, "test.dropped", org_id=org)
        raise RuntimeError("all of it rolls back")
    with db.write() as s:
        audit.record(s, SYSTEM, "test.next", org_id=org)
    actions = _actions(db, org)
    assert "test.dropped" not in actions and actions[-1] == "test.next"
