"""Bulk start: credentialing started for many establishments, each in its own transaction.

One refusal (already running, no permission, unknown CNES, a live credential) does not stop
the others; the report says what started and what was refused and why.

A credenciamento (a process whose ``credential`` block is of kind ``request``) skips the
establishments that hold a live credential for the portfolio, as a single start refuses them
(engine/credentials/service.py). The credential is read from its table, the schema layer
every package may read: the credentials service imports the runtime, not the reverse.
"""

from __future__ import annotations

import multiprocessing
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, text

from engine import observability
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.credentialing import vocabulary
from engine.credentials.models import LIVE, STATUS_LABELS, Credential
from engine.dashboard import counts
from engine.db import Database, utcnow
from engine.errors import DomainError, Invalid
from engine.establishments.models import Establishment
from engine.runtime import instances
from engine.runtime import sync as rows
from engine.runtime.instances import StartPlan, start_instance
from engine.runtime.sync import Built
from engine.workflow import spiff
from engine.workflow.stamp import Stamps

MAX_ESTABLISHMENTS = 2000


@dataclass
class BulkReport:
    started: list[tuple[str, int]] = field(default_factory=list)  # (CNES, instance id)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (CNES, reason)


def _reason(exc: DomainError) -> str:
    if isinstance(exc, Invalid) and exc.errors:
        return "; ".join(exc.errors.values())
    return exc.message


def _credentialed(
    session, plan: StartPlan, org_id: int, portfolio_code: str, cnes_list: list[str]
) -> dict[str, str]:
    """CNES -> why it is skipped, for the establishments (of ``cnes_list``) that hold a live
    credential for the portfolio; empty when the process does not request credentials."""
    manifest = plan.loaded.manifest
    block = manifest.get("credential")
    if not (isinstance(block, dict) and block.get("kind") == "request") or not cnes_list:
        return {}
    portfolio = portfolio_code if manifest.get("per_portfolio", True) else ""
    found = session.execute(
        select(Establishment.cnes, Credential.id, Credential.status)
        .join(Credential, Credential.establishment_id == Establishment.id)
        .where(
            Establishment.org_id == org_id,
            Establishment.cnes.in_(cnes_list),
            Credential.org_id == org_id,
            Credential.portfolio_code == portfolio,
            Credential.status.in_(LIVE),
        )
    )
    return {
        cnes: f"CNES {cnes} já tem credencial em {STATUS_LABELS.get(status, status)} (nº {cid})."
        for cnes, cid, status in found
    }


def start_many(
    db: Database,
    actor: Actor,
    org_id: int,
    cnes_list: list[str],
    *,
    process_key: str,
    portfolio_code: str = "",
    data: dict[str, Any] | None = None,
) -> BulkReport:
    """Start the process for each CNES of ``cnes_list``; ``data`` is what the starter
    answered for all of them (e.g. ``{"possui_conta_govbr": true}``), as a single start's."""
    if not ({"admin", "gestor"} & actor.roles_in(org_id)) and not actor.is_system:
        with db.read():  # a denial raised in a database scope is audited
            raise actor.deny(
                "Você não pode iniciar credenciamentos.",
                action="instance.bulk_start",
                org_id=org_id,
            )
    wanted = list(dict.fromkeys(c.strip() for c in cnes_list if c and c.strip()))
    if not wanted:
        raise Invalid({"establishments": "Selecione ao menos um estabelecimento."})
    if len(wanted) > MAX_ESTABLISHMENTS:
        raise Invalid(
            {"establishments": f"No máximo {MAX_ESTABLISHMENTS} estabelecimentos por vez."}
        )
    report = BulkReport()
    try:
        with db.read() as session:
            plan = instances.start_plan(session, process_key)
            portfolio = instances.portfolio_for(session, plan, portfolio_code)
            code = portfolio.code if portfolio else portfolio_code
            skip = _credentialed(session, plan, org_id, code, wanted)
    except DomainError:
        skip = {}  # an unknown process or portfolio: each start below says so
    for cnes in wanted:
        if cnes in skip:
            report.refused.append((cnes, skip[cnes]))
            continue
        try:
            with db.write() as session:
                instance = start_instance(
                    session, actor, org_id=org_id, process_key=process_key,
                    establishment_cnes=cnes, portfolio_code=portfolio_code, data=data,
                )  # fmt: skip
                report.started.append((cnes, instance.id))
        except DomainError as exc:
            report.refused.append((cnes, _reason(exc)))
    return report


