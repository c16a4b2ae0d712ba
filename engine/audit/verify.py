"""Verifying the hash chains: every chain on its own, every break, from a checkpoint.

A chain is intact when its events run 1, 2, 3… without gaps, each names the previous one's
hash, each hash matches its content (the stored data text included), and the chain's head
row names the last event. Verification reports *all* breaks of *every* chain: a break in one
organization's chain never hides tampering in another's, nor a later break in the same one
(after a break the walk resynchronizes on the stored hashes and goes on).

Verifying everything again on every look is a minute at 344k events, so each chain keeps a
checkpoint (``AuditCheckpoint``): the end of the prefix found intact from its start. An
incremental run rechecks the checkpoint's event and walks only what came after; a full run
(``full=True``, ``credencia audit verify --full``) walks from the start and moves the
checkpoint back if it finds a break before it. An edit before a checkpoint is therefore
found by a full run, an edit after it by any run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Text, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.audit.models import AuditChain, AuditCheckpoint, AuditEvent
from engine.audit.service import GENESIS, chain_key, event_hash
from engine.db import Database, utcnow

OK, BROKEN, PARTIAL = "ok", "broken", "partial"
MAX_PROBLEMS = 50  # kept per chain and run; the count of breaks is exact
_COLUMNS = (
    AuditEvent.id, AuditEvent.chain, AuditEvent.seq, AuditEvent.at, AuditEvent.org_id,
    AuditEvent.actor_id, AuditEvent.actor, AuditEvent.action, AuditEvent.entity_type,
    AuditEvent.entity_id, type_coerce(AuditEvent.data, Text).label("data"),
    AuditEvent.prev_hash, AuditEvent.hash,
)  # fmt: skip


@dataclass(frozen=True)
class Break:
    chain: str
    seq: int | None
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"evento {self.event_id} (seq {self.seq})" if self.event_id else f"seq {self.seq}"
        return f"cadeia {self.chain}: {where}: {self.problem}"


@dataclass(frozen=True)
class Mark:
    """A point of a chain: the last event of a verified prefix (seq 0: the empty prefix)."""

    seq: int = 0
    event_id: int | None = None
    hash: str = GENESIS


@dataclass
class ChainResult:
    chain: str
    start: Mark  # where this run started
    intact: Mark  # the end of the prefix known intact after this run
    checked: int = 0
    breaks: list[Break] = field(default_factory=list)  # the first MAX_PROBLEMS
    broken: int = 0  # how many breaks in all
    pending: int = 0  # events left for a later run (a run with a limit)
    reached: int = 0  # the seq of the last event walked
    full: bool = False

    @property
    def status(self) -> str:
        return BROKEN if self.broken else PARTIAL if self.pending else OK


@dataclass
class Report:
    chains: list[ChainResult]

    @property
    def checked(self) -> int:
        return sum(c.checked for c in self.chains)

    @property
    def breaks(self) -> list[Break]:
        return [b for c in self.chains for b in c.breaks]

    @property
    def ok(self) -> bool:
        return not any(c.broken for c in self.chains)

    def chain(self, key: str) -> ChainResult | None:
        return next((c for c in self.chains if c.chain == key), None)


def _recompute(row) -> str:
    return event_hash(
        chain=row.chain, seq=row.seq, at=row.at, org_id=row.org_id, actor_id=row.actor_id,
        actor=row.actor, action=row.action, entity_type=row.entity_type,
        entity_id=row.entity_id, data=row.data, prev_hash=row.prev_hash,
    )  # fmt: skip


def _rows(session: Session, chain: str, after: int) -> Iterator:
    stmt = (
        select(*_COLUMNS)
        .where(AuditEvent.chain == chain, AuditEvent.seq > after)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=2000)
    )
    yield from session.execute(stmt)


def _anchor_holds(session: Session, chain: str, mark: Mark) -> bool:
    """The checkpoint's own event is still there, unchanged."""
    if mark.seq == 0:
        return True
    row = session.execute(
        select(*_COLUMNS).where(AuditEvent.chain == chain, AuditEvent.seq == mark.seq)
    ).one_or_none()
    return row is not None and row.hash == mark.hash and _recompute(row) == row.hash


