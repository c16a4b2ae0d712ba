"""The dashboard's stage x UF counts (table ``stage_count``), kept in step with its rows.

A dashboard row is an establishment with the latest instance of one (process, portfolio), or
an establishment with no instance at all. Its key here is (UF, stage, portfolio, status);
an establishment with no instance counts under stage "", portfolio "" and status "none".

Every write that moves a row calls one function below inside its own transaction:
establishments created, imported or moved to another UF, instances started (the new one
replaces the previous latest of its process and portfolio, or the "not started" row),
instances whose stage or status changed. The calls queue their changes on the session; they
are written as one batch of upserts in key order just before the transaction commits
(``write_pending``). Two transactions therefore never lock two counters in opposite orders,
and a counter is locked only after every other lock of the transaction — the audit chain's
head above all: a completion whose effects audit before the rows are synced would otherwise
hold the head while waiting for a counter that another completion holds while waiting for
the head (a deadlock seen under four concurrent clients on PostgreSQL).
``recompute`` rebuilds an organization's counts from the rows themselves (after a CSV
import, and by ``credencia dashboard recount``); ``differences`` compares both (tests, and
``credencia dashboard recount --check``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import and_, delete, func, insert, literal, select, text
from sqlalchemy.orm import Session

from engine import db
from engine.dashboard import credentials as row_credentials
from engine.dashboard.models import StageCount
from engine.establishments.models import Establishment
from engine.runtime.models import ProcessInstance

NONE = "none"  # the status of an establishment's "not started" row
Key = tuple[str, str, str, str]  # (uf, stage, portfolio_code, status)
Deltas = Counter[Key]


class _NotCounted(Counter):
    """The deltas of a start of a process that makes no dashboard rows: the callers add the
    new instances' keys to it as to any start's, and nothing is kept."""

    def __setitem__(self, key, value) -> None:
        return None


def not_started(uf: str) -> Key:
    return (uf, "", "", NONE)


def key(uf: str, stage: str | None, portfolio_code: str | None, status: str) -> Key:
    return (uf, stage or "", portfolio_code or "", status)


# Plain SQL, the same on PostgreSQL and SQLite (3.24+), built once: these run inside most
# writes, so no statement construction or cache-key work per call.
_UPSERT = text(
    "INSERT INTO stage_count (org_id, uf, stage, portfolio_code, status, n)"
    " VALUES (:org_id, :uf, :stage, :portfolio_code, :status, :n)"
    " ON CONFLICT (org_id, uf, stage, portfolio_code, status)"
    " DO UPDATE SET n = stage_count.n + excluded.n"
)
# The same, with the UF read from the establishment in the statement itself.
_UPSERT_FOR_ESTABLISHMENT = text(
    "INSERT INTO stage_count (org_id, uf, stage, portfolio_code, status, n)"
    " SELECT :org_id, e.uf, :stage, :portfolio_code, :status, :n FROM establishment e"
    " WHERE e.id = :establishment_id"
    " ON CONFLICT (org_id, uf, stage, portfolio_code, status)"
    " DO UPDATE SET n = stage_count.n + excluded.n"
)


_PENDING = "credencia.stage_count"  # session.info: (by UF, by establishment) deltas


def _pending(session: Session) -> tuple[Counter, Counter]:
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = (Counter(), Counter())
    return pending


def apply(session: Session, org_id: int, deltas: Deltas) -> None:
    """Add the deltas to the organization's counters when the transaction commits."""
    by_uf = _pending(session)[0]
    for k, n in deltas.items():
        if n:
            by_uf[(org_id, *k)] += n


