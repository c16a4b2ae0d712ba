"""Workflow state → rows: the task read model, stage, status and header of an instance.

``sync`` brings an existing instance's rows in line with its workflow after a change
(complete, cancel, timer, migration). A new instance's rows are built from its freshly
built workflow by ``built`` + ``instance_values`` + ``task_values`` — the same functions for
a single start (ORM rows) and the bulk start (COPY rows).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, inspect, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from engine import db, sla
from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.credentialing import vocabulary
from engine.dashboard import counts
from engine.db import utcnow
from engine.runtime.models import CANCELLED, COMPLETED, READY, RUNNING, ProcessInstance, Task
from engine.workflow import spiff


class ReadyTask(NamedTuple):
    """A ready human task of a workflow, as its row needs it."""

    id: str
    element_id: str
    name: str
    lane: str | None
    props: dict[str, str]  # its spiffworkflow:properties


def ready_tasks(workflow: Any) -> list[ReadyTask]:
    return [
        ReadyTask(
            str(t.id),
            t.task_spec.bpmn_id or t.task_spec.name,
            t.task_spec.bpmn_name or t.task_spec.name,
            t.task_spec.lane,
            spiff.properties(t.task_spec),
        )
        for t in spiff.ready_human_tasks(workflow)
    ]


class DueDates:
    """Due dates of tasks created at ``now``, by their ``slaBusinessDays`` property
    (computed once per number of days: a batch of starts shares a handful)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._cfg = settings_mod.load()
        self._by_days: dict[int, datetime] = {}

    def __call__(self, props: dict[str, str]) -> datetime:
        try:
            days = int(props.get("slaBusinessDays", self._cfg.default_sla_business_days))
        except ValueError:
            days = self._cfg.default_sla_business_days
        if days not in self._by_days:
            self._by_days[days] = sla.add_business_days(self.now, days, self._cfg.timezone)
        return self._by_days[days]


def stage_rank(loaded: spiff.LoadedSpec, stage: str) -> int:
    return loaded.stages.index(stage) if stage in loaded.stages else -1


def top_stage(loaded: spiff.LoadedSpec, tasks: list[ReadyTask], current: str) -> str:
    """The furthest stage among the ready tasks (the current one when none is ready)."""
    stages = [t.props.get("stage", "") for t in tasks]
    return max(stages, key=lambda s: stage_rank(loaded, s)) if stages else current


# The task columns a new row gets, in the order the bulk start's COPY writes them.
TASK_COLUMNS = (
    "id", "instance_id", "org_id", "establishment_id", "element_id", "name", "lane", "role",
    "state", "stage", "form", "due_at", "created_at",
)  # fmt: skip


def task_values(
    loaded: spiff.LoadedSpec,
    task: ReadyTask,
    *,
    instance_id: int,
    org_id: int,
    establishment_id: int | None,
    due: DueDates,
) -> dict[str, Any]:
    """The row of a task that became ready."""
    return {
        "id": task.id,
        "instance_id": instance_id,
        "org_id": org_id,
        "establishment_id": establishment_id,
        "element_id": task.element_id,
        "name": task.name,
        "lane": task.lane,
        "role": loaded.lanes.get(task.lane) if task.lane else None,
        "state": READY,
        "stage": task.props.get("stage", ""),
        "form": task.props.get("formJsonSchemaFilename"),
        "due_at": due(task.props),
        "created_at": due.now,
    }


class Built(NamedTuple):
    """What the rows of a new instance need from its freshly built workflow (picklable: the
    bulk start builds workflows in worker processes)."""

    state: str
    tasks: list[ReadyTask]
    completed: bool
    end_stage: str | None
    next_timer_due: datetime | None


def built(workflow: Any) -> Built:
    completed = workflow.is_completed()
    return Built(
        state=spiff.dump_state(workflow),
        tasks=ready_tasks(workflow),
        completed=completed,
        end_stage=spiff.end_stage(workflow) if completed else None,
        next_timer_due=spiff.next_timer_due(workflow),
    )


