"""Instances: start, read, cancel.

A start and the bulk start (engine/runtime/bulk.py) share every step but the writing: the
process and its portfolio (``start_plan``, ``portfolio_for``), who may start it
(``may_start``), the refusal of a second running instance (``running_instances``), the start
data (engine/credentialing/vocabulary.py), the rows of the new instance (engine/runtime/sync.py)
and its audit event (``started_event``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import observability
from engine.access.actor import Actor
from engine.audit import queries as audit_queries
from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.credentialing import vocabulary
from engine.dashboard import counts
from engine.db import utcnow
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments import service as establishments
from engine.establishments.models import Establishment, Portfolio
from engine.runtime import sync as rows
from engine.runtime.models import CANCELLED, RUNNING, ProcessInstance, Task
from engine.runtime.state import keep_live, load_workflow, lock_instance
from engine.workflow import spiff

# ---------------------------------------------------------------- what a start needs


@dataclass
class StartPlan:
    """The deployed version a start uses."""

    definition: ProcessDefinition
    loaded: spiff.LoadedSpec

    @property
    def start_roles(self) -> list[str]:
        return list(self.loaded.manifest.get("start_roles", ["admin"]))


def start_plan(session: Session, process_key: str) -> StartPlan:
    definition = definitions.latest(session, process_key)
    return StartPlan(definition, spiff.cached_spec(definition))


def portfolio_for(session: Session, plan: StartPlan, portfolio_code: str) -> Portfolio | None:
    """The portfolio the instance runs for; None for a process that is not per portfolio."""
    if not plan.loaded.manifest.get("per_portfolio", True):
        return None
    return establishments.get_portfolio(session, portfolio_code)


def may_start(actor: Actor, org_id: int, plan: StartPlan, establishment_id: int) -> bool:
    return any(actor.has_role(org_id, role, establishment_id) for role in plan.start_roles)


def running_instances(
    session: Session, process_key: str, portfolio_code: str, establishment_ids: Sequence[int]
) -> dict[int, int]:
    """Establishment id -> its running instance of the process and portfolio."""
    return dict(
        session.execute(
            select(ProcessInstance.establishment_id, ProcessInstance.id).where(
                ProcessInstance.establishment_id.in_(establishment_ids),
                ProcessInstance.process_key == process_key,
                ProcessInstance.portfolio_code == portfolio_code,
                ProcessInstance.status == RUNNING,
            )
        ).all()
    )


def started_event(plan: StartPlan, cnes: str, portfolio_code: str) -> dict[str, Any]:
    """The data of an ``instance.started`` audit event."""
    return {
        "process": plan.definition.key,
        "version": plan.definition.version,
        "establishment": cnes,
        "portfolio": portfolio_code,
    }


def supersede_latest(
    session: Session, establishment_ids: Sequence[int], process_key: str, portfolio_code: str
) -> None:
    """Clear the latest-instance flag of these establishments' instances of the process and
    portfolio: the instance about to be inserted becomes their latest. On PostgreSQL the row
    lock makes a concurrent start for the same establishment wait, then fail on the unique
    indexes (running / latest) instead of leaving two latest instances."""
    session.execute(
        update(ProcessInstance)
        .where(
            ProcessInstance.establishment_id.in_(establishment_ids),
            ProcessInstance.process_key == process_key,
            ProcessInstance.portfolio_code == portfolio_code,
            ProcessInstance.is_latest.is_(True),
        )
        .values(is_latest=False)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- start


def start_instance(
    session: Session,
    actor: Actor,
    *,
    org_id: int,
    process_key: str,
    establishment_cnes: str,
    portfolio_code: str = "",
    data: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
) -> ProcessInstance:
    """Start one instance. ``data``: what the starter gave the start data providers;
    ``variables``: start variables given as they are (a credential's values,
    engine/credentials/service.py)."""
    plan = start_plan(session, process_key)
    est = session.scalar(
        select(Establishment).where(
            Establishment.org_id == org_id, Establishment.cnes == establishment_cnes
        )
    )
    if est is None:
        raise Invalid(
            {"establishment": f"CNES {establishment_cnes} não cadastrado nesta organização."}
        )
    if not may_start(actor, org_id, plan, est.id):
        raise actor.deny(
            "Você não pode iniciar este processo para este estabelecimento.",
            action="instance.start",
            org_id=org_id,
            entity_type="establishment",
            entity_id=est.id,
            process=process_key,
        )
    portfolio = portfolio_for(session, plan, portfolio_code)
    code = portfolio.code if portfolio else ""
    running = running_instances(session, process_key, code, [est.id]).get(est.id)
    if running:
        raise Conflict(
            f"Já existe um processo em andamento para o CNES {est.cnes} neste portfólio (instância {running})."
        )
    [start_data] = vocabulary.start_data(session, plan.loaded.manifest, [est], portfolio, data)
    start_data.update(variables or {})
    workflow = spiff.new_workflow(plan.loaded, start_data)
    new = rows.built(workflow)
    replaced = counts.replaced_by_start(session, {est.id: est.uf}, process_key, code)
    supersede_latest(session, [est.id], process_key, code)
    now = utcnow()
    instance = ProcessInstance(
        **rows.instance_values(
            plan.loaded, new, instance_id=None, org_id=org_id, definition_id=plan.definition.id,
            establishment_id=est.id, portfolio_code=code, actor=actor, now=now,
        )
    )  # fmt: skip
    session.add(instance)
    try:
        session.flush()
    except IntegrityError as exc:  # another start won the race for the same establishment
        raise Conflict(
            "Já existe um processo em andamento para este estabelecimento e portfólio."
        ) from exc
    due = rows.DueDates(now)
    session.add_all(
        Task(**rows.task_values(plan.loaded, task, instance_id=instance.id, org_id=org_id,
                                establishment_id=est.id, due=due))
        for task in new.tasks
    )  # fmt: skip
    session.flush()
    keep_live(session, instance, workflow)  # its first completion here need not restore it
    replaced[counts.key(est.uf, instance.stage, code, instance.status)] += 1
    counts.apply(session, org_id, replaced)
    audit.record(
        session,
        actor,
        "instance.started",
        org_id=org_id,
        entity_type="instance",
        entity_id=instance.id,
        data=started_event(plan, est.cnes, code),
    )
    observability.started(process_key)
    return instance


# ---------------------------------------------------------------- reading


def get_instance(session: Session, actor: Actor, instance_id: int) -> ProcessInstance:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound("Instância não encontrada.")
    actor.require_visible(instance.org_id, instance.establishment_id,
                          "Sem acesso a esta instância.", action="instance.read",
                          entity_type="instance", entity_id=instance_id)  # fmt: skip
    return instance


def instance_tasks(
    session: Session, instance_id: int, *, states: Sequence[str] | None = None
) -> list[Task]:
    stmt = select(Task).where(Task.instance_id == instance_id)
    if states:
        stmt = stmt.where(Task.state.in_(states))
    return list(session.scalars(stmt.order_by(Task.created_at, Task.id)))


def history(session: Session, actor: Actor, instance_id: int) -> list[AuditEvent]:
    instance = get_instance(session, actor, instance_id)
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "instance", AuditEvent.entity_id == str(instance.id))
            .order_by(AuditEvent.seq)
        )
    )
    return audit_queries.shown(session, events)


# ---------------------------------------------------------------- cancel


def cancel(session: Session, actor: Actor, instance_id: int, reason: str) -> ProcessInstance:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound("Instância não encontrada.")
    if not actor.has_role(instance.org_id, "admin"):
        raise actor.deny(
            "Apenas administradores cancelam processos.",
            action="instance.cancel",
            org_id=instance.org_id,
            entity_type="instance",
            entity_id=instance_id,
        )
    if not (reason or "").strip():
        raise Invalid({"reason": "Informe o motivo do cancelamento."})
    instance = lock_instance(session, instance_id)
    if instance.status != RUNNING:
        raise Conflict("Esta instância não está em andamento.")
    workflow, loaded = load_workflow(session, instance)
    counted = (instance.stage, instance.portfolio_code, instance.status)
    workflow.cancel()
    instance.status = CANCELLED
    instance.cancel_reason = reason.strip()
    instance.ended_at = utcnow()
    rows.sync(session, instance, workflow, loaded, actor=actor, counted_as=counted)
    audit.record(
        session,
        actor,
        "instance.cancelled",
        org_id=instance.org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={"reason": instance.cancel_reason},
    )
    return instance