def write_pending(session: Session) -> None:
    """Write the transaction's queued deltas now, in key order (before it commits, and before
    anything in it reads or rebuilds the counters)."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    by_uf, by_establishment = pending
    if by_uf and by_establishment:  # one ordered batch: the establishments' UFs read first
        ids = sorted({k[1] for k in by_establishment})
        ufs = dict(session.execute(select(Establishment.id, Establishment.uf).where(
            Establishment.id.in_(ids))).all())  # fmt: skip
        for (org_id, est_id, *rest), n in by_establishment.items():
            if est_id in ufs:
                by_uf[(org_id, ufs[est_id], *rest)] += n
        by_establishment = Counter()
    names = ("org_id", "uf", "stage", "portfolio_code", "status")
    rows = [{**dict(zip(names, k, strict=True)), "n": n} for k, n in sorted(by_uf.items()) if n]
    if rows:
        db.send_many(session.connection(), _UPSERT, rows)
    names = ("org_id", "establishment_id", "stage", "portfolio_code", "status")
    rows = [
        {**dict(zip(names, k, strict=True)), "n": n}
        for k, n in sorted(by_establishment.items())
        if n
    ]
    if rows:
        db.send_many(session.connection(), _UPSERT_FOR_ESTABLISHMENT, rows)


db.at_commit(
    20,
    write_pending,
    lambda session: session.info.pop(_PENDING, None),
    lambda session: _PENDING in session.info,
)


# ---------------------------------------------------------------- establishments


def establishments_created(session: Session, org_id: int, ufs: Iterable[str]) -> None:
    apply(session, org_id, Counter(not_started(uf) for uf in ufs))


def _row_keys(session: Session, establishment_id: int) -> list[tuple[str, str, str]]:
    """(stage, portfolio, status) of each dashboard row of the establishment."""
    stmt = (
        select(ProcessInstance.stage, ProcessInstance.portfolio_code, ProcessInstance.status)
        .where(ProcessInstance.establishment_id == establishment_id, ProcessInstance.is_latest)
    )  # fmt: skip
    hidden = row_credentials.after_go_live_keys(session)
    if hidden:
        stmt = stmt.where(ProcessInstance.process_key.not_in(sorted(hidden)))
    rows = session.execute(stmt).all()
    return [(r[0] or "", r[1] or "", r[2]) for r in rows] or [("", "", NONE)]


def establishment_moved(
    session: Session, org_id: int, establishment_id: int, old_uf: str, new_uf: str
) -> None:
    """The establishment's rows move from one UF to another."""
    if old_uf == new_uf:
        return
    deltas: Deltas = Counter()
    for rest in _row_keys(session, establishment_id):
        deltas[(old_uf, *rest)] -= 1
        deltas[(new_uf, *rest)] += 1
    apply(session, org_id, deltas)


# ---------------------------------------------------------------- instances


def replaced_by_start(
    session: Session, establishments: dict[int, str], process_key: str, portfolio_code: str
) -> Deltas:
    """What starting one instance of (process, portfolio) for each of these establishments
    (id -> UF) takes away: the previous latest instance of that process and portfolio, or,
    for an establishment with no instance yet, its "not started" row. Read before the start
    clears the previous instance's latest flag; the caller adds the new instances' keys and
    applies the whole batch once."""
    hidden = row_credentials.after_go_live_keys(session)
    if process_key in hidden:
        return _NotCounted()
    deltas: Deltas = Counter()
    if not establishments:
        return deltas
    latest: dict[int, list[tuple[str, str, str, str]]] = {}
    for est_id, proc, code, stage, status in session.execute(
        select(ProcessInstance.establishment_id, ProcessInstance.process_key,
               ProcessInstance.portfolio_code, ProcessInstance.stage, ProcessInstance.status)
        .where(ProcessInstance.establishment_id.in_(list(establishments)),
               ProcessInstance.is_latest)
    ):  # fmt: skip
        if proc not in hidden:
            latest.setdefault(est_id, []).append((proc, code, stage, status))
    for est_id, uf in establishments.items():
        rows = latest.get(est_id, [])
        if not rows:
            deltas[not_started(uf)] -= 1
        for proc, code, stage, status in rows:
            if (proc, code) == (process_key, portfolio_code):
                deltas[key(uf, stage, code, status)] -= 1
    return deltas


def instance_changed(
    session: Session, instance: ProcessInstance, before: tuple[str, str, str]
) -> None:
    """The latest instance's (stage, portfolio, status) went from ``before`` to its values.
    On SQLite the instance's UPDATE has moved the counters already (a trigger:
    engine/dashboard/models.py, ``SQLITE_COUNT_TRIGGER``)."""
    if instance.establishment_id is None or not instance.is_latest:
        return
    if session.get_bind().dialect.name == "sqlite":
        return
    after = (instance.stage or "", instance.portfolio_code or "", instance.status)
    before = (before[0] or "", before[1] or "", before[2])
    if after == before or row_credentials.is_after_go_live(session, instance):
        return
    by_establishment = _pending(session)[1]
    by_establishment[(instance.org_id, instance.establishment_id, *before)] -= 1
    by_establishment[(instance.org_id, instance.establishment_id, *after)] += 1