# The instance columns a new row gets, in the order the bulk start's COPY writes them.
INSTANCE_COLUMNS = (
    "id", "org_id", "definition_id", "process_key", "establishment_id", "portfolio_code",
    "status", "stage", "stage_since", "numero_solicitacao", "identificador_solicitante",
    "last_rejection_reason", "state", "version", "next_timer_due_at", "started_at",
    "started_by_id", "ended_at", "cancel_reason", "is_latest",
)  # fmt: skip


def instance_values(
    loaded: spiff.LoadedSpec,
    built: Built,
    *,
    instance_id: int | None,
    org_id: int,
    definition_id: int,
    establishment_id: int | None,
    portfolio_code: str,
    actor: Actor,
    now: datetime,
) -> dict[str, Any]:
    """The row of a new instance (``instance_id`` None: the database assigns it)."""
    stage = top_stage(loaded, built.tasks, "")
    status, ended = RUNNING, None
    if built.completed:
        status, ended = COMPLETED, now
        stage = built.end_stage or stage
    return {
        "id": instance_id,
        "org_id": org_id,
        "definition_id": definition_id,
        "process_key": loaded.process_key,
        "establishment_id": establishment_id,
        "portfolio_code": portfolio_code,
        "status": status,
        "stage": stage,
        "stage_since": now,
        "numero_solicitacao": "",
        "identificador_solicitante": "",
        "last_rejection_reason": "",
        "state": built.state,
        "version": 1,
        "next_timer_due_at": built.next_timer_due,
        "started_at": now,
        "started_by_id": actor.user_id,
        "ended_at": ended,
        "cancel_reason": "",
        "is_latest": True,
    }


@dataclass
class TaskChange:
    created: list[Task]
    closed: list[Task]
    ready: list[Task] = field(default_factory=list)  # every ready row after the change


_TASK = Task.__table__
_INSTANCE = ProcessInstance.__table__
# Built once: the columns to set come from the parameters' keys (SQLAlchemy caches one
# compiled form per set of keys), so no statement is put together per write.
_UPDATE = {
    table: update(table).where(table.c.id == bindparam("row_id")) for table in (_TASK, _INSTANCE)
}


# session.info: the writes of the syncs inside ``batched``, by (kind, table, columns).
_BATCH = "credencia.sync.batch"
# session.info: the writes of one sync on PostgreSQL, sent as one statement at its end.
_TOGETHER = "credencia.sync.together"
# session.info: the audit chain whose head that statement reads too.
_SEEING = "credencia.sync.seeing_head"
# session.info: the task rows one sync writes on SQLite (closed and new), sent as one upsert.
_TASK_ROWS = "credencia.sync.task_rows"


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """Syncs of several instances in one transaction (the timer sweep's batches) write their
    rows together when the block ends: one statement per kind of write (executemany, one
    round trip on PostgreSQL) instead of two or three per instance. Nothing inside the block
    may read the rows those syncs write."""
    pending: dict[tuple[str, Any, tuple[str, ...]], list[dict[str, Any]]] = {}
    session.info[_BATCH] = pending
    try:
        yield
    finally:
        session.info.pop(_BATCH, None)
    with session.no_autoflush:
        for (kind, table, _columns), rows in pending.items():
            session.execute(_UPDATE[table] if kind == "update" else insert(table), rows)


# The instance's UPDATE also reads the head of its organization's audit chain (the append
# at the commit then needs no read of it: engine/audit/service.py, ``HEAD_SEEN``).
_UPDATE_SEEING_HEAD = _UPDATE[_INSTANCE].returning(*audit.HEAD_SEEN)


