"""Bulk start: credentialing started for many establishments, each in its own transaction.

One refusal (already running, no permission, unknown CNES) does not stop the others; the
report says what started and what was refused and why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text

from engine import settings as settings_mod
from engine.accounts.actor import Actor
from engine.audit import service as audit
from engine.certificates import service as certificates
from engine.certificates.models import Certificate
from engine.db import Database, utcnow
from engine.definitions import service as definitions
from engine.errors import DomainError, Invalid
from engine.establishments import service as establishments
from engine.establishments.models import Establishment
from engine.runtime import service as runtime
from engine.runtime import spiff
from engine.runtime.models import COMPLETED, READY, RUNNING, ProcessInstance

MAX_ESTABLISHMENTS = 2000


@dataclass
class BulkReport:
    started: list[tuple[str, int]] = field(default_factory=list)  # (CNES, instance id)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (CNES, reason)


def _reason(exc: DomainError) -> str:
    if isinstance(exc, Invalid) and exc.errors:
        return "; ".join(exc.errors.values())
    return exc.message


def start_many(
    db: Database,
    actor: Actor,
    org_id: int,
    cnes_list: list[str],
    *,
    process_key: str,
    portfolio_code: str = "",
) -> BulkReport:
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
    for cnes in wanted:
        try:
            with db.write() as session:
                instance = runtime.start_instance(
                    session, actor, org_id=org_id, process_key=process_key,
                    establishment_cnes=cnes, portfolio_code=portfolio_code,
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
    skipped: int = 0  # not reached by the actor's start roles, or already running
    batches: int = 0


def start_all(
    db: Database,
    actor: Actor,
    org_id: int,
    *,
    process_key: str,
    portfolio_code: str = "",
    batch: int = START_BATCH,
    progress: Callable[[BulkStartCounts], None] | None = None,
) -> BulkStartCounts:
    """Start the process for every establishment of the organization that has no running
    instance of it (and portfolio) yet, ``batch`` establishments per transaction.

    The result is what ``runtime.start_instance`` gives, one establishment at a time: the same
    start data, workflow state (each instance's own workflow, so its task UUIDs are its own),
    task rows, stage and one ``instance.started`` audit event per instance, chained in order.
    Only the writing is batched: on PostgreSQL the rows of a batch go in with COPY, with
    instance ids drawn from the table's sequence. Elsewhere each establishment goes through
    ``start_instance`` (inside the batch's transaction). Memory is bounded by one batch.
    A single start racing the batch for one of its establishments makes the batch's
    transaction fail on the running-instance unique index: nothing of that batch is kept,
    and running ``start_all`` again picks up where it stopped.
    """
    if not ({"admin", "gestor"} & actor.roles_in(org_id)) and not actor.is_system:
        raise actor.deny(
            "Você não pode iniciar credenciamentos.", action="instance.bulk_start", org_id=org_id
        )
    counts = BulkStartCounts()
    last_id = 0
    while True:
        with db.write() as session:
            ests = _next_batch(session, org_id, process_key, portfolio_code, last_id, batch)
            if not ests:
                return counts
            last_id = ests[-1].id
            if session.get_bind().dialect.name == "postgresql":
                started, skipped = _copy_batch(
                    session, actor, org_id, ests, process_key, portfolio_code
                )
            else:
                started = skipped = 0
                for est in ests:
                    try:
                        with session.begin_nested():
                            runtime.start_instance(
                                session, actor, org_id=org_id, process_key=process_key,
                                establishment_cnes=est.cnes, portfolio_code=portfolio_code,
                            )  # fmt: skip
                        started += 1
                    except DomainError:
                        skipped += 1
        counts.started += started
        counts.skipped += skipped
        counts.batches += 1
        if progress:
            progress(counts)


def _next_batch(session, org_id, process_key, portfolio_code, last_id, batch):  # type: ignore[no-untyped-def]
    return list(
        session.scalars(
            select(Establishment)
            .where(Establishment.org_id == org_id, Establishment.id > last_id)
            .order_by(Establishment.id)
            .limit(batch)
        )
    )


def _copy_batch(session, actor, org_id, ests, process_key, portfolio_code):  # type: ignore[no-untyped-def]
    definition = definitions.latest(session, process_key)
    loaded = spiff.cached_spec(definition)
    start_roles = loaded.manifest.get("start_roles", ["admin"])
    portfolio = (
        establishments.get_portfolio(session, portfolio_code)
        if loaded.manifest.get("per_portfolio", True)
        else None
    )
    code = portfolio.code if portfolio else ""
    # Same refusals as start_instance: not reached by a start role, or already running
    # for this portfolio.
    running = set(
        session.scalars(
            select(ProcessInstance.establishment_id).where(
                ProcessInstance.establishment_id.in_([e.id for e in ests]),
                ProcessInstance.process_key == process_key,
                ProcessInstance.portfolio_code == code,
                ProcessInstance.status == RUNNING,
            )
        )
    )
    offered = len(ests)
    ests = [
        e for e in ests
        if e.id not in running and any(actor.has_role(org_id, r, e.id) for r in start_roles)
    ]  # fmt: skip
    skipped = offered - len(ests)
    if not ests:
        return 0, skipped
    certs = {
        c.establishment_id: c
        for c in session.scalars(
            select(Certificate).where(
                Certificate.establishment_id.in_([e.id for e in ests]),
                Certificate.is_current.is_(True),
            )
        )
    }
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
    due_by_days: dict[str, Any] = {}
    cfg = settings_mod.load()
    tasks: list[tuple] = []
    events: list[tuple[int, str]] = []  # (instance id, CNES)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        # Rows are written as each workflow is built, so the server stores (compresses,
        # indexes) one while the next is being built.
        with cur.copy(
            "COPY process_instance (id, org_id, definition_id, process_key, establishment_id, "
            "portfolio_code, status, stage, stage_since, numero_solicitacao, "
            "identificador_solicitante, last_rejection_reason, state, version, "
            "next_timer_due_at, started_at, started_by_id, ended_at, cancel_reason) FROM STDIN"
        ) as copy:
            for instance_id, est in zip(ids, ests, strict=True):
                cert = certs.get(est.id)
                start_data: dict[str, Any] = {
                    "possui_certificado_valido": certificates.is_valid(cert),
                    "certificado_atual": (
                        {
                            "sha256": cert.sha256,
                            "not_after": cert.not_after.isoformat(),
                            "cnpj": cert.cnpj,
                        }
                        if cert
                        else None
                    ),  # fmt: skip
                    "possui_conta_govbr": False,
                    "estabelecimento": est.register_data(),
                }
                if portfolio is not None:
                    start_data["portfolio"] = portfolio.as_data()
                for provider in runtime._start_data_providers:
                    start_data.update(provider(session, est))
                workflow = spiff.new_workflow(loaded, start_data)
                stages = []
                for t in spiff.ready_human_tasks(workflow):
                    props = spiff.properties(t.task_spec)
                    stages.append(props.get("stage", ""))
                    days = props.get("slaBusinessDays", str(cfg.default_sla_business_days))
                    if days not in due_by_days:
                        due_by_days[days] = runtime._due_at(props, now)
                    lane = t.task_spec.lane
                    tasks.append((
                        str(t.id), instance_id, org_id, est.id,
                        t.task_spec.bpmn_id or t.task_spec.name,
                        t.task_spec.bpmn_name or t.task_spec.name,
                        lane, loaded.lanes.get(lane) if lane else None, READY,
                        props.get("stage", ""), props.get("formJsonSchemaFilename"),
                        due_by_days[days], now,
                    ))  # fmt: skip
                stage = max(stages, key=lambda s: runtime._stage_rank(loaded, s)) if stages else ""
                status, ended = RUNNING, None
                if workflow.is_completed():
                    status, ended = COMPLETED, now
                    stage = spiff.end_stage(workflow) or stage
                copy.write_row((
                    instance_id, org_id, definition.id, process_key, est.id, code, status, stage,
                    now, "", "", "", spiff.dump_state(workflow), 1,
                    spiff.next_timer_due(workflow), now, actor.user_id, ended, "",
                ))  # fmt: skip
                events.append((instance_id, est.cnes))
        with cur.copy(
            "COPY task (id, instance_id, org_id, establishment_id, element_id, name, lane, "
            "role, state, stage, form, due_at, created_at) FROM STDIN"
        ) as copy:
            for row in tasks:
                copy.write_row(row)
    _audit_started(session, actor, org_id, events, process_key, definition.version, code)
    return len(events), skipped


def _audit_started(session, actor, org_id, events, process_key, version, code):  # type: ignore[no-untyped-def]
    """One ``instance.started`` event per instance, as start_instance writes it, appended to
    the organization's chain under its head lock (held to the end of the transaction)."""
    key = audit.chain_key(org_id)
    head = audit._lock_head(session, key)
    seq, prev = head.last_seq, head.last_hash
    label = actor.label
    raw = session.connection().connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(
            "COPY audit_event (chain, seq, at, org_id, actor_id, actor, action, entity_type, "
            "entity_id, data, prev_hash, hash) FROM STDIN"
        ) as copy,
    ):
        for instance_id, cnes in events:
            seq += 1
            fields = {
                "chain": key, "seq": seq, "at": utcnow(), "org_id": org_id,
                "actor_id": actor.user_id, "actor": label, "action": "instance.started",
                "entity_type": "instance", "entity_id": str(instance_id),
                "data": {"process": process_key, "version": version, "establishment": cnes,
                         "portfolio": code},
                "prev_hash": prev,
            }  # fmt: skip
            digest = audit.event_hash(**fields)
            copy.write_row((
                key, seq, fields["at"], org_id, actor.user_id, label, "instance.started",
                "instance", str(instance_id), json.dumps(fields["data"], ensure_ascii=False),
                prev, digest,
            ))  # fmt: skip
            prev = digest
    head.last_seq, head.last_hash = seq, prev
    session.flush()