# ---------------------------------------------------------------- reading and rebuilding


def _live(session: Session, org_id: int):
    """(uf, stage, portfolio, status, n) computed from the rows themselves."""
    stage = func.coalesce(ProcessInstance.stage, "")
    code = func.coalesce(ProcessInstance.portfolio_code, "")
    status = func.coalesce(ProcessInstance.status, NONE)
    joined = and_(ProcessInstance.establishment_id == Establishment.id, ProcessInstance.is_latest)
    hidden = row_credentials.after_go_live_keys(session)
    if hidden:
        joined = and_(joined, ProcessInstance.process_key.not_in(sorted(hidden)))
    return (
        select(Establishment.uf, stage, code, status, func.count())
        .select_from(Establishment)
        .outerjoin(ProcessInstance, joined)
        .where(Establishment.org_id == org_id)
        .group_by(Establishment.uf, stage, code, status)
    )  # fmt: skip


def recompute(session: Session, org_id: int) -> None:
    """Rebuild the organization's counts from its establishments and instances."""
    session.flush()
    session.info.pop(_PENDING, None)  # superseded by the rebuild
    session.execute(delete(StageCount).where(StageCount.org_id == org_id))
    live = _live(session, org_id).subquery()
    session.execute(
        insert(StageCount).from_select(
            ["org_id", "uf", "stage", "portfolio_code", "status", "n"],
            select(literal(org_id), *live.c),
        )
    )


def stored(session: Session, org_id: int) -> dict[Key, int]:
    write_pending(session)
    return {
        (uf, stage, code, status): n
        for uf, stage, code, status, n in session.execute(
            select(StageCount.uf, StageCount.stage, StageCount.portfolio_code, StageCount.status,
                   StageCount.n).where(StageCount.org_id == org_id, StageCount.n != 0)
        )
    }  # fmt: skip


def differences(session: Session, org_id: int) -> dict[Key, tuple[int, int]]:
    """Keys whose stored count differs from the rows: key -> (stored, actual)."""
    session.flush()
    write_pending(session)
    actual = {(r[0], r[1], r[2], r[3]): r[4] for r in session.execute(_live(session, org_id))}
    kept = stored(session, org_id)
    return {
        k: (kept.get(k, 0), actual.get(k, 0))
        for k in set(actual) | set(kept)
        if kept.get(k, 0) != actual.get(k, 0)
    }


def _filtered(stmt, uf: str, portfolio: str, status: str):
    if uf:
        stmt = stmt.where(StageCount.uf == uf.upper())
    if portfolio:
        stmt = stmt.where(StageCount.portfolio_code == portfolio, StageCount.status != NONE)
    if status:
        stmt = stmt.where(StageCount.status == status)
    return stmt


def total(
    session: Session, org_id: int, *, uf: str = "", portfolio: str = "", status: str = "",
    stage: str = "", not_started: str = "",
) -> int:  # fmt: skip
    """Rows with the dashboard's UF, portfolio, status and stage filters (``not_started`` is
    the stage filter's name for establishments with no instance)."""
    stmt = _filtered(
        select(func.coalesce(func.sum(StageCount.n), 0)).where(StageCount.org_id == org_id),
        uf, portfolio, status,
    )  # fmt: skip
    if stage and stage == not_started:
        stmt = stmt.where(StageCount.status == NONE)
    elif stage:
        stmt = stmt.where(StageCount.stage == stage)
    return int(session.scalar(stmt) or 0)


def by_stage_and_uf(
    session: Session, org_id: int, *, uf: str = "", portfolio: str = "", status: str = ""
) -> dict[tuple[str, str], int]:
    """(stage, uf) -> rows, with the dashboard's UF, portfolio and status filters."""
    stmt = _filtered(
        select(StageCount.stage, StageCount.uf, func.sum(StageCount.n)).where(
            StageCount.org_id == org_id
        ),
        uf, portfolio, status,
    )  # fmt: skip
    stmt = stmt.group_by(StageCount.stage, StageCount.uf).having(func.sum(StageCount.n) != 0)
    return {(stage, uf_): int(n) for stage, uf_, n in session.execute(stmt)}