def _write(
    session: Session, obj: Any, table: Any, values: dict[str, Any], *, head: str | None = None
) -> None:
    """Set ``values`` on a loaded row, written with one Core UPDATE (no unit-of-work flush):
    the object then holds them as committed values, so the commit does not write them again.
    A row not yet in the database (a new instance) takes them as ordinary attribute sets.
    ``head``: the audit chain whose head the UPDATE reads too (an instance's)."""
    if not values:
        return
    state = inspect(obj)
    if not state.persistent:
        for column, value in values.items():
            setattr(obj, column, value)
        return
    if state.committed_state:  # what the caller changed on the row goes in this UPDATE too
        values = {**_pending(state), **values}
    batch = session.info.get(_BATCH)
    together = session.info.get(_TOGETHER)
    task_rows = session.info.get(_TASK_ROWS) if table is _TASK else None
    if batch is not None:
        key = ("update", table, tuple(sorted(values)))
        batch.setdefault(key, []).append({"row_id": obj.id, **values})
    elif task_rows is not None:  # the whole row: it goes in the sync's one upsert
        task_rows.append({**{c: getattr(obj, c) for c in _TASK_COLUMNS}, **values})
    elif together is not None:
        together.append(("update", table, {"row_id": obj.id, **values}))
        if head is not None:
            session.info[_SEEING] = head
    elif head is not None:
        sent = db.send(
            session.connection(),
            _UPDATE_SEEING_HEAD,
            {"row_id": obj.id, "audit_chain_key": head, **values},
        )
        if sent.rows:
            audit.head_seen(session, head, *sent.rows[0])
    else:
        db.send(session.connection(), _UPDATE[table], {"row_id": obj.id, **values})
    for column, value in values.items():
        set_committed_value(obj, column, value)
    if state.modified and not state.committed_state:
        # Every change of the row is in this UPDATE: the row is clean again, as a flush would
        # leave it (else the commit's flush walks it through the unit of work for nothing).
        state._commit_all(state.dict, session.identity_map)


@contextmanager
def _together(session: Session) -> Iterator[None]:
    """On PostgreSQL, the rows one sync writes (the closed tasks' UPDATE, the new tasks'
    INSERT, the instance's UPDATE) go in one statement when the block ends: the first ones
    as data-modifying WITH clauses of the last (``WITH w0 AS (UPDATE task …), w1 AS (INSERT
    INTO task …) UPDATE process_instance …``), one round trip instead of three. They touch
    different rows, so one snapshot for all of them changes nothing.

    SQLite has no data-modifying WITH: there the task rows, closed and new, go in one upsert
    when the block ends (``_task_upsert``), and the instance's UPDATE on its own."""
    if session.info.get(_BATCH) is not None:
        yield
        return
    if session.get_bind().dialect.name != "postgresql":
        rows: list[dict[str, Any]] = []
        session.info[_TASK_ROWS] = rows
        try:
            yield
        finally:
            session.info.pop(_TASK_ROWS, None)
        if rows:
            _send_task_rows(session, rows)
        return
    writes: list[tuple[str, Any, Any]] = []
    session.info[_TOGETHER] = writes
    try:
        yield
    finally:
        session.info.pop(_TOGETHER, None)
        head = session.info.pop(_SEEING, None)
    if writes:
        # The statement is built once per shape (``_statement_for``): it goes on the driver.
        statement, params = _statement_for(writes, seeing_head=head is not None)
        if head is None:
            db.send(session.connection(), statement, params)
            return
        rows = db.send(session.connection(), statement, {**params, "audit_chain_key": head}).rows
        if rows:
            audit.head_seen(session, head, *rows[0])


# One statement per shape of writes (kinds, tables, columns, rows), built once.
_TOGETHER_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _statement_for(
    writes: list[tuple[str, Any, Any]], *, seeing_head: bool = False
) -> tuple[Any, dict[str, Any]]:
    # One part per row written: a multi-row INSERT has no cache key in SQLAlchemy (it would
    # be compiled on every execution), a single-row one has; several may insert into a table.
    rows = [
        (kind, table, row)
        for kind, table, values in writes
        for row in ([values] if kind == "update" else values)
    ]
    shape = (seeing_head, *((kind, table.name, tuple(sorted(row))) for kind, table, row in rows))
    params = {f"w{i}_{k}": v for i, (_kind, _table, row) in enumerate(rows) for k, v in row.items()}
    statement = _TOGETHER_STATEMENTS.get(shape)
    if statement is None:
        parts = [_part(i, kind, table, row) for i, (kind, table, row) in enumerate(rows)]
        statement = parts[-1].returning(*audit.HEAD_SEEN) if seeing_head else parts[-1]
        for i, part in enumerate(parts[:-1]):
            statement = statement.add_cte(part.cte(f"w{i}"))
        if len(_TOGETHER_STATEMENTS) < 512:  # (a bound, should a process see odd shapes)
            _TOGETHER_STATEMENTS[shape] = statement
    return statement, params


