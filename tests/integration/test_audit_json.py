"""Any JSON value can go into the audit and the chain still verifies, on both databases: the
hash is computed over exactly the text that is stored."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from engine.access.actor import SYSTEM
from engine.audit import service as audit
from engine.audit import vault
from engine.audit import verify as verification
from engine.audit.canonical import canonical_json
from engine.audit.models import AuditEvent

# Numbers of every shape (big integers, floats of every exponent, -0.0, 1e20) and text of
# every kind (NUL, lone surrogates, astral characters such as emoji).
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e20, -0.0, 0.0, 1e308, 5e-324, 2**53 + 1, 1.5e-10, 10**20]),
)
strings = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=12,
)


def _stored_text(db, event_id: int) -> str:
    with db.engine.connect() as conn:
        return conn.execute(
            text("SELECT data FROM audit_event WHERE id = :id"), {"id": event_id}
        ).scalar_one()


def test_any_json_value_is_stored_as_hashed_and_verifies(db) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(value=values)
    @example(value={"quantidade": 1e20, "zero": -0.0, "grande": 10**30, "texto": "a\x00\ud800😀"})
    def append_and_verify(value) -> None:
        # A value the vault takes out (a key such as "CNS…", text holding a CPF) is stored as
        # its sealed marker, each with a fresh salt: tests/integration/test_lgpd*.py cover it.
        assume(not vault.seal({"v": value})[1])
        with db.write() as s:
            event = audit.record(s, SYSTEM, "test.value", org_id=None, data={"v": value})
        stored = _stored_text(db, event.id)
        assert stored == canonical_json({"v": value})
        with db.read() as s:
            event = s.get(AuditEvent, event.id)
            report = verification.verify(s)
        assert report.ok, [str(b) for b in report.breaks]
        # What comes back is the value itself, bit for bit (-0.0 stays -0.0, 1e20 a float).
        assert canonical_json(event.data) == stored

    append_and_verify()


def test_numbers_come_back_as_they_went_in(db) -> None:
    data = {"float": 1e20, "neg_zero": -0.0, "int": 10**20, "tiny": 5e-324, "big": 2**70}
    with db.write() as s:
        event = audit.record(s, SYSTEM, "test.numbers", org_id=None, data=data)
    event_id = event.id  # (appended at the commit)
    with db.read() as s:
        kept = s.scalar(select(AuditEvent.data).where(AuditEvent.id == event_id))
        assert verification.verify(s).ok
    assert {k: (type(v), repr(v)) for k, v in kept.items()} == {
        k: (type(v), repr(v)) for k, v in data.items()
    }
    assert math.copysign(1, kept["neg_zero"]) == -1


def test_values_that_are_not_json_are_kept_as_text(db) -> None:
    """NaN and infinities are not JSON (PostgreSQL refuses them): the audit still records the
    event, with the number's name."""
    data = {"nan": math.nan, "inf": math.inf, "neg": -math.inf, "when": datetime(2026, 1, 2), 1: 2}
    with db.write() as s:
        event = audit.record(s, SYSTEM, "test.odd", org_id=None, data=data)
    event_id = event.id  # (appended at the commit)
    with db.read() as s:
        assert s.get(AuditEvent, event_id).data == {
            "nan": "NaN", "inf": "Infinity", "neg": "-Infinity", "when": "2026-01-02 00:00:00",
            "1": 2,
        }  # fmt: skip
        assert verification.verify(s).ok


def test_the_hash_of_older_events_is_unchanged() -> None:
    """Events hashed before the data was kept as text verify the same way: the stored text
    is spliced in where ``json.dumps`` wrote the nested object."""
    fields = {
        "chain": "org:1", "seq": 7, "at": datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "org_id": 1, "actor_id": 3, "actor": "gestão@exemplo.gov.br", "action": "task.completed",
        "entity_type": "instance", "entity_id": "12", "prev_hash": "a" * 64,
    }  # fmt: skip
    data = {"task": 5, "data": {"nome": "Joãozinho 😀", "n": 1.5, "ok": True, "z": None}}
    legacy = json.dumps(
        {**fields, "at": fields["at"].isoformat(timespec="microseconds"), "data": data},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    expected = hashlib.sha256(legacy.encode("utf-8")).hexdigest()
    assert audit.event_hash(**fields, data=canonical_json(data)) == expected


def test_personal_values_of_events_with_and_without_an_organization_are_sealed_and_revealed(
    db, make
) -> None:
    """The vault finds a subject it already holds by its hash, in the organization's key
    space or in the one of events without an organization, and reveals what it sealed."""
    from engine.audit import vault
    from engine.lgpd.models import DataSubject

    email = "maria.silva@example.org"
    org_id = make.org()
    events = []
    for where in (None, None, org_id, org_id):  # one transaction each: the vault looks it up
        with db.write() as s:
            data = {"gestor_email": email}
            events.append(audit.record(s, SYSTEM, "test.person", org_id=where, data=data))
    with db.read() as s:
        subjects = s.scalars(select(DataSubject.org_id)).all()
        datas = [s.get(AuditEvent, e.id).data for e in events]
        shown = vault.reveal_all(s, datas)
    # One subject per key space: the second event of each found the first one's.
    assert sorted(subjects, key=lambda o: o or 0) == [None, org_id]
    assert all(data["gestor_email"] != email for data in datas)  # sealed in the chain
    assert [d["gestor_email"] for d in shown] == [email] * 4
