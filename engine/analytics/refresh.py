"""The incremental refresh of the analytics buckets: the scheduler's ``analytics`` job.

Two watermarks in ``analytics_state``: task rows *created* after ``created_mark`` feed the
entries (tokens passed, loops, stages reached, lead times, cumulative flow); task rows
*completed or cancelled* after ``completed_mark`` feed the completions (durations, overdue,
rejections, people). Each run reads only the rows past the marks (``ix_task_created_at``,
``ix_task_completed_at``) and the other rows of their instances (``ix_task_instance``), adds
its deltas to the buckets and moves the marks, in one transaction: a run that fails leaves
the marks where they were, and the next run does the work again.

The marks stop ``CREDENCIA_ANALYTICS_LAG_SECONDS`` before now: a task row carries the time its
transaction *started*, so a row committed a little after a run could otherwise fall behind a
mark already moved past it. The task-completion path is untouched.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from engine.analytics import histogram
from engine.analytics.models import (
    ALL,
    ELEMENT,
    FLOW,
    PERSON,
    REJECTION,
    REMAINING,
    STAGE,
    AnalyticsBucket,
    AnalyticsState,
)
from engine.credentialing import vocabulary
from engine.db import Database, utcnow
from engine.definitions.models import ProcessDefinition
from engine.establishments.models import Establishment
from engine.runtime.models import COMPLETED, ProcessInstance, Task

STATE = "tasks"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The stage whose reaching ends a lead time and a forecast ("start to production").
GOAL_STAGE = "Produção"
CHUNK = 500
COUNTERS = ("entered", "completed", "cancelled", "loops", "overdue", "with_due")
DIMENSIONS = (
    "kind", "org_id", "process_key", "version", "element_id", "lane", "uf", "municipio",
    "portfolio_code", "stage", "period", "label",
)  # fmt: skip


def normalise_reason(text: str) -> str:
    """A rejection reason reduced to compare equal to its variants: lower case, no accents, no
    punctuation, single spaces ("IP  inválido." and "ip invalido" group together)."""
    plain = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", plain).split())[:200]


def request_kind(process_key: str, element_id: str) -> str:
    """The kind of DATASUS request an analysis task answers (the RNDS guide's 72 hours apply
    to each): homologation, production or change."""
    if process_key == "alteracao-credencial":
        return "change"
    if process_key == "credenciamento-rnds":
        return "production" if "producao" in element_id else "homologation"
    return "other"


@dataclass(slots=True)
class Bucket:
    """A bucket in memory: what a run adds to one row, or a row computed on demand."""

    kind: str
    org_id: int
    process_key: str
    version: int = 0
    element_id: str = ""
    lane: str = ""
    uf: str = ""
    municipio: str = ""
    portfolio_code: str = ""
    stage: str = ""
    period: str = ""
    label: str = ""
    sample: str = ""
    entered: int = 0
    completed: int = 0
    cancelled: int = 0
    loops: int = 0
    overdue: int = 0
    with_due: int = 0
    hist: dict[str, int] = field(default_factory=dict)
    claim_hist: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        raw = "\x1f".join(str(getattr(self, d)) for d in DIMENSIONS)
        return hashlib.sha1(raw.encode("utf-8"), usedforsecurity=False).hexdigest()


class Accumulator:
    """Deltas by bucket, from task rows fed in by ``feed_created`` and ``feed_closed``."""

    def __init__(self, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        self.buckets: dict[tuple, Bucket] = {}
        self._months: dict[int, str] = {}
        self._weeks: dict[int, str] = {}

    def bucket(self, **dims: Any) -> Bucket:
        ident = tuple(dims.get(d, 0 if d == "version" else "") for d in DIMENSIONS)
        found = self.buckets.get(ident)
        if found is None:
            found = self.buckets[ident] = Bucket(**dims)
        return found

    def month(self, when: datetime) -> str:
        # Cached per hour: astimezone and strftime are most of the time of a row otherwise.
        hour = int(when.timestamp()) // 3600
        found = self._months.get(hour)
        if found is None:
            found = self._months[hour] = when.astimezone(self.zone).strftime("%Y-%m")
        return found

    def week(self, when: datetime) -> str:
        hour = int(when.timestamp()) // 3600
        found = self._weeks.get(hour)
        if found is None:
            day = when.astimezone(self.zone).date()
            found = self._weeks[hour] = (day - timedelta(days=day.weekday())).isoformat()
        return found

    def _elements(self, r: Any, when: datetime) -> list[Bucket]:
        """The buckets of an element at its three levels: the whole country, the UF, the
        município (a read takes the coarsest level its filters allow)."""
        period, lane, own_uf = self.month(when), r.lane or "", r.uf or ""
        out = []
        for uf, municipio in ((ALL, ALL), (own_uf, ALL), (own_uf, r.municipio or "")):
            ident = (ELEMENT, r.org_id, r.process_key, r.version, r.element_id, lane, uf,
                     municipio, r.portfolio_code, "", period, "")  # fmt: skip
            found = self.buckets.get(ident)
            if found is None:
                found = self.buckets[ident] = Bucket(
                    ELEMENT, r.org_id, r.process_key, r.version, r.element_id, lane, uf,
                    municipio, r.portfolio_code, "", period, "",
                )  # fmt: skip
            out.append(found)
        return out

    def feed_created(self, r: Any, reached: dict[str, datetime]) -> None:
        """A task row that became ready. ``r.element_seq`` / ``r.stage_seq``: its rank among
        its instance's rows of the same element / stage (1: the first); ``reached``: when the
        instance first reached each stage before this row."""
        for b in self._elements(r, r.created_at):
            b.entered += 1
            b.loops += int(r.element_seq > 1)
        if not r.stage or r.stage_seq > 1:
            return
        # The instance reaches a stage with its first task of that stage.
        lead = (r.created_at - r.started_at).total_seconds()
        month, week = self.month(r.created_at), self.week(r.created_at)
        for uf in (ALL, r.uf or ""):  # the country and the UF
            stage = self.bucket(
                kind=STAGE, org_id=r.org_id, process_key=r.process_key, uf=uf,
                portfolio_code=r.portfolio_code, stage=r.stage, period=month,
            )  # fmt: skip
            stage.entered += 1
            histogram.add(stage.hist, lead)
            self.bucket(
                kind=FLOW, org_id=r.org_id, process_key=r.process_key, uf=uf,
                portfolio_code=r.portfolio_code, stage=r.stage, period=week,
            ).entered += 1  # fmt: skip
        if r.stage != GOAL_STAGE:
            return
        for stage_name, when in reached.items():
            remaining = self.bucket(
                kind=REMAINING, org_id=r.org_id, process_key=r.process_key,
                portfolio_code=r.portfolio_code, stage=stage_name,
            )  # fmt: skip
            remaining.entered += 1
            histogram.add(remaining.hist, (r.created_at - when).total_seconds())

    def feed_closed(self, r: Any, manifest: dict[str, Any] | None) -> None:
        """A task row that was completed or cancelled."""
        assert r.completed_at is not None
        done = r.state == COMPLETED
        late = done and r.due_at is not None and r.completed_at > r.due_at
        for b in self._elements(r, r.completed_at):
            if not done:
                b.cancelled += 1
                continue
            b.completed += 1
            histogram.add(b.hist, (r.completed_at - r.created_at).total_seconds())
            if r.claimed_at is not None:
                histogram.add(b.claim_hist, (r.completed_at - r.claimed_at).total_seconds())
            if r.due_at is not None:
                b.with_due += 1
                b.overdue += int(late)
        if not done:
            return
        month = self.month(r.completed_at)
        if r.completed_by_id is not None:
            person = self.bucket(
                kind=PERSON, org_id=r.org_id, process_key=r.process_key, lane=r.lane or "",
                period=month, label=str(r.completed_by_id),
            )  # fmt: skip
            person.completed += 1
            if r.due_at is not None:
                person.with_due += 1
                person.overdue += int(late)
        reason = vocabulary.rejection_reason(manifest or {}, r.data) if r.data else None
        if reason:
            label = normalise_reason(reason)
            for uf in (ALL, r.uf or ""):
                rejection = self.bucket(
                    kind=REJECTION, org_id=r.org_id, process_key=r.process_key,
                    element_id=r.element_id, lane=r.lane or "", uf=uf,
                    portfolio_code=r.portfolio_code, period=month, label=label,
                )  # fmt: skip
                rejection.completed += 1
                rejection.sample = rejection.sample or reason.strip()[:500]


def _columns(with_data: bool) -> list[Any]:
    cols = [
        Task.id, Task.instance_id, Task.org_id, Task.element_id, Task.lane, Task.role,
        Task.state, Task.stage, Task.due_at, Task.created_at, Task.claimed_at,
        Task.completed_at, Task.completed_by_id, ProcessInstance.process_key,
        ProcessInstance.portfolio_code, ProcessInstance.started_at,
        ProcessInstance.definition_id, ProcessDefinition.version, Establishment.uf,
        Establishment.municipio,
    ]  # fmt: skip
    if with_data:
        cols.append(Task.data)
    return cols


def task_rows(with_data: bool = False) -> Any:
    """Task rows with the dimensions of their instance, establishment and process version."""
    return (
        select(*_columns(with_data))
        .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .outerjoin(Establishment, Establishment.id == ProcessInstance.establishment_id)
    )


def _manifests(session: Session) -> dict[int, dict[str, Any]]:
    return dict(session.execute(select(ProcessDefinition.id, ProcessDefinition.manifest)).all())


def created_rows(instances: Any, fresh: Any) -> Any:
    """The task rows that feed ``feed_created``: of the instances selected by ``instances``
    (a subquery of ids), the rows where ``fresh`` holds (the new ones) and each instance's first
    row of every stage (when it reached it), with their ranks per element and per stage (window
    functions: one sort in the database instead of one look-up per row), in instance order."""
    order = (Task.created_at, Task.id)
    inner = (
        task_rows()
        .add_columns(
            func.row_number()
            .over(partition_by=(Task.instance_id, Task.element_id), order_by=order)
            .label("element_seq"),
            func.row_number()
            .over(partition_by=(Task.instance_id, Task.stage), order_by=order)
            .label("stage_seq"),
            case((fresh, 1), else_=0).label("fresh"),
        )
        .where(Task.instance_id.in_(instances))
        .subquery()
    )
    return (
        select(inner)
        .where(or_(inner.c.fresh == 1, inner.c.stage_seq == 1))
        .order_by(inner.c.instance_id, inner.c.created_at, inner.c.id)
    )


def feed(
    session: Session,
    acc: Accumulator,
    created: Any,
    closed: Any,
    *,
    batch: int = 5000,
) -> int:
    """Feed the rows of ``created_rows(...)`` and of a ``task_rows(with_data=True)``
    statement (already filtered) into ``acc``; the number of new rows read."""
    rows = 0
    instance_id, reached = None, {}
    for r in session.execute(created.execution_options(yield_per=batch)):
        if r.instance_id != instance_id:
            instance_id, reached = r.instance_id, {}
        if r.fresh:
            acc.feed_created(r, reached)
            rows += 1
        if r.stage and r.stage_seq == 1:
            reached[r.stage] = r.created_at
    manifests = _manifests(session)
    for r in session.execute(closed.execution_options(yield_per=batch)):
        acc.feed_closed(r, manifests.get(r.definition_id))
        rows += 1
    return rows


def _write(session: Session, buckets: Iterable[Bucket]) -> int:
    """Add the deltas to their rows: one SELECT per CHUNK keys, then one executemany INSERT
    of the new rows and one executemany UPDATE by primary key of the others (Core, not ORM
    objects: a backfill writes hundreds of thousands of buckets)."""
    B = AnalyticsBucket
    by_key = {b.key: b for b in buckets}
    keys = sorted(by_key)
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        existing = {
            row.key: row
            for row in session.execute(
                select(
                    B.id, B.key, B.sample, B.hist, B.claim_hist, *(getattr(B, c) for c in COUNTERS)
                ).where(B.key.in_(part))
            )
        }
        inserts, updates = [], []
        for key in part:
            delta = by_key[key]
            row = existing.get(key)
            if row is None:
                inserts.append({
                    "key": key, "sample": delta.sample, "hist": delta.hist,
                    "claim_hist": delta.claim_hist,
                    **{d: getattr(delta, d) for d in DIMENSIONS},
                    **{c: getattr(delta, c) for c in COUNTERS},
                })  # fmt: skip
            else:
                updates.append({
                    "id": row.id, "sample": row.sample or delta.sample,
                    "hist": histogram.merge(dict(row.hist or {}), delta.hist),
                    "claim_hist": histogram.merge(dict(row.claim_hist or {}), delta.claim_hist),
                    **{c: getattr(row, c) + getattr(delta, c) for c in COUNTERS},
                })  # fmt: skip
        if inserts:
            session.execute(insert(B), inserts)
        if updates:
            session.execute(update(B), updates)
    return len(keys)


@dataclass
class RefreshResult:
    rows: int = 0
    buckets: int = 0
    created_mark: str = ""
    completed_mark: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "buckets": self.buckets,
            "created_mark": self.created_mark,
            "completed_mark": self.completed_mark,
        }


def refresh(
    db: Database,
    settings: Any,
    *,
    now: datetime | None = None,
    limit: int = 200_000,
) -> RefreshResult:
    """Add the task rows created or closed since the marks (at most ``limit`` of each per
    run, oldest first: a long backlog, after an upgrade, drains over several runs)."""
    upper = (now or utcnow()) - timedelta(seconds=settings.analytics_lag_seconds)
    with db.write() as session:
        lock = select(AnalyticsState).where(AnalyticsState.name == STATE)
        state = session.scalar(lock.with_for_update())
        if state is None:
            state = AnalyticsState(name=STATE, last_rows=0)
            session.add(state)
            session.flush()
        low_created = state.created_mark or EPOCH
        low_closed = state.completed_mark or EPOCH
        created_to = _bounded(session, Task.created_at, low_created, upper, limit)
        closed_to = _bounded(session, Task.completed_at, low_closed, upper, limit)
        window = and_(Task.created_at > low_created, Task.created_at <= created_to)
        created = created_rows(select(Task.instance_id).where(window).distinct(), window)
        closed = task_rows(with_data=True).where(
            Task.completed_at > low_closed, Task.completed_at <= closed_to
        )
        acc = Accumulator(settings.timezone)
        rows = feed(session, acc, created, closed)
        written = _write(session, acc.buckets.values())
        state.created_mark = max(created_to, low_created)
        state.completed_mark = max(closed_to, low_closed)
        state.refreshed_at = utcnow()
        state.last_rows = rows
        return RefreshResult(
            rows=rows,
            buckets=written,
            created_mark=state.created_mark.isoformat(),
            completed_mark=state.completed_mark.isoformat(),
        )


def _bounded(session: Session, column: Any, low: datetime, upper: datetime, limit: int) -> datetime:
    """The mark to move to: ``upper``, or earlier so that at most about ``limit`` rows are
    taken (all rows of the last instant are, so the mark never splits an instant)."""
    nth = session.scalar(
        select(column).where(column > low, column <= upper).order_by(column).offset(limit).limit(1)
    )
    return upper if nth is None else nth


def status(session: Session) -> AnalyticsState | None:
    return session.get(AnalyticsState, STATE)