# ------------------------------------------------------------------ the national fast path

START_BATCH = 2000


@dataclass
class BulkStartCounts:
    started: int = 0
    # not reached by the actor's start roles, already running, or holding a live credential
    skipped: int = 0
    batches: int = 0
    credentialed: int = 0  # of the skipped: establishments holding a live credential
    stamped: int = 0  # of the started: workflows stamped from a template, not built anew


def start_all(
    db: Database,
    actor: Actor,
    org_id: int,
    *,
    process_key: str,
    portfolio_code: str = "",
    batch: int = START_BATCH,
    progress: Callable[[BulkStartCounts], None] | None = None,
    workers: int | None = None,
) -> BulkStartCounts:
    """Start the process for every establishment of the organization that has no running
    instance of it (and portfolio) yet, ``batch`` establishments per transaction.

    The result is what ``start_instance`` gives, one establishment at a time: the same start
    data, workflow state (each instance's own workflow, so its task UUIDs are its own), task
    rows, stage and one ``instance.started`` audit event per instance, chained in order — built
    by the same functions (engine/runtime/instances.py, engine/runtime/sync.py,
    engine/credentialing/vocabulary.py). Only the writing is batched: on PostgreSQL the rows
    of a batch go in with COPY, with instance ids drawn from the table's sequence. Elsewhere
    each establishment goes through ``start_instance`` (inside the batch's transaction). Memory is bounded by two batches:
    on PostgreSQL the next batch is read (in the current one's transaction) while the current
    one is written. A single start racing the batch for one of its establishments makes the
    batch's transaction fail on the running-instance unique index: nothing of that batch is
    kept, and running ``start_all`` again picks up where it stopped.

    On PostgreSQL the workflows are, by default, stamped in this process from templates
    built once per process version and start path (engine/workflow/stamp.py): the state a
    real build gives, with the instance's own task ids and data — checked against a real
    build once per template; a version whose starts do not stamp (a script, a timer) is built
    for real. With ``workers`` given, or for such a version, the workflows are built in
    spawned processes while this one writes the rows (``workers=0``: all in this process);
    by default one worker per CPU, started once ``POOL_THRESHOLD`` establishments are to be
    built (smaller calls stay in this process); an explicit number always uses the pool. Building one workflow raising
    fails its batch with ``BuildFailed`` (the batch's transaction is rolled back); the pool is
    shut down when the call returns or raises. Spawned workers import the main module, so a
    script calling this needs the ``if __name__ == "__main__":`` guard.
    """
    if not ({"admin", "gestor"} & actor.roles_in(org_id)) and not actor.is_system:
        raise actor.deny(
            "Você não pode iniciar credenciamentos.", action="instance.bulk_start", org_id=org_id
        )
    totals = BulkStartCounts()
    last_id = 0
    builder = _Builder(workers)
    ahead: _Batch | None = None
    analyzed_at = 0  # instances started when the planner's statistics were last refreshed
    try:
        while True:
            copied = 0  # on SQLite each start goes through start_instance, which counts it
            with db.write() as session:
                if session.get_bind().dialect.name == "postgresql":
                    current = ahead or _read_batch(
                        session, actor, org_id, process_key, portfolio_code, last_id, batch, builder
                    )
                    if current is None:
                        return totals
                    last_id = current.last_id
                    # The next batch is read now, so that its workflows are being built while
                    # this one's rows are written and committed.
                    ahead = _read_batch(
                        session, actor, org_id, process_key, portfolio_code, last_id, batch, builder
                    )
                    started = copied = _copy_batch(session, actor, org_id, current)
                    skipped, credentialed = current.skipped, current.credentialed
                else:
                    ests = _next_batch(session, org_id, process_key, portfolio_code, last_id, batch)
                    if not ests:
                        return totals
                    last_id = ests[-1].id
                    started, skipped, credentialed = _one_by_one(
                        session, actor, org_id, ests, process_key, portfolio_code
                    )
            if copied:
                observability.started(process_key, copied)
            totals.started += started
            totals.skipped += skipped
            totals.credentialed += credentialed
            totals.batches += 1
            if started and totals.started >= 2 * analyzed_at:
                _refresh_statistics(db)
                analyzed_at = totals.started
            if progress:
                progress(totals)
    finally:
        totals.stamped = builder.stamped
        builder.close()