def _part(i: int, kind: str, table: Any, row: dict[str, Any]) -> Any:
    if kind == "update":
        return (
            update(table)
            .where(table.c.id == bindparam(f"w{i}_row_id"))
            .values({k: bindparam(f"w{i}_{k}") for k in row if k != "row_id"})
        )
    return insert(table).values({k: bindparam(f"w{i}_{k}") for k in row})


def _pending(state: Any) -> dict[str, Any]:
    """The column values changed on a loaded row and not yet written."""
    columns = {c.key for c in state.mapper.column_attrs}
    return {key: getattr(state.obj(), key) for key in state.committed_state if key in columns}


def _changed_rows(session: Session) -> list[tuple[Any, Any]]:
    """The loaded rows of other tables whose columns the caller changed (a completion's effect
    on its credential): (object, table), to be written with the sync's own statements."""
    found = []
    for obj in session.dirty:
        state = inspect(obj)
        table = _plain_table(state.mapper)
        if table is not None and state.persistent and _pending(state):
            found.append((obj, table))
    return found


def _plain_table(mapper: Any) -> Any:
    """The mapper's one table when its rows can be written by ``_write`` (one table, an
    ``id`` primary key, attributes named as their columns, no version counter); else None."""
    if mapper in _PLAIN:
        return _PLAIN[mapper]
    table = mapper.local_table
    plain = (
        table not in (_TASK, _INSTANCE)
        and len(mapper.tables) == 1
        and mapper.version_id_col is None
        and [c.name for c in mapper.primary_key] == ["id"]
        and all(
            len(p.columns) == 1 and p.columns[0].key == p.key == p.columns[0].name
            for p in mapper.column_attrs
        )
    )
    _PLAIN[mapper] = table if plain else None
    if plain:
        _UPDATE.setdefault(table, update(table).where(table.c.id == bindparam("row_id")))
    return _PLAIN[mapper]


_PLAIN: dict[Any, Any] = {}


def _insert_tasks(session: Session, values: list[dict[str, Any]]) -> list[Task]:
    """New task rows in one INSERT, returned as rows of the session (so that a later change to
    one, such as an assignment, is written as an UPDATE)."""
    if not values:
        return []
    batch = session.info.get(_BATCH)
    together = session.info.get(_TOGETHER)
    task_rows = session.info.get(_TASK_ROWS)
    if batch is not None:
        batch.setdefault(("insert", _TASK, ()), []).extend(values)
    elif task_rows is not None:
        task_rows.extend({**_NEW_TASK, **value} for value in values)
    elif together is not None:
        together.append(("insert", _TASK, values))
    else:  # (the caller's pending changes go in at the commit: no autoflush here)
        db.send_many(session.connection(), _INSERT_TASK, values)
    rows = []
    for value in values:
        row = Task(**{c: None for c in _NULLABLE_TASK_COLUMNS}, **value)
        make_transient_to_detached(row)
        session.add(row)
        rows.append(row)
    return rows


_INSERT_TASK = insert(_TASK)
_NULLABLE_TASK_COLUMNS = ("assignee_id", "claimed_at", "completed_at", "completed_by_id", "data")
_TASK_COLUMNS = tuple(c.name for c in _TASK.c)
_NEW_TASK = dict.fromkeys(_NULLABLE_TASK_COLUMNS)  # what ``task_values`` leaves unset
# What closing a task changes on its row (``sync``): the rest of the row stays as it is.
_CLOSING = ("state", "completed_at", "completed_by_id", "data", "assignee_id", "claimed_at")


@functools.cache
def _task_upsert(n: int) -> Any:
    """SQLite: ``n`` task rows in one statement, each closed (a row that exists, ready) or
    added (a new one). A row closes only from READY to another state, and a new one is READY:
    a new task whose id exists, or a closed one found already closed, matches neither, is not
    returned, and ``_send_task_rows`` raises."""
    rows = [
        {c: bindparam(f"r{i}_{c}", type_=_TASK.c[c].type) for c in _TASK_COLUMNS} for i in range(n)
    ]
    statement = sqlite.insert(_TASK).values(rows)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_TASK.c.id],
        set_={c: excluded[c] for c in _CLOSING},
        where=(_TASK.c.state == READY) & (excluded.state != READY),
    ).returning(_TASK.c.id)


_UPSERT_CHUNK = 200  # rows per statement: 3,600 parameters, far below SQLite's limit


