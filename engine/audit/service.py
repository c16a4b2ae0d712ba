"""The append-only, hash-chained audit log.

Each organization has its own chain (events without an organization go to ``system``), so
writers of different organizations never wait for each other. A transaction's events are
appended just before it commits, under one lock of the chain's head held from there to the
commit: the events commit or roll back with the change they describe, concurrent appends line
up one after another, and the head is not held while the rest of the transaction works.

Each event's hash covers the previous one's, and its data is stored as the very text that
was hashed (engine/audit/canonical.py); engine/audit/verify.py walks the chains. Personal
values never enter that text: engine/audit/vault.py replaces each by a salted commitment and
keeps the value, encrypted per data subject, beside the chain (so it can be erased).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from engine import db
from engine.audit import vault
from engine.audit.canonical import CanonicalText, canonical_json, escape_surrogates
from engine.audit.models import AuditChain, AuditEvent

if TYPE_CHECKING:
    from engine.access.actor import Actor
    from engine.audit.verify import Break
    from engine.errors import Forbidden

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"


def chain_key(org_id: int | None) -> str:
    return f"org:{org_id}" if org_id is not None else SYSTEM_CHAIN


# ``json.dumps(text, ensure_ascii=False)`` of one string, without the encoder's set-up.
_string = json.encoder.encode_basestring


def _value(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)`` of one of an event's columns."""
    if value.__class__ is str:
        return _string(value)
    if value is None:
        return "null"
    if value.__class__ is int:
        return int.__repr__(value)
    return json.dumps(value, ensure_ascii=False)


def event_hash(
    *,
    chain: str,
    seq: int,
    at: datetime,
    org_id: int | None,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    data: str,
    prev_hash: str,
) -> str:
    """SHA-256 of the event as one JSON object with sorted keys, ``data`` being the canonical
    text exactly as stored (``canonical_json``), spliced in as is.

    The same bytes as ``json.dumps`` of the whole event (sorted keys, no spaces, UTF-8 kept,
    a lone surrogate escaped) with the data as a nested object, the form older events were
    hashed in; written member by member, in the sorted order, since every event is hashed
    when it is appended and again whenever the chain is verified.
    """
    members = (
        '{"action":' + _value(action) + ',"actor":' + _value(actor)
        + ',"actor_id":' + _value(actor_id)
        + ',"at":' + _value(at.isoformat(timespec="microseconds"))
        + ',"chain":' + _value(chain) + ',"data":'
    )  # fmt: skip
    rest = (
        ',"entity_id":' + _value(entity_id) + ',"entity_type":' + _value(entity_type)
        + ',"org_id":' + _value(org_id) + ',"prev_hash":' + _value(prev_hash)
        + ',"seq":' + _value(seq) + "}"
    )  # fmt: skip
    # (``data`` is canonical text: its surrogates are escaped already.)
    body = escape_surrogates(members) + data + escape_surrogates(rest)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


_CHAIN = AuditChain.__table__
_EVENT = AuditEvent.__table__


# Built once (every completion appends): the head's lock, and its move after a COPY.
_HEAD_LOCK = (
    select(_CHAIN.c.last_seq, _CHAIN.c.last_hash)
    .where(_CHAIN.c.key == bindparam("chain_key"))
    .with_for_update()
)
_HEAD_MOVE = (
    update(_CHAIN)
    .where(_CHAIN.c.key == bindparam("chain_key"))
    .values(last_seq=bindparam("head_seq"), last_hash=bindparam("head_hash"))
)


# The head of a chain read by a statement the transaction runs anyway (the completion's
# UPDATE of its instance, engine/runtime/sync.py), without a lock: ``HEAD_SEEN`` are that
# statement's RETURNING columns, their parameter ``audit_chain_key``. The append at the commit
# then moves the head only if it is still the one seen (``_append_after``): one statement on
# PostgreSQL, and no read of the head, where locking and reading it took one more. When
# another transaction appended in between, the append locks and reads the head as before.
HEAD_SEEN = tuple(
    select(column).where(_CHAIN.c.key == bindparam("audit_chain_key")).scalar_subquery()
    for column in (_CHAIN.c.last_seq, _CHAIN.c.last_hash)
)
_SEEN = "audit.head_seen"  # in the transaction memo: chain key → (seq, hash)


