"""The workflow runtime: start, claim, release, assign, complete and cancel.

Every change is one transaction: the instance row is locked (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serializes writers), the workflow is loaded with its
cached spec, run, saved, the task read model and stage are brought up to date and the audit
events are written — all committed together or not at all. The engine itself checks state,
lane and establishment: SpiffWorkflow's ``task.run()`` would happily run a task that is not
READY.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import forms, sla
from engine import secrets as secret_store
from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.accounts.models import SCOPED_ROLES, Membership, User, membership_establishment
from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.certificates import service as certificates
from engine.dashboard import counts
from engine.db import utcnow
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments import service as establishments
from engine.establishments.models import Establishment
from engine.files import service as file_store
from engine.files.models import StoredFile
from engine.runtime.models import CANCELLED, COMPLETED, READY, RUNNING, ProcessInstance, Task
from engine.workflow import spiff

HEADER_FIELDS = ("numero_solicitacao", "identificador_solicitante")
NEGATIVE_DECISIONS = ("reprovada",)

# Extra start data by process, e.g. whether a valid certificate is already on file.
StartDataProvider = Callable[[Session, Establishment], dict[str, Any]]
_start_data_providers: list[StartDataProvider] = []


def register_start_data(provider: StartDataProvider) -> StartDataProvider:
    _start_data_providers.append(provider)
    return provider


# ---------------------------------------------------------------- locking and loading


def lock_instance(session: Session, instance_id: int) -> ProcessInstance:
    stmt = select(ProcessInstance).where(ProcessInstance.id == instance_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    instance = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    if instance is None:
        raise NotFound("Instância não encontrada.")
    return instance


def _definition(session: Session, definition_id: int) -> ProcessDefinition:
    definition = session.get(ProcessDefinition, definition_id)
    if definition is None:
        raise NotFound("Definição de processo não encontrada.")
    return definition


def loaded_spec(session: Session, instance: ProcessInstance) -> spiff.LoadedSpec:
    cached = spiff._cache.get(instance.definition_id)
    return cached or spiff.cached_spec(_definition(session, instance.definition_id))


def load_workflow(session: Session, instance: ProcessInstance) -> tuple[Any, spiff.LoadedSpec]:
    loaded = loaded_spec(session, instance)
    return spiff.load_state(loaded, instance.state), loaded


# ---------------------------------------------------------------- read model sync


@dataclass
class TaskChange:
    created: list[Task]
    closed: list[Task]


def _due_at(spec_props: dict[str, str], created: Any) -> Any:
    cfg = settings_mod.load()
    try:
        days = int(spec_props.get("slaBusinessDays", cfg.default_sla_business_days))
    except ValueError:
        days = cfg.default_sla_business_days
    return sla.add_business_days(created, days, cfg.timezone)


def _stage_rank(loaded: spiff.LoadedSpec, stage: str) -> int:
    return loaded.stages.index(stage) if stage in loaded.stages else -1


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
) -> TaskChange:
    """Save the workflow and bring the task rows, stage and status in line with it.

    ``counted_as`` is the (stage, portfolio, status) the dashboard counts the instance under,
    when the caller changed it before calling (a cancel); a new instance is counted by its
    start."""
    now = utcnow()
    is_new = not instance.version
    counted = counted_as or (instance.stage, instance.portfolio_code, instance.status)
    ready = {str(t.id): t for t in spiff.ready_human_tasks(workflow)}
    # Without autoflush: a completed task the caller just assigned is then written once,
    # with its assignee and its new state, instead of twice (one UPDATE fewer per completion).
    with session.no_autoflush:
        open_rows = list(
            session.scalars(
                select(Task).where(Task.instance_id == instance.id, Task.state == READY)
            )
        )
    change = TaskChange(created=[], closed=[])
    for row in open_rows:
        if row.id in ready:
            continue
        spiff_task = spiff.find_task(workflow, row.id)
        row.state = COMPLETED if spiff.is_completed_state(spiff_task) else CANCELLED
        row.completed_at = now
        if row.id == completed_task_id:
            row.completed_by_id = actor.user_id
            row.data = completed_data
        change.closed.append(row)
    known = {r.id for r in open_rows}
    for task_id, spiff_task in ready.items():
        if task_id in known:
            continue
        props = spiff.properties(spiff_task.task_spec)
        lane = spiff_task.task_spec.lane
        row = Task(
            id=task_id,
            instance_id=instance.id,
            org_id=instance.org_id,
            establishment_id=instance.establishment_id,
            element_id=spiff_task.task_spec.bpmn_id or spiff_task.task_spec.name,
            name=spiff_task.task_spec.bpmn_name or spiff_task.task_spec.name,
            lane=lane,
            role=loaded.lanes.get(lane) if lane else None,
            state=READY,
            stage=props.get("stage", ""),
            form=props.get("formJsonSchemaFilename"),
            created_at=now,
            due_at=_due_at(props, now),
        )
        session.add(row)
        change.created.append(row)

    stages = [spiff.properties(t.task_spec).get("stage", "") for t in ready.values()]
    stage = max(stages, key=lambda s: _stage_rank(loaded, s)) if stages else instance.stage
    if workflow.is_completed():
        instance.status = COMPLETED if instance.status != CANCELLED else CANCELLED
        instance.ended_at = instance.ended_at or now
        stage = spiff.end_stage(workflow) or stage
    if stage and stage != instance.stage:
        instance.stage = stage
        instance.stage_since = now
    for name in HEADER_FIELDS:
        value = (completed_data or {}).get(name)
        if value:
            setattr(instance, name, str(value))
    if (
        completed_data
        and completed_data.get("decision") in NEGATIVE_DECISIONS
        and completed_data.get("motivo")
    ):
        instance.last_rejection_reason = str(completed_data["motivo"])
    instance.state = spiff.dump_state(workflow)
    instance.next_timer_due_at = spiff.next_timer_due(workflow)
    instance.version = (instance.version or 0) + 1
    if not is_new:
        counts.instance_changed(session, instance, counted)
    session.flush()
    return change


# ---------------------------------------------------------------- start


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


def start_instance(
    session: Session,
    actor: Actor,
    *,
    org_id: int,
    process_key: str,
    establishment_cnes: str,
    portfolio_code: str = "",
    data: dict[str, Any] | None = None,
) -> ProcessInstance:
    definition = definitions.latest(session, process_key)
    loaded = spiff.cached_spec(definition)
    est = session.scalar(
        select(Establishment).where(
            Establishment.org_id == org_id, Establishment.cnes == establishment_cnes
        )
    )
    if est is None:
        raise Invalid(
            {"establishment": f"CNES {establishment_cnes} não cadastrado nesta organização."}
        )
    start_roles = loaded.manifest.get("start_roles", ["admin"])
    if not any(actor.has_role(org_id, role, est.id) for role in start_roles):
        raise actor.deny(
            "Você não pode iniciar este processo para este estabelecimento.",
            action="instance.start",
            org_id=org_id,
            entity_type="establishment",
            entity_id=est.id,
            process=process_key,
        )
    portfolio = (
        establishments.get_portfolio(session, portfolio_code)
        if loaded.manifest.get("per_portfolio", True)
        else None
    )
    running = session.scalar(
        select(ProcessInstance.id).where(
            ProcessInstance.establishment_id == est.id,
            ProcessInstance.process_key == process_key,
            ProcessInstance.portfolio_code == (portfolio.code if portfolio else ""),
            ProcessInstance.status == RUNNING,
        )
    )
    if running:
        raise Conflict(
            f"Já existe um processo em andamento para o CNES {est.cnes} neste portfólio (instância {running})."
        )
    current_cert = certificates.current(session, est.id)
    start_data: dict[str, Any] = {
        "possui_certificado_valido": certificates.is_valid(current_cert),
        "certificado_atual": (
            {
                "sha256": current_cert.sha256,
                "not_after": current_cert.not_after.isoformat(),
                "cnpj": current_cert.cnpj,
            }
            if current_cert
            else None
        ),
        "possui_conta_govbr": bool((data or {}).get("possui_conta_govbr", False)),
        "estabelecimento": est.register_data(),
    }
    if portfolio is not None:
        start_data["portfolio"] = portfolio.as_data()
    for provider in _start_data_providers:
        start_data.update(provider(session, est))
    workflow = spiff.new_workflow(loaded, start_data)
    code = portfolio.code if portfolio else ""
    replaced = counts.replaced_by_start(session, {est.id: est.uf}, process_key, code)
    supersede_latest(session, [est.id], process_key, code)
    instance = ProcessInstance(
        org_id=org_id,
        definition_id=definition.id,
        process_key=process_key,
        establishment_id=est.id,
        portfolio_code=code,
        status=RUNNING,
        state="",
        version=0,
        started_by_id=actor.user_id,
        is_latest=True,
    )
    session.add(instance)
    try:
        session.flush()
    except IntegrityError as exc:  # another start won the race for the same establishment
        raise Conflict(
            "Já existe um processo em andamento para este estabelecimento e portfólio."
        ) from exc
    sync(session, instance, workflow, loaded, actor=actor)
    replaced[counts.key(est.uf, instance.stage, code, instance.status)] += 1
    counts.apply(session, org_id, replaced)
    audit.record(
        session,
        actor,
        "instance.started",
        org_id=org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={
            "process": process_key,
            "version": definition.version,
            "establishment": est.cnes,
            "portfolio": instance.portfolio_code,
        },
    )
    return instance


# ---------------------------------------------------------------- reading


def get_instance(session: Session, actor: Actor, instance_id: int) -> ProcessInstance:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound("Instância não encontrada.")
    if not actor.can_see_establishment(instance.org_id, instance.establishment_id):
        raise actor.deny(
            "Sem acesso a esta instância.",
            action="instance.read",
            org_id=instance.org_id,
            entity_type="instance",
            entity_id=instance_id,
        )
    return instance


def instance_tasks(
    session: Session, instance_id: int, *, states: Sequence[str] | None = None
) -> list[Task]:
    stmt = select(Task).where(Task.instance_id == instance_id)
    if states:
        stmt = stmt.where(Task.state.in_(states))
    return list(session.scalars(stmt.order_by(Task.created_at, Task.id)))


def visible_tasks_query(actor: Actor, org_ids: Iterable[int] | None = None):  # type: ignore[no-untyped-def]
    """Tasks the actor may see: org-wide roles see their organizations' tasks, scoped roles
    their establishments'."""
    orgs = list(org_ids) if org_ids is not None else actor.org_ids
    clauses = []
    for org_id in orgs:
        ids = actor.visible_establishments(org_id)
        if ids is None:
            clauses.append(Task.org_id == org_id)
        elif ids:
            clauses.append((Task.org_id == org_id) & Task.establishment_id.in_(ids))
    stmt = select(Task)
    if actor.is_system:
        return stmt
    if not clauses:
        return stmt.where(False)
    return stmt.where(or_(*clauses))


