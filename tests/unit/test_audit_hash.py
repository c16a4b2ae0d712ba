"""``audit.event_hash`` writes the hashed text member by member: byte for byte what
``json.dumps`` of the whole event (sorted keys, no spaces, UTF-8 kept, lone surrogates
escaped, the stored data text spliced in) gives, for any values the columns may hold."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.audit import service as audit
from engine.audit.canonical import canonical_json, escape_surrogates

TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
NUMBER = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63))


def _legacy(fields: dict, data: object) -> str:
    """How the chain's hashes were first written: one ``json.dumps`` of the whole event."""
    event = {**fields, "at": fields["at"].isoformat(timespec="microseconds")}
    text = json.dumps(
        {**event, "data": "\x00DATA\x00"}, sort_keys=True, separators=(",", ":"),
        ensure_ascii=False,
    )  # fmt: skip
    head, _, tail = text.partition('"\\u0000DATA\\u0000"')
    body = escape_surrogates(head) + canonical_json(data) + escape_surrogates(tail)
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


@settings(max_examples=400, deadline=None)
@given(
    chain=TEXT, seq=st.integers(min_value=0, max_value=2**62), org_id=NUMBER, actor_id=NUMBER,
    actor=TEXT, action=TEXT, entity_type=TEXT, entity_id=TEXT, prev_hash=TEXT,
    at=st.datetimes(timezones=st.just(UTC)),
    data=st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.none(), st.booleans())),
)  # fmt: skip
def test_the_hash_is_the_one_json_dumps_of_the_whole_event_gives(data, **fields) -> None:
    assert audit.event_hash(**fields, data=canonical_json(data)) == _legacy(fields, data)


def test_known_event() -> None:
    fields = {
        "chain": "org:1", "seq": 7, "at": datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "org_id": None, "actor_id": 3, "actor": 'gestão "x" \\ \ud800\n',
        "action": "task.completed", "entity_type": "instance", "entity_id": "12",
        "prev_hash": "a" * 64,
    }  # fmt: skip
    assert audit.event_hash(**fields, data=canonical_json({"a": 1})) == _legacy(fields, {"a": 1})