def _refresh_statistics(db: Database) -> None:
    """ANALYZE the tables the bulk start grows, each time its count doubles (log2(n) times).

    The batch queries (running instances, latest instances of the batch's establishments)
    are index probes only if the planner knows the tables have grown: planned on the
    statistics of an empty table they become scans of every instance, once per batch, and
    the start slows down as it goes. Autovacuum refreshes statistics too, but only once a
    minute and not at all where it is off (as on this project's CI database)."""
    if db.engine.dialect.name != "postgresql":
        return
    with db.write() as session:
        session.execute(text("ANALYZE process_instance, task"))


def _one_by_one(session, actor, org_id, ests, process_key, portfolio_code):
    plan = instances.start_plan(session, process_key)
    portfolio = instances.portfolio_for(session, plan, portfolio_code)
    code = portfolio.code if portfolio else portfolio_code
    credentialed = _credentialed(session, plan, org_id, code, [e.cnes for e in ests])
    started, skipped = 0, len(credentialed)
    for est in ests:
        if est.cnes in credentialed:
            continue
        try:
            with session.begin_nested():
                start_instance(
                    session, actor, org_id=org_id, process_key=process_key,
                    establishment_cnes=est.cnes, portfolio_code=portfolio_code,
                )  # fmt: skip
            started += 1
        except DomainError:
            skipped += 1
    return started, skipped, len(credentialed)


def _next_batch(session, org_id, process_key, portfolio_code, last_id, batch):
    return list(
        session.scalars(
            select(Establishment)
            .where(Establishment.org_id == org_id, Establishment.id > last_id)
            .order_by(Establishment.id)
            .limit(batch)
        )
    )


@dataclass
class _Batch:
    """A batch read from the database, its workflows handed to the builder."""

    plan: instances.StartPlan
    code: str  # portfolio
    establishments: list[tuple[int, str, str]]  # (id, CNES, UF) of those to start, in id order
    built: Iterator[Built]  # their workflows, in the same order
    skipped: int
    last_id: int
    credentialed: int = 0  # of the skipped: holding a live credential


def _read_batch(session, actor, org_id, process_key, portfolio_code, last_id, batch, builder):
    """The establishments after ``last_id`` to start, with their start data: everything the
    batch needs from the database before its rows are written (the COPY holds the connection
    until it ends). None when no establishment is left."""
    ests = _next_batch(session, org_id, process_key, portfolio_code, last_id, batch)
    if not ests:
        return None
    last_id = ests[-1].id
    plan = instances.start_plan(session, process_key)
    portfolio = instances.portfolio_for(session, plan, portfolio_code)
    code = portfolio.code if portfolio else ""
    # Same refusals as a single start: not reached by a start role, already running for this
    # portfolio, or holding a live credential for it.
    running = instances.running_instances(session, process_key, code, [e.id for e in ests])
    credentialed = _credentialed(session, plan, org_id, code, [e.cnes for e in ests])
    offered = len(ests)
    ests = [
        e for e in ests
        if e.id not in running and e.cnes not in credentialed
        and instances.may_start(actor, org_id, plan, e.id)
    ]  # fmt: skip
    data = vocabulary.start_data(session, plan.loaded.manifest, ests, portfolio)
    inputs = [(est.cnes, start_data) for est, start_data in zip(ests, data, strict=True)]
    return _Batch(
        plan=plan,
        code=code,
        establishments=[(e.id, e.cnes, e.uf) for e in ests],
        built=builder.build(plan.definition, plan.loaded, inputs) if inputs else iter(()),
        skipped=offered - len(ests),
        last_id=last_id,
        credentialed=len(credentialed),
    )


