"""Moving running instances to another version of their process (as Camunda does it).

An instance may move when every element it is active in (ready or waiting tasks) exists in
the target version, in the same lane, and no element it already went through was removed
(its history would no longer load). SpiffWorkflow's own diff aligns the task specs by BPMN id
(engine/workflow/diff.py); active tasks keep their ids, so the task read model, claims and
due dates stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.db import Database
from engine.definitions.models import ProcessDefinition
from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.runtime.models import READY, RUNNING, ProcessInstance, Task
from engine.runtime.state import load_workflow, lock_instance
from engine.runtime.sync import sync
from engine.workflow import diff as workflow_diff
from engine.workflow import spiff


@dataclass
class Plan:
    instance_id: int
    from_version: int
    to_version: int
    reasons: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def possible(self) -> bool:
        return not self.reasons


def _target(session: Session, key: str, version: int) -> ProcessDefinition:
    definition = session.scalar(
        select(ProcessDefinition).where(
            ProcessDefinition.key == key, ProcessDefinition.version == version
        )
    )
    if definition is None:
        raise Invalid({"version": f"O processo {key} não tem a versão {version}."})
    return definition


def _plan(session: Session, instance: ProcessInstance, target: ProcessDefinition):
    workflow, _loaded = load_workflow(session, instance)
    new = spiff.cached_spec(target)
    current = session.get(ProcessDefinition, instance.definition_id)
    plan = Plan(instance.id, current.version if current else 0, target.version)
    if instance.status != RUNNING:
        plan.reasons.append("a instância não está em andamento")
        return plan, workflow, new, None
    if target.id == instance.definition_id:
        plan.reasons.append("a instância já está nesta versão")
    diff, sub_diffs = workflow_diff.compare(workflow, new)
    if any(d is None for d in sub_diffs.values()):
        plan.reasons.append("um subprocesso em andamento não existe na nova versão")
    for task in workflow_diff.top_tasks(workflow):
        name = task.task_spec.bpmn_name or task.task_spec.name
        is_active = workflow_diff.is_active(task)
        new_spec = diff.alignment.get(task)
        if is_active:
            plan.active.append(name)
        if is_active and new_spec is not None and new_spec.name != task.task_spec.name:
            # SpiffWorkflow aligns a renamed element by its neighbours; an active one must keep
            # its BPMN id, as Camunda's default mapping requires.
            plan.reasons.append(
                f"o elemento ativo '{name}' ({task.task_spec.name}) não existe na versão {target.version}"
                f" (o mais parecido é {new_spec.name})"
            )
            continue
        if new_spec is None:
            if is_active:
                plan.reasons.append(
                    f"o elemento ativo '{name}' ({task.task_spec.name}) não existe na versão {target.version}"
                )
            elif workflow_diff.is_done(task):
                plan.reasons.append(
                    f"o elemento já percorrido '{name}' ({task.task_spec.name}) foi removido na versão {target.version}"
                )
            continue
        if is_active and getattr(new_spec, "lane", None) != getattr(task.task_spec, "lane", None):
            plan.reasons.append(
                f"o elemento ativo '{name}' mudou de raia ({task.task_spec.lane} → {new_spec.lane})"
            )
        if task in diff.changed:
            plan.changed.append(name)
    plan.reasons = list(dict.fromkeys(plan.reasons))
    plan.active = list(dict.fromkeys(plan.active))
    plan.changed = list(dict.fromkeys(plan.changed))
    return plan, workflow, new, diff


def _check_admin(actor: Actor, instance: ProcessInstance) -> None:
    if not actor.has_role(instance.org_id, "admin"):
        raise actor.deny(
            "Apenas administradores migram instâncias.",
            action="instance.migrate",
            org_id=instance.org_id,
            entity_type="instance",
            entity_id=instance.id,
        )


def plan(session: Session, actor: Actor, instance_id: int, version: int) -> Plan:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound("Instância não encontrada.")
    _check_admin(actor, instance)
    result, *_ = _plan(session, instance, _target(session, instance.process_key, version))
    return result


def migrate(session: Session, actor: Actor, instance_id: int, version: int) -> Plan:
    """Move one instance to ``version`` in the caller's transaction, or raise Conflict with
    the reasons."""
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound("Instância não encontrada.")
    _check_admin(actor, instance)
    instance = lock_instance(session, instance_id)
    target = _target(session, instance.process_key, version)
    result, workflow, new, diff = _plan(session, instance, target)
    if not result.possible:
        raise Conflict(
            f"Migração da instância {instance.id} recusada: " + "; ".join(result.reasons) + "."
        )
    workflow_diff.move(diff, workflow, new)
    instance.definition_id = target.id
    rows = session.scalars(
        select(Task).where(Task.instance_id == instance.id, Task.state == READY)
    ).all()
    for row in rows:  # names, stages and forms follow the new version
        task = spiff.find_task(workflow, row.id)
        if task is not None:
            props = spiff.properties(task.task_spec)
            row.name = task.task_spec.bpmn_name or task.task_spec.name
            row.stage = props.get("stage", row.stage)
            row.form = props.get("formJsonSchemaFilename", row.form)
    sync(session, instance, workflow, new, actor=actor)
    audit.record(
        session,
        actor,
        "instance.migrated",
        org_id=instance.org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={
            "from_version": result.from_version,
            "to_version": result.to_version,
            "active": result.active,
        },
    )
    return result


def migrate_many(
    db: Database, actor: Actor, process_key: str, to_version: int, *, from_version: int | None = None,
    instance_ids: list[int] | None = None, org_id: int | None = None,
) -> list[tuple[int, bool, str]]:  # fmt: skip
    """Bulk migration, each instance in its own transaction: (id, migrated, reason)."""
    with db.read() as session:
        stmt = select(ProcessInstance.id).where(
            ProcessInstance.process_key == process_key, ProcessInstance.status == RUNNING
        )
        if from_version is not None:
            stmt = stmt.join(
                ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id
            ).where(ProcessDefinition.version == from_version)
        if instance_ids:
            stmt = stmt.where(ProcessInstance.id.in_(instance_ids))
        if org_id is not None:
            stmt = stmt.where(ProcessInstance.org_id == org_id)
        ids = list(session.scalars(stmt.order_by(ProcessInstance.id)))
    results = []
    for instance_id in ids:
        try:
            with db.write() as session:
                migrate(session, actor, instance_id, to_version)
            results.append((instance_id, True, ""))
        except (Conflict, Invalid, NotFound, Forbidden) as exc:
            results.append((instance_id, False, exc.message))
    return results