def get_task(session: Session, actor: Actor, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound("Tarefa não encontrada.")
    if not actor.can_see_establishment(task.org_id, task.establishment_id):
        raise actor.deny(
            "Sem acesso a esta tarefa.",
            action="task.read",
            org_id=task.org_id,
            entity_type="task",
            entity_id=task_id,
        )
    return task


@dataclass
class TaskForm:
    schema: dict[str, Any]
    ui: dict[str, Any]
    data: dict[str, Any]
    context: dict[str, Any]


def task_form(session: Session, actor: Actor, task: Task) -> TaskForm:
    instance = session.get(ProcessInstance, task.instance_id)
    loaded = loaded_spec(session, instance)
    schema, ui = _form_files(loaded, task)
    data: dict[str, Any] = {}
    context: dict[str, Any] = {}
    if task.state == READY:
        workflow = spiff.load_state(loaded, instance.state)
        spiff_task = spiff.find_task(workflow, task.id)
        if spiff_task is not None:
            data = forms.prefill(schema, spiff_task.data) if schema else {}
            context = {
                k: spiff_task.data.get(k)
                for k in ("estabelecimento", "portfolio", "operacoes_aprovadas")
                if k in spiff_task.data
            }
            if schema and "estabelecimento" in spiff_task.data:
                data = _prefill_register(schema, spiff_task.data["estabelecimento"], data)
    elif task.data:
        data = task.data
    if schema and task.state == READY:
        data.update(_secrets_for(session, actor, task, instance, schema))
    context["ultimo_motivo"] = instance.last_rejection_reason
    return TaskForm(schema=schema, ui=ui, data=data, context=context)


def _secrets_for(
    session: Session, actor: Actor, task: Task, instance: ProcessInstance, schema: dict[str, Any]
) -> dict[str, str]:
    """Secret values the form shows: in clear to the task's lane, masked to everyone else."""
    shown = {}
    may_read = task.role is not None and actor.has_role(
        task.org_id, task.role, task.establishment_id
    )
    for name in forms.secret_fields(schema):
        if "*" in name:
            continue
        value = secret_store.get(session, instance.id, name)
        if value is not None:
            shown[name] = value if may_read else secret_store.mask(value)
    return shown


def _prefill_register(
    schema: dict[str, Any], register: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """Fill the form's fields that declare a register field (``x-register``) from it."""
    filled = dict(data)
    for name, key in forms.form_view(schema).register_fields.items():
        value = register.get(key)
        if not filled.get(name) and value:
            filled[name] = value
    return filled


def _form_files(loaded: spiff.LoadedSpec, task: Task) -> tuple[dict[str, Any], dict[str, Any]]:
    if not task.form:
        return {}, {}
    schema = loaded.files.get(task.form) or {}
    ui_name = task.form.replace(".schema.json", ".ui.json")
    return schema, loaded.files.get(ui_name) or {}


# ---------------------------------------------------------------- claim, release, assign


def _open_task_locked(
    session: Session, actor: Actor, task_id: str, action: str
) -> tuple[Task, ProcessInstance]:
    """Lock the task's instance first, then read the task: what we read cannot change under us
    (two statements, not three)."""
    stmt = select(ProcessInstance).where(
        ProcessInstance.id == select(Task.instance_id).where(Task.id == task_id).scalar_subquery()
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=ProcessInstance)
    instance = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    task = session.execute(
        select(Task).where(Task.id == task_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if task is None or instance is None:
        raise NotFound("Tarefa não encontrada.")
    if not actor.can_see_establishment(task.org_id, task.establishment_id):
        raise actor.deny(
            "Sem acesso a esta tarefa.",
            action=action,
            org_id=task.org_id,
            entity_type="task",
            entity_id=task_id,
        )
    return task, instance


def _require_lane(actor: Actor, task: Task, action: str) -> None:
    if task.role is None or not actor.has_role(task.org_id, task.role, task.establishment_id):
        raise actor.deny(
            f"Esta tarefa é da raia {task.lane or '(sem raia)'}; você não tem esse papel para este estabelecimento.",
            action=action,
            org_id=task.org_id,
            entity_type="task",
            entity_id=task.id,
            lane=task.lane,
        )


def _require_ready(task: Task) -> None:
    if task.state == COMPLETED:
        raise Conflict("Esta tarefa já foi concluída.")
    if task.state == CANCELLED:
        raise Conflict("Esta tarefa foi cancelada e não aceita mais envios.")


def claim(session: Session, actor: Actor, task_id: str) -> Task:
    task, instance = _open_task_locked(session, actor, task_id, "task.claim")
    _require_lane(actor, task, "task.claim")
    _require_ready(task)
    if task.assignee_id not in (None, actor.user_id):
        raise Conflict("Esta tarefa já foi assumida por outra pessoa.")
    if task.assignee_id == actor.user_id:
        return task
    task.assignee_id, task.claimed_at = actor.user_id, utcnow()
    audit.record(
        session,
        actor,
        "task.claimed",
        org_id=task.org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={"task": task.id, "name": task.name},
    )
    return task


def release(session: Session, actor: Actor, task_id: str) -> Task:
    task, instance = _open_task_locked(session, actor, task_id, "task.release")
    _require_ready(task)
    is_admin = actor.has_role(task.org_id, "admin")
    if task.assignee_id is None:
        return task
    if task.assignee_id != actor.user_id and not is_admin:
        raise actor.deny(
            "Só quem assumiu a tarefa (ou um administrador) pode liberá-la.",
            action="task.release",
            org_id=task.org_id,
            entity_type="task",
            entity_id=task.id,
        )
    previous = task.assignee_id
    task.assignee_id, task.claimed_at = None, None
    audit.record(
        session,
        actor,
        "task.released",
        org_id=task.org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={"task": task.id, "name": task.name, "previous_assignee": previous},
    )
    return task


def assign(session: Session, actor: Actor, task_id: str, user_email: str) -> Task:
    task, instance = _open_task_locked(session, actor, task_id, "task.assign")
    if not actor.has_role(task.org_id, "admin"):
        raise actor.deny(
            "Apenas administradores atribuem tarefas a outras pessoas.",
            action="task.assign",
            org_id=task.org_id,
            entity_type="task",
            entity_id=task.id,
        )
    _require_ready(task)
    user = session.scalar(select(User).where(User.email == (user_email or "").strip().lower()))
    if user is None or not _user_has_lane(session, user.id, task):
        raise Invalid(
            {"assignee": "Esta pessoa não tem o papel desta raia para este estabelecimento."}
        )
    task.assignee_id, task.claimed_at = user.id, utcnow()
    audit.record(
        session,
        actor,
        "task.assigned",
        org_id=task.org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={"task": task.id, "name": task.name, "assignee": user.email},
    )
    return task


def _user_has_lane(session: Session, user_id: int, task: Task) -> bool:
    if task.role is None:
        return False
    stmt = (
        select(Membership.id)
        .outerjoin(
            membership_establishment, membership_establishment.c.membership_id == Membership.id
        )
        .where(
            Membership.user_id == user_id,
            Membership.org_id == task.org_id,
            Membership.role == task.role,
        )
    )
    if task.role in SCOPED_ROLES:
        stmt = stmt.where(membership_establishment.c.establishment_id == task.establishment_id)
    return session.scalar(stmt.limit(1)) is not None


# ---------------------------------------------------------------- complete


def _form_context(
    session: Session, instance: ProcessInstance, schema: dict[str, Any], data: dict[str, Any]
) -> forms.FormContext:
    # Only the same_uf rule needs the establishment's UF: no query for the other forms.
    est = (
        session.get(Establishment, instance.establishment_id)
        if instance.establishment_id and forms.uses_rule(schema, "same_uf")
        else None
    )

    def lookup_file(file_id: str) -> forms.FileInfo | None:
        row = session.scalar(
            select(StoredFile).where(
                StoredFile.id == str(file_id), StoredFile.org_id == instance.org_id
            )
        )
        return (
            forms.FileInfo(id=row.id, content_type=row.content_type, kind=row.kind) if row else None
        )

    def lookup_files(file_ids: list[str]) -> dict[str, forms.FileInfo]:
        return {
            row.id: forms.FileInfo(id=row.id, content_type=row.content_type, kind=row.kind)
            for row in file_store.get_meta_many(session, instance.org_id, file_ids)
        }

    def lookup_uf(cnes: str) -> str | None:
        return session.scalar(
            select(Establishment.uf).where(
                Establishment.org_id == instance.org_id, Establishment.cnes == cnes
            )
        )

    def lookup_ufs(cnes: list[str]) -> dict[str, str]:
        # All the items of an array in one statement (the instance row is locked meanwhile);
        # only a form deployed before arrays were bounded can need a second one.
        found: dict[str, str] = {}
        for start in range(0, len(cnes), 1000):
            rows = session.execute(
                select(Establishment.cnes, Establishment.uf).where(
                    Establishment.org_id == instance.org_id,
                    Establishment.cnes.in_(cnes[start : start + 1000]),
                )
            )
            found.update((row.cnes, row.uf) for row in rows)
        return found

    return forms.FormContext(
        lookup_file=lookup_file,
        lookup_files=lookup_files,
        establishment_uf=est.uf if est else None,
        lookup_establishment_uf=lookup_uf,
        lookup_establishment_ufs=lookup_ufs,
        data=data,
    )


def complete(
    session: Session,
    actor: Actor,
    task_id: str,
    submitted: dict[str, Any],
    *,
    settings: settings_mod.Settings | None = None,
) -> Task:
    task, instance = _open_task_locked(session, actor, task_id, "task.complete")
    _require_lane(actor, task, "task.complete")
    _require_ready(task)
    if task.assignee_id not in (None, actor.user_id):
        raise Conflict("Esta tarefa está atribuída a outra pessoa; peça que ela a libere.")
    workflow, loaded = load_workflow(session, instance)
    spiff_task = spiff.find_task(workflow, task.id)
    if not spiff.is_ready_human(spiff_task):
        raise Conflict("Esta tarefa não está mais pronta para ser concluída.")
    schema, _ui = _form_files(loaded, task)
    if not isinstance(submitted, dict):
        raise Invalid({"data": "Envie os campos do formulário como um objeto."})
    submitted = _server_owned(schema, submitted, spiff_task.data) if schema else submitted
    try:
        cleaned = (
            forms.validate_form(
                schema, submitted, _form_context(session, instance, schema, spiff_task.data)
            )
            if schema
            else {}
        )
    except forms.FormInvalid as exc:
        raise Invalid(exc.errors) from None
    secret = forms.secret_fields(schema) if schema else set()
    public = {k: v for k, v in cleaned.items() if k not in secret}
    _register_certificates(
        session, actor, instance, schema, cleaned, settings or settings_mod.load()
    )
    _keep_secrets(session, instance, schema, cleaned, secret)
    # Secrets reach neither the workflow state nor the audit log; only that they were given.
    spiff_task.set_data(**public)
    spiff_task.run()
    workflow.do_engine_steps()
    if task.assignee_id is None:
        task.assignee_id, task.claimed_at = actor.user_id, utcnow()
    change = sync(
        session,
        instance,
        workflow,
        loaded,
        actor=actor,
        completed_task_id=task.id,
        completed_data=public,
    )
    attached = forms.form_view(schema).file_values(public) if schema else []
    if attached:  # the form's files now belong to this instance: one statement for all
        session.execute(
            update(StoredFile)
            .where(StoredFile.id.in_(attached), StoredFile.org_id == instance.org_id)
            .values(establishment_id=instance.establishment_id, instance_id=instance.id)
        )
    audit.record(
        session,
        actor,
        "task.completed",
        org_id=task.org_id,
        entity_type="instance",
        entity_id=instance.id,
        data={
            "task": task.id,
            "name": task.name,
            "lane": task.lane,
            "data": public,
            "secrets_given": sorted(k for k in secret if cleaned.get(k)),
            "next": [t.name for t in change.created],
            "stage": instance.stage,
            "status": instance.status,
        },
    )
    return task


def _server_owned(
    schema: dict[str, Any], submitted: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """Read-only fields keep the process's values whatever the client sends (secrets among
    them stay where they are kept)."""
    result = dict(submitted)
    for spec in forms.form_view(schema).fields:
        if not spec.readonly:
            continue
        result.pop(spec.name, None)
        if not spec.secret and data.get(spec.name) is not None:
            result[spec.name] = data[spec.name]
    return result


def _register_certificates(
    session: Session,
    actor: Actor,
    instance: ProcessInstance,
    schema: dict[str, Any],
    cleaned: dict[str, Any],
    settings: settings_mod.Settings,
) -> None:
    """A certificate given in a task becomes the establishment's current certificate, after
    the checks a bank would make; a refusal is a field error and nothing changes."""
    if instance.establishment_id is None:
        return
    for spec in forms.form_view(schema).certificate_fields if schema else ():
        name = spec.name
        if not cleaned.get(name):
            continue
        try:
            cert = certificates.register_stored(
                session,
                actor,
                instance.establishment_id,
                str(cleaned[name]),
                cnpj_exception_reason=cleaned.get("cnpj_divergente_justificativa"),
                settings=settings,
                authorized=True,  # the lane check above already allowed this actor here
                must_outlast_current=spec.renewal,
            )
        except Invalid as exc:
            raise Invalid({name: next(iter(exc.errors.values()), exc.message)}) from None
        cleaned[f"{name}_sha256"] = cert.sha256


def _keep_secrets(
    session: Session,
    instance: ProcessInstance,
    schema: dict[str, Any],
    cleaned: dict[str, Any],
    secret: set[str],
) -> None:
    """Secret fields are kept encrypted, apart from the workflow; passwords (``writeOnly``)
    are not kept at all."""
    view = forms.form_view(schema)
    for name in sorted(secret):
        value = cleaned.get(name)
        spec = view.field(name)
        if value in (None, "") or (spec is not None and spec.write_only):
            continue
        secret_store.put(
            session,
            org_id=instance.org_id,
            instance_id=instance.id,
            field_path=name,
            value=str(value),
        )


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
    sync(session, instance, workflow, loaded, actor=actor, counted_as=counted)
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


def history(session: Session, actor: Actor, instance_id: int) -> list[AuditEvent]:
    instance = get_instance(session, actor, instance_id)
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "instance", AuditEvent.entity_id == str(instance.id))
            .order_by(AuditEvent.seq)
        )
    )