def verify_chain(
    session: Session, chain: str, start: Mark | None = None, *, limit: int | None = None
) -> ChainResult:
    """Walk one chain from ``start`` (its start when None, or when the checkpoint's event no
    longer matches), at most ``limit`` events. Run it in one snapshot (``snapshot``): the head
    and the events must be read as of the same moment."""
    mark = start or Mark()
    if not _anchor_holds(session, chain, mark):
        mark = Mark()
    result = ChainResult(chain, start=mark, intact=mark, full=mark.seq == 0)
    head = session.get(AuditChain, chain)
    prev_hash, expected = mark.hash, mark.seq + 1
    last_seq = mark.seq

    def broke(seq: int | None, event_id: int | None, problem: str) -> None:
        result.broken += 1
        if len(result.breaks) < MAX_PROBLEMS:
            result.breaks.append(Break(chain, seq, event_id, problem))

    for row in _rows(session, chain, mark.seq):
        if limit is not None and result.checked >= limit:
            result.pending = (head.last_seq if head else row.seq) - last_seq
            break
        result.checked += 1
        if row.seq != expected:
            broke(row.seq, row.id, f"esperado seq {expected}, encontrado {row.seq} "
                                   "(evento removido ou fora de ordem)")  # fmt: skip
        elif row.prev_hash != prev_hash:
            broke(row.seq, row.id, "hash anterior não confere (evento removido, inserido ou "
                                   "reordenado)")  # fmt: skip
        elif _recompute(row) != row.hash:
            broke(row.seq, row.id, "conteúdo alterado (hash não confere)")
        elif not result.broken:
            result.intact = Mark(row.seq, row.id, row.hash)
        # Go on from what is stored, so that one break does not hide the next.
        prev_hash, expected, last_seq = row.hash, row.seq + 1, row.seq
    result.reached = last_seq
    if result.pending:
        return result
    if head is None:
        if last_seq:
            broke(None, None, "cabeça da cadeia ausente")
    elif head.last_seq != last_seq or head.last_hash != prev_hash:
        problem = (
            "últimos eventos removidos (cabeça da cadeia não confere)"
            if head.last_seq > last_seq
            else "eventos depois da cabeça da cadeia ou cabeça alterada (cabeça não confere)"
        )
        broke(head.last_seq, None, problem)
    return result


def chains(session: Session) -> list[str]:
    """Every chain that has a head or an event (an event's chain without a head is a break)."""
    heads = set(session.scalars(select(AuditChain.key)))
    return sorted(heads | set(session.scalars(select(AuditEvent.chain).distinct())))


def checkpoint(session: Session, chain: str) -> AuditCheckpoint | None:
    return session.get(AuditCheckpoint, chain)


def _mark(cp: AuditCheckpoint | None) -> Mark:
    return Mark(cp.seq, cp.event_id, cp.hash) if cp is not None else Mark()


def verify(session: Session, *, full: bool = True) -> Report:
    """Check every chain in the caller's session and save nothing (scripts, tests)."""
    return Report(
        [
            verify_chain(session, key, None if full else _mark(checkpoint(session, key)))
            for key in chains(session)
        ]
    )


@contextmanager
def snapshot(db: Database) -> Iterator[Session]:
    """A read transaction that sees one moment of the whole database."""
    with db.read(snapshot=True) as session:
        yield session


def run(
    db: Database,
    *,
    by: str,
    org_ids: Sequence[int | None] | None = None,
    full: bool = False,
    limit: int | None = None,
    now: datetime | None = None,
) -> Report:
    """Verify (every chain, or those of ``org_ids``; ``None`` is the system chain) from their
    checkpoints, or from the start when ``full``, and save each chain's outcome and checkpoint.

    Each chain is read in a snapshot of its own and saved in a short transaction after it.
    """
    if org_ids is None:
        with db.read() as session:
            keys = chains(session)
    else:
        keys = [chain_key(org) for org in org_ids]
    results = []
    for key in keys:
        with snapshot(db) as session:
            saved = None if full else checkpoint(session, key)
            result = verify_chain(session, key, _mark(saved), limit=limit)
        with db.write() as session:
            _save(session, result, saved, by=by, now=now or utcnow())
        results.append(result)
    return Report(results)


def _save(
    session: Session, result: ChainResult, saved: AuditCheckpoint | None, *, by: str, now: datetime
) -> None:
    values = {
        "seq": result.intact.seq, "event_id": result.intact.event_id, "hash": result.intact.hash,
        "verified_at": now, "verified_by": by[:254], "full": result.full,
        "status": result.status, "checked": result.checked, "broken": result.broken,
        "reached_seq": result.reached,
        "problems": [str(b) for b in result.breaks],
    }  # fmt: skip
    if result.full:
        # From the start: what it found is the truth, even if it moves the checkpoint back.
        insert = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        session.execute(
            insert(AuditCheckpoint)
            .values(chain=result.chain, **values)
            .on_conflict_do_update(index_elements=[AuditCheckpoint.chain], set_=values)
        )
        return
    # From a checkpoint: saved only if no other run moved it meanwhile (a full run that moved
    # it back before a break must not be undone by an older incremental run).
    assert saved is not None
    session.execute(
        update(AuditCheckpoint)
        .where(
            AuditCheckpoint.chain == result.chain,
            AuditCheckpoint.seq == saved.seq,
            AuditCheckpoint.hash == saved.hash,
        )
        .values(**values)
    )