def head_seen(session: Session, key: str, seq: int | None, last_hash: str | None) -> None:
    """Keep the head ``HEAD_SEEN`` read for the chain ``key`` until the transaction ends."""
    if seq is not None and last_hash is not None:
        db.transaction_memo(session).setdefault(_SEEN, {})[key] = (seq, last_hash)


def _lock_head(session: Session, key: str) -> tuple[int, str]:
    """Lock the chain's head until the commit: its (last seq, last hash)."""
    head = session.execute(_HEAD_LOCK, {"chain_key": key}).first()
    if head is not None:
        return head.last_seq, head.last_hash
    # First event of the chain: create its head; a concurrent creator's row wins quietly.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(_CHAIN).values(key=key, last_seq=0, last_hash=GENESIS).on_conflict_do_nothing()
    )
    head = session.execute(_HEAD_LOCK, {"chain_key": key}).one()
    return head.last_seq, head.last_hash


def _set_head(session: Session, key: str, seq: int, last_hash: str) -> None:
    params = {"chain_key": key, "head_seq": seq, "head_hash": last_hash}
    db.send(session.connection(), _HEAD_MOVE, params)


class NewEvent(NamedTuple):
    """One event of ``append_many``."""

    action: str
    entity_type: str
    entity_id: str
    data: dict[str, Any]


class _Who(NamedTuple):
    actor_id: int | None
    actor: str


def _who(actor: Actor | None) -> _Who:
    return _Who(actor.user_id, actor.label) if actor else _Who(None, "system")


def _fields(
    key: str, seq: int, prev_hash: str, org_id: int | None, who: _Who, event: NewEvent
) -> dict[str, Any]:
    """The columns of the next event of the chain, hash included; ``data`` as the canonical
    text the hash covers and the database keeps."""
    fields = {
        "chain": key,
        "seq": seq,
        "at": db.utcnow(),
        "org_id": org_id,
        "actor_id": who.actor_id,
        "actor": who.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": str(event.entity_id),
        "data": canonical_json(event.data),
        "prev_hash": prev_hash,
    }
    fields["hash"] = event_hash(**fields)
    return fields


def _chained(
    key: str, seq: int, prev: str, org_id: int | None, items: Sequence[tuple[_Who, NewEvent]]
) -> tuple[list[dict[str, Any]], list[vault.Placed]]:
    """The rows of ``items`` appended after (seq, prev), and where their personal values go."""
    rows, places = [], []
    for who, event in items:
        seq += 1
        sealed, personal = vault.seal(event.data)
        fields = _fields(key, seq, prev, org_id, who, event._replace(data=sealed))
        rows.append(fields)
        prev = fields["hash"]
        if personal:
            places.append(vault.Placed(key, seq, event.entity_type, fields["entity_id"], personal))
    return rows, places


_COLUMNS = (
    "chain", "seq", "at", "org_id", "actor_id", "actor", "action", "entity_type", "entity_id",
    "data", "prev_hash", "hash",
)  # fmt: skip

# Events recorded by a transaction, appended just before it commits (``write_pending``).
_PENDING = "audit_pending"


class _Queued(NamedTuple):
    row: AuditEvent  # what ``record`` returned: filled in when appended
    org_id: int | None
    who: _Who
    event: NewEvent
    transaction: SessionTransaction | None  # the (nested) transaction that recorded it


def _queue(session: Session, org_id: int | None, who: _Who, event: NewEvent) -> AuditEvent:
    row = AuditEvent(
        org_id=org_id, actor_id=who.actor_id, actor=who.actor, action=event.action,
        entity_type=event.entity_type, entity_id=event.entity_id, data=event.data,
    )  # fmt: skip
    current = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append(_Queued(row, org_id, who, event, current))
    return row