def _copy_batch(session, actor, org_id, b):
    """Write the batch's instances, tasks and audit events; the number of instances."""
    if not b.establishments:
        return 0
    ests, loaded, code, process_key = b.establishments, b.plan.loaded, b.code, b.plan.definition.key
    # The dashboard counters, as start_instance keeps them: what the new instances replace,
    # read before their latest flags are cleared, plus the new instances, applied once.
    dashboard_rows = counts.replaced_by_start(
        session, {est_id: uf for est_id, _, uf in ests}, process_key, code
    )
    instances.supersede_latest(session, [est_id for est_id, _, _ in ests], process_key, code)
    ids = list(
        session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence('process_instance', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": len(ests)},
        )
    )
    now = utcnow()
    due = rows.DueDates(now)
    tasks: list[tuple] = []
    events: list[audit.NewEvent] = []
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        # Rows are written as each workflow comes back built, in order, so the server stores
        # (compresses, indexes) one while the next ones are being built.
        with cur.copy(
            f"COPY process_instance ({', '.join(rows.INSTANCE_COLUMNS)}) FROM STDIN"
        ) as copy:
            for instance_id, (est_id, cnes, uf), new in zip(ids, ests, b.built, strict=True):
                for task in new.tasks:
                    values = rows.task_values(loaded, task, instance_id=instance_id,
                                              org_id=org_id, establishment_id=est_id, due=due)  # fmt: skip
                    tasks.append(tuple(values[c] for c in rows.TASK_COLUMNS))
                values = rows.instance_values(
                    loaded, new, instance_id=instance_id, org_id=org_id,
                    definition_id=b.plan.definition.id, establishment_id=est_id,
                    portfolio_code=code, actor=actor, now=now,
                )  # fmt: skip
                copy.write_row(tuple(values[c] for c in rows.INSTANCE_COLUMNS))
                events.append(
                    audit.NewEvent("instance.started", "instance", str(instance_id),
                                   instances.started_event(b.plan, cnes, code))
                )  # fmt: skip
                dashboard_rows[counts.key(uf, values["stage"], code, values["status"])] += 1
        with cur.copy(f"COPY task ({', '.join(rows.TASK_COLUMNS)}) FROM STDIN") as copy:
            for row in tasks:
                copy.write_row(row)
    counts.apply(session, org_id, dashboard_rows)
    audit.append_many(session, actor, org_id, events)
    return len(events)


# ------------------------------------------------------------------ building the workflows

POOL_THRESHOLD = 500  # establishments to build in one call before the default pool starts
POOL_CHUNK = 100  # workflows per task sent to a worker
# Real builds of a version after which stamping is given up when they outnumber the stamps.
STAMP_PROBE = 200


class BuildFailed(RuntimeError):
    """Building one establishment's workflow raised (a script, a condition, data that does not
    serialize): its batch is not written."""


def _build(loaded: spiff.LoadedSpec, cnes: str, start_data: dict[str, Any]) -> Built:
    try:
        return rows.built(spiff.new_workflow(loaded, start_data))
    # Named by establishment, and picklable: the library's own errors hold tasks and may not
    # cross back from a worker.
    except Exception as exc:
        raise BuildFailed(f"CNES {cnes}: {type(exc).__name__}: {exc}") from exc


def _stamped(stamps: Stamps, cnes: str, start_data: dict[str, Any]) -> Built:
    """One establishment's new workflow from the version's stamps: the template's state with
    its own ids and data, or built for real (and checked against the template) when none
    fits yet."""
    try:
        workflow, state, ready = stamps.build(start_data)
        if workflow is not None:
            return rows.built(workflow)
    except Exception as exc:
        raise BuildFailed(f"CNES {cnes}: {type(exc).__name__}: {exc}") from exc
    return Built(state=state, tasks=ready, completed=False, end_stage=None, next_timer_due=None)