def _send_task_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    written: set[str] = set()
    for start in range(0, len(rows), _UPSERT_CHUNK):
        chunk = rows[start : start + _UPSERT_CHUNK]
        params = {f"r{i}_{c}": row[c] for i, row in enumerate(chunk) for c in _TASK_COLUMNS}
        sent = db.send(session.connection(), _task_upsert(len(chunk)), params)
        written.update(r[0] for r in sent.rows)
    missed = [row["id"] for row in rows if row["id"] not in written]
    if missed:
        raise RuntimeError(
            f"task rows neither added nor closed (ids taken, or not ready): {missed}"
        )


def sync(
    session: Session,
    instance: ProcessInstance,
    workflow: Any,
    loaded: spiff.LoadedSpec,
    *,
    actor: Actor,
    completed_task_id: str | None = None,
    completed_data: dict[str, Any] | None = None,
    counted_as: tuple[str, str, str] | None = None,
    open_rows: list[Task] | None = None,
) -> TaskChange:
    """Save the workflow and bring the task rows, stage and status in line with it.

    ``counted_as`` is the (stage, portfolio, status) the dashboard counts the instance under,
    when the caller changed it before calling (a cancel). ``open_rows``: the instance's ready
    task rows, when the caller has read them already.

    The rows are written with Core statements — an UPDATE of the instance, one of the closed
    tasks (two when tasks were cancelled beside the completed one), one INSERT of the new
    ones — and the loaded objects updated to match, without the ORM's flush."""
    now = utcnow()
    is_new = not instance.version
    counted = counted_as or (instance.stage, instance.portfolio_code, instance.status)
    ready = {t.id: t for t in ready_tasks(workflow)}
    if open_rows is None:  # (a caller handling many instances reads them all at once)
        with session.no_autoflush:
            open_rows = list(
                session.scalars(
                    select(Task).where(Task.instance_id == instance.id, Task.state == READY)
                )
            )
    change = TaskChange(created=[], closed=[])
    with _together(session):  # (PostgreSQL: the writes below go as one statement)
        for row in open_rows:
            if row.id in ready:
                continue
            spiff_task = spiff.find_task(workflow, row.id)
            values: dict[str, Any] = {
                "state": COMPLETED if spiff.is_completed_state(spiff_task) else CANCELLED,
                "completed_at": now,
            }
            if row.id == completed_task_id:
                # The assignee the caller may just have set goes in the same statement.
                values.update(completed_by_id=actor.user_id, data=completed_data,
                              assignee_id=row.assignee_id, claimed_at=row.claimed_at)  # fmt: skip
            _write(session, row, _TASK, values)
            change.closed.append(row)
        known = {r.id for r in open_rows}
        due = DueDates(now)
        new_values = [
            task_values(
                loaded,
                task,
                instance_id=instance.id,
                org_id=instance.org_id,
                establishment_id=instance.establishment_id,
                due=due,
            )
            for task_id, task in ready.items()
            if task_id not in known
        ]
        change.created = _insert_tasks(session, new_values)

        change.ready = [r for r in open_rows if r.id in ready] + change.created
        header: dict[str, Any] = {}
        stage = top_stage(loaded, list(ready.values()), instance.stage)
        if workflow.is_completed():
            header["status"] = COMPLETED if instance.status != CANCELLED else CANCELLED
            header["ended_at"] = instance.ended_at or now
            stage = spiff.end_stage(workflow) or stage
        if stage and stage != instance.stage:
            header["stage"], header["stage_since"] = stage, now
        header.update(vocabulary.header_values(loaded.manifest, completed_data))
        reason = vocabulary.rejection_reason(loaded.manifest, completed_data)
        if reason:
            header["last_rejection_reason"] = reason
        header["state"] = spiff.dump_state(workflow)
        header["next_timer_due_at"] = spiff.next_timer_due(workflow)
        header["version"] = (instance.version or 0) + 1
        for obj, table in _changed_rows(session):  # written here, not by the commit's flush
            _write(session, obj, table, _pending(inspect(obj)))
        _write(session, instance, _INSTANCE, header, head=audit.chain_key(instance.org_id))
    if not is_new:
        counts.instance_changed(session, instance, counted)
    return change