def write_pending(session: Session) -> None:
    """Append the transaction's recorded events to their chains, in the order they were
    recorded, each chain's head locked from here to the commit (chains in key order, so that
    transactions touching several lock them in one order)."""
    queued: list[_Queued] = session.info.pop(_PENDING, None) or []
    if not queued:
        return
    session.flush()  # the rows the events name (users, organizations) exist first
    by_chain: dict[str, list[_Queued]] = {}
    for item in queued:
        by_chain.setdefault(chain_key(item.org_id), []).append(item)
    seen = db.transaction_memo(session).get(_SEEN, {})
    for key in sorted(by_chain):
        items = by_chain[key]
        org_id = items[0].org_id
        events = [(q.who, q.event) for q in items]
        ids = None
        if key in seen:  # the head as a statement of this transaction saw it
            head = seen.pop(key)
            rows, places = _chained(key, *head, org_id, events)
            ids = _append_after(session, key, head, rows)
        if ids is None:  # not seen, or another transaction appended since: lock and read it
            seq, prev = _lock_head(session, key)
            rows, places = _chained(key, seq, prev, org_id, events)
            ids = _insert_and_move_head(session, key, rows)
        vault.store(session, org_id, places)
        for item, fields, event_id in zip(items, rows, ids, strict=True):
            row = item.row
            row.id, row.chain, row.seq, row.at = event_id, key, fields["seq"], fields["at"]
            row.prev_hash, row.hash = fields["prev_hash"], fields["hash"]
            row.data = json.loads(fields["data"])


def _append_after(
    session: Session, key: str, head: tuple[int, str], rows: list[dict[str, Any]]
) -> list[int] | None:
    """Append ``rows`` (chained after ``head``) and move the chain's head to the last of them,
    if the head is still ``head``: the events' ids in order, or None, with nothing written,
    when another transaction moved it since it was seen. Moving the head locks it until the
    commit, as ``_lock_head`` does (an UPDATE of a row another transaction holds waits for it,
    then finds the head moved)."""
    if session.get_bind().dialect.name != "postgresql":
        # SQLite: no other transaction can have moved the head since it was seen (the
        # statement that saw it took the database's one write lock, held to the commit), and
        # this one's own moves forget it (``append_many``). The insert's trigger moves the
        # head, and refuses an event that does not follow it (engine/audit/models.py).
        return _insert(session, rows)
    params: dict[str, Any] = {
        "chain_key": key, "seen_seq": head[0], "seen_hash": head[1],
        "head_seq": rows[-1]["seq"], "head_hash": rows[-1]["hash"],
        **_numbered(rows),
    }  # fmt: skip
    found = db.send(session.connection(), _append_after_statement(len(rows)), params).rows[0][0]
    return None if found is None else list(found)