# The spec a worker process builds with, parsed once by its initializer.
_worker_spec: spiff.LoadedSpec | None = None


def _worker_init(definition: dict[str, Any], bpmn_zlib: bytes) -> None:
    global _worker_spec
    bpmn_xml = zlib.decompress(bpmn_zlib).decode("utf-8")
    _worker_spec = spiff.cached_spec(SimpleNamespace(**definition, bpmn_xml=bpmn_xml, files={}))


def _worker_build(cnes: str, start_data: dict[str, Any]) -> Built:
    assert _worker_spec is not None
    return _build(_worker_spec, cnes, start_data)


class _Builder:
    """Builds a batch's workflows, results in input order: in this process, or in a pool of
    worker processes kept for the whole ``start_all`` call.

    Workers are spawned, not forked: a forked child would inherit the pooled connections and
    the COPY in progress, and closing them there would break this process's transaction.
    Each worker parses the definition's BPMN itself (its text, compressed, passed once)."""

    def __init__(self, workers: int | None) -> None:
        self.explicit = workers is not None
        self.workers = max(1, os.cpu_count() or 1) if workers is None else max(0, workers)
        self.pending = 0  # establishments given to build so far
        self._pool: ProcessPoolExecutor | None = None
        self._definition_id: int | None = None
        self._retired: list[ProcessPoolExecutor] = []  # built for an older definition
        self._stamps: dict[int, Stamps] = {}  # by definition id

    def build(
        self, definition: Any, loaded: spiff.LoadedSpec, inputs: list[tuple[str, dict[str, Any]]]
    ) -> Iterator[Built]:
        self.pending += len(inputs)
        stamps = self._stamps_for(definition, loaded)
        if stamps is not None:
            return (_stamped(stamps, cnes, data) for cnes, data in inputs)
        use_pool = self.workers > 0 and (
            self.explicit or self._pool is not None or self.pending >= POOL_THRESHOLD
        )
        if not use_pool:
            return (_build(loaded, cnes, data) for cnes, data in inputs)
        if self._definition_id != definition.id:  # first use, or a version deployed meanwhile
            if self._pool is not None:  # it finishes the batch it was given, then its workers exit
                self._pool.shutdown(wait=False)
                self._retired.append(self._pool)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                # Kept small (the forms are not needed to build): a spawned child reads its
                # arguments only after importing the main module, and the parent waits for
                # that to start the next worker once they exceed the pipe's buffer.
                initargs=(
                    {"id": definition.id, "key": definition.key,
                     "content_hash": definition.content_hash, "manifest": definition.manifest},
                    zlib.compress(definition.bpmn_xml.encode("utf-8")),
                ),
            )  # fmt: skip
            self._definition_id = definition.id
        assert self._pool is not None
        # Small enough that every worker gets a share and the first rows come back soon.
        chunk = max(1, min(POOL_CHUNK, len(inputs) // (2 * self.workers)))
        return self._pool.map(_worker_build, *zip(*inputs, strict=True), chunksize=chunk)

    @property
    def stamped(self) -> int:
        return sum(s.stamped for s in self._stamps.values())

    def _stamps_for(self, definition: Any, loaded: spiff.LoadedSpec) -> Stamps | None:
        """The stamps of this version (engine/workflow/stamp.py), unless the pool was asked
        for, or the version's starts turned out not to stamp (then the pool builds them)."""
        if self.explicit:
            return None
        stamps = self._stamps.get(definition.id)
        if stamps is None:
            stamps = self._stamps[definition.id] = Stamps(loaded, rows.ready_tasks)
        if stamps.built >= STAMP_PROBE and stamps.stamped < stamps.built:
            return None  # mostly real builds: the workers do those faster
        return stamps

    def close(self) -> None:
        """Stop the workers (queued work is dropped) and wait for them to exit."""
        pools = [*self._retired, self._pool] if self._pool is not None else self._retired
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._definition_id, self._retired = None, None, []