def _numbered(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The events' columns as the parameters of a many-row statement: ``<column>_<row>``."""
    return {f"{c}_{i}": fields[c] for i, fields in enumerate(rows) for c in _COLUMNS}


@functools.cache
def _append_after_statement(n: int) -> Any:
    """PostgreSQL: the head's conditional move and the insert of ``n`` events, which happens
    only if the head moved, in one statement (the values typed as the columns are)."""
    dialect = postgresql.dialect()
    types = {c: _EVENT.c[c].type.compile(dialect=dialect) for c in _COLUMNS}
    values = ", ".join(
        "(" + ", ".join(f"CAST(:{c}_{i} AS {types[c]})" for c in _COLUMNS) + ")" for i in range(n)
    )
    columns = ", ".join(_COLUMNS)
    # (Only constant names and placeholders go into the text: the values are parameters.)
    return text(
        "WITH moved AS (UPDATE audit_chain SET last_seq = :head_seq, last_hash = :head_hash"  # noqa: S608
        " WHERE key = :chain_key AND last_seq = :seen_seq AND last_hash = :seen_hash"
        " RETURNING key), "
        f"added AS (INSERT INTO audit_event ({columns}) "
        f"SELECT * FROM (VALUES {values}) AS v ({columns}) "
        "WHERE EXISTS (SELECT 1 FROM moved) RETURNING id) "
        "SELECT array_agg(id ORDER BY id) FROM added"
    )


@functools.cache
def _insert_statement(n: int) -> Any:
    """SQLite: the INSERT of ``n`` events in one statement, returning each one's id with its
    seq (which tells them apart: SQLite does not promise RETURNING's order)."""
    rows = [{c: bindparam(f"{c}_{i}", type_=_EVENT.c[c].type) for c in _COLUMNS} for i in range(n)]
    return insert(_EVENT).values(rows).returning(_EVENT.c.seq, _EVENT.c.id)


_INSERT_CHUNK = 100  # events per statement: 1,200 parameters, far below SQLite's limit


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the events (SQLite): their ids, in the order of ``rows``."""
    ids: dict[int, int] = {}
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        params = _numbered(chunk)
        for i, fields in enumerate(chunk):
            params[f"data_{i}"] = CanonicalText(fields["data"])
        ids.update(db.send(session.connection(), _insert_statement(len(chunk)), params).rows)
    return [ids[r["seq"]] for r in rows]


def _insert_and_move_head(session: Session, key: str, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the chain's new events and set its head to the last one: the ids of the events,
    in order. One statement: on PostgreSQL the insert in a WITH of the head's update, on
    SQLite the insert, whose trigger moves the head."""
    if session.get_bind().dialect.name != "postgresql":
        return _insert(session, rows)
    seq, last_hash = rows[-1]["seq"], rows[-1]["hash"]
    params = {"chain_key": key, "head_seq": seq, "head_hash": last_hash, **_numbered(rows)}
    values = ["(" + ", ".join(f":{c}_{i}" for c in _COLUMNS) + ")" for i in range(len(rows))]
    # The ids come from the table's sequence in the order of the rows. (Only constant names
    # and placeholders go into the text: the values are parameters.)
    statement = text(
        f"WITH added AS (INSERT INTO audit_event ({', '.join(_COLUMNS)}) "  # noqa: S608
        f"VALUES {', '.join(values)} RETURNING id) "
        "UPDATE audit_chain SET last_seq = :head_seq, last_hash = :head_hash "
        "WHERE key = :chain_key RETURNING (SELECT array_agg(id ORDER BY id) FROM added)"
    )
    return list(session.execute(statement, params).scalar_one())


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """Forget the events recorded inside a transaction (or savepoint) that rolled back."""
    queued: list[_Queued] | None = session.info.get(_PENDING)
    if not queued:
        return

    def inside(transaction: SessionTransaction | None) -> bool:
        if transaction is None:  # recorded before the transaction began: the outermost one's
            return previous.parent is None
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    session.info[_PENDING] = [q for q in queued if not inside(q.transaction)]


db.at_commit(
    10, write_pending, lambda session: None, lambda session: bool(session.info.get(_PENDING))
)


def append_many(
    session: Session, actor: Actor | None, org_id: int | None, events: Sequence[NewEvent]
) -> int:
    """Append ``events``, in order, to the organization's chain inside the caller's
    transaction, now (after the events it recorded before): under one lock of the chain's
    head and in one statement (COPY on PostgreSQL). Returns the number of events."""
    if not events:
        return 0
    write_pending(session)
    key = chain_key(org_id)
    db.transaction_memo(session).get(_SEEN, {}).pop(key, None)  # the head moves here
    seq, prev = _lock_head(session, key)
    who = _who(actor)
    rows, places = _chained(key, seq, prev, org_id, [(who, e) for e in events])
    vault.store(session, org_id, places)  # one batch for all the events' personal values
    if session.get_bind().dialect.name == "postgresql":
        raw = session.connection().connection.driver_connection
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY audit_event ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
        ):
            for fields in rows:  # the canonical text goes in as it is
                copy.write_row(tuple(fields[c] for c in _COLUMNS))
        _set_head(session, key, rows[-1]["seq"], rows[-1]["hash"])
    else:  # (the insert's trigger moves the head)
        session.execute(insert(_EVENT), [{**f, "data": CanonicalText(f["data"])} for f in rows])
    return len(rows)


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    *,
    org_id: int | None,
    entity_type: str = "",
    entity_id: str | int = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record one event for its organization's chain: appended when the caller's transaction
    commits (rolled back with it). The returned row has its id, seq and hash from then on."""
    return _queue(
        session, org_id, _who(actor), NewEvent(action, entity_type, str(entity_id), data or {})
    )


def record_denial(session: Session, denial: Forbidden) -> AuditEvent:
    who = _Who(denial.actor_id, denial.actor_label or "anonymous")
    event = NewEvent(
        f"denied.{denial.action}",
        denial.entity_type,
        str(denial.entity_id),
        {"reason": denial.message, **denial.details},
    )
    return _queue(session, denial.org_id, who, event)


def verify(session: Session) -> tuple[int, Break | None]:
    """Every chain from its start, saving nothing: (events checked, the first break found or
    None). Reports and checkpoints: engine/audit/verify.py, which finds every break of every
    chain."""
    from engine.audit import verify as verification  # it builds on this module

    report = verification.verify(session)
    breaks = report.breaks
    return report.checked, breaks[0] if breaks else None
