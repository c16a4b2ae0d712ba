"""Credentials: starting a process on one, and what completed tasks change in it.

A process declares in its ``process.json`` how it works with a credential (the ``credential``
block, engine/credentialing/block.py); this module applies that declaration and knows the
record's rules, never a process's vocabulary:

- ``start``: a credenciamento (kind ``request``) is refused while the establishment holds a
  live credential for the portfolio; a process on a credential (change, withdrawal, transfer,
  renewal) must name one the actor sees, in one of its ``requires_status``, and receives the
  credential's values as start variables.
- ``apply`` (a completion effect): the updates of the completed task, checked first — an
  identificador used by another credential, a child in another UF or organization, a
  certificate of another CNPJ, a transfer to someone who is not a member are refused at the
  field, and nothing is written.
- ``after_completion`` / ``cancel``: a credenciamento that ended before the RNDS granted
  anything leaves its request closed ("encerrada"), so the next run starts fresh; tasks the
  block assigns go to the person named in the form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.credentialing import block as blocks
from engine.credentials import rules
from engine.credentials.models import (
    EM_SOLICITACAO,
    LIVE,
    STATUS_LABELS,
    Credential,
)
from engine.db import columns_of, hold, load, send, utcnow
from engine.definitions.models import ProcessDefinition
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments.models import Establishment
from engine.runtime import instances as runtime_instances
from engine.runtime.models import RUNNING, ProcessInstance, Task
from engine.runtime.tasks import Submission

# ---------------------------------------------------------------- reading one


def get(
    session: Session, actor: Actor, credential_id: int, *, action: str = "credential.read"
) -> Credential:
    """The credential, if the actor sees its establishment; a denial is audited."""
    credential = session.get(Credential, credential_id)
    if credential is None:
        raise NotFound("Credencial não encontrada.")
    actor.require_visible(credential.org_id, credential.establishment_id,
                          "Sem acesso a esta credencial.", action=action, entity_type="credential",
                          entity_id=credential_id)  # fmt: skip
    return credential


# ---------------------------------------------------------------- start


def start(
    session: Session,
    actor: Actor,
    *,
    org_id: int,
    process_key: str,
    establishment_cnes: str = "",
    portfolio_code: str = "",
    data: dict[str, Any] | None = None,
    credential_id: int | None = None,
    without_credential: bool = False,
) -> ProcessInstance:
    """Start a process, applying its credential rules; what the pages, the API and the CLI
    call. A process without a ``credential`` block starts as the runtime starts it.
    ``without_credential``: the scheduler's renewal for an establishment that holds none."""
    plan = runtime_instances.start_plan(session, process_key)
    manifest = plan.loaded.manifest
    block = blocks.block_of(manifest)
    given = dict(data or {})
    if block is None or blocks.creates(manifest):
        if credential_id is not None:
            raise Invalid({"credential": "Este processo não trabalha sobre uma credencial."})
        if block is not None:
            _refuse_live(session, org_id, establishment_cnes, portfolio_code, manifest)
    elif credential_id is None and not (without_credential and actor.is_system):
        raise Invalid({"credential": "Escolha a credencial sobre a qual o processo trabalha."})
    if credential_id is None:
        return runtime_instances.start_instance(
            session,
            actor,
            org_id=org_id,
            process_key=process_key,
            establishment_cnes=establishment_cnes,
            portfolio_code=portfolio_code,
            data=given,
        )
    credential = get(session, actor, credential_id, action="instance.start")
    est = session.get(Establishment, credential.establishment_id)
    if credential.org_id != org_id or est is None:
        raise Invalid({"credential": "Esta credencial não é desta organização."})
    if establishment_cnes and establishment_cnes != est.cnes:
        raise Invalid({"establishment": f"A credencial é do CNES {est.cnes}."})
    if portfolio_code and portfolio_code != credential.portfolio_code:
        raise Invalid({"portfolio": f"A credencial é do portfólio {credential.portfolio_code}."})
    required = block.get("requires_status", [])
    if required and credential.status not in required:
        allowed = ", ".join(STATUS_LABELS.get(s, s) for s in required)
        raise Invalid(
            {
                "credential": f"A credencial está em “{credential.status_label}”; "
                f"este processo exige: {allowed}."
            }
        )
    _refuse_busy(session, credential, block)
    values = rules.values(session, credential)
    variables = {name: values[field] for name, field in block.get("start", {}).items()}
    roles = set(actor.roles_in(org_id))
    if actor.is_system:
        roles |= {
            r
            for options in block.get("start_choices", {}).values()
            for allowed in options.values()
            for r in allowed
        }
    for name in block.get("start_choices", {}):
        chosen = blocks.choice(block, name, given.pop(name, None), roles)
        if chosen is None:
            raise Invalid({name: "Você não pode iniciar o processo com esta opção."})
        variables[name] = chosen
    instance = runtime_instances.start_instance(
        session,
        actor,
        org_id=org_id,
        process_key=process_key,
        establishment_cnes=est.cnes,
        portfolio_code=credential.portfolio_code,
        data=given,
        variables=variables,
    )
    instance.credential_id = credential.id
    rules.record(
        session,
        actor,
        "credential.process_started",
        credential,
        {"instance": instance.id, "process": process_key, "kind": block.get("kind")},
    )
    return instance


# Kinds that change who holds the credential or what it is: one at a time on a credential.
EXCLUSIVE = ("change", "withdrawal", "transfer")


def _refuse_busy(session: Session, credential: Credential, block: Mapping[str, Any]) -> None:
    if block.get("kind") not in EXCLUSIVE:
        return
    for iid, manifest in session.execute(
        select(ProcessInstance.id, ProcessDefinition.manifest)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .where(ProcessInstance.credential_id == credential.id, ProcessInstance.status == RUNNING)
    ):
        kind = blocks.kind_of(manifest)
        if kind in EXCLUSIVE:
            raise Conflict(
                f"Já há um processo de {blocks.KIND_LABELS[kind]} em andamento sobre esta "
                f"credencial (instância {iid}); conclua-o ou cancele-o antes."
            )


def _refuse_live(
    session: Session, org_id: int, cnes: str, portfolio_code: str, manifest: Mapping[str, Any]
) -> None:
    """A credenciamento for an establishment and portfolio that holds a live credential is
    refused; a request left open by a run that ended is closed, so this one starts fresh."""
    est = session.scalar(
        select(Establishment).where(Establishment.org_id == org_id, Establishment.cnes == cnes)
    )
    if est is None:
        return  # the runtime refuses it at the field
    portfolio = portfolio_code if manifest.get("per_portfolio", True) else ""
    current = rules.open_credential(session, org_id, est.id, portfolio)
    if current is None:
        return
    if current.status in LIVE:
        raise Conflict(
            f"O CNES {cnes} já tem credencial em “{current.status_label}” "
            f"({rules.describe(current, cnes)}). Para mudar IP, sistema, operações ou filhos, "
            "inicie uma Alteração de credencial; para deixá-la, um Encerramento."
        )
    running = session.scalar(
        select(ProcessInstance.id).where(
            ProcessInstance.credential_id == current.id, ProcessInstance.status == RUNNING
        )
    )
    if running is None:
        rules.close_request(session, None, current)


# ---------------------------------------------------------------- completing a task


def _task_data(sub: Submission) -> dict[str, Any]:
    """The task's data after completion: everything before it, then its form."""
    return {**sub.spiff_task.data, **sub.public}


def apply(session: Session, actor: Actor, sub: Submission) -> None:
    """A completion effect: the credential changes the completed task declares, checked
    first; a refusal is an ``Invalid`` at the form field the value came from."""
    manifest = sub.loaded.manifest
    block = blocks.block_of(manifest)
    if block is None:
        return
    data = _task_data(sub)
    instance = sub.instance
    _check_assignees(session, block, sub, data)
    changes = blocks.changes(block, sub.task.element_id, data)
    if not changes:
        return
    fields = {c.field for c in changes}
    credential = _credential_for(session, instance, manifest)
    if credential is None:
        if not blocks.creates(manifest) or instance.establishment_id is None:
            return  # a process started by hand, without a credential: nothing to change
        credential = rules.create(session, actor, instance)
        created = True
    else:
        created = False
    # Only the changed fields are compared: the organization's slug and the children are
    # read only when they change (and the children again after).
    slug = rules.org_slug(session, credential.org_id) if "organization" in fields else ""
    changes_children = "children" in fields and not created
    children = rules.children_of(session, credential.id) if changes_children else []
    before = rules.values(session, credential, slug=slug, children=children)
    rules.check(session, credential, changes, renewal=blocks.kind_of(manifest) == "renewal")
    written = rules.write(session, actor, credential, changes, instance)
    instance.credential_id = credential.id
    if "children" in written:
        children = rules.children_of(session, credential.id)
    after = rules.values(session, credential, slug=slug, children=children)
    diff = {
        k: {"de": before.get(k), "para": after.get(k)}
        for k in written
        if before.get(k) != after.get(k)
    }
    event = {"instance": instance.id, "task": sub.task.element_id, "changes": diff}
    if created:  # one event: what the request brought into being
        est = session.get(Establishment, credential.establishment_id)
        event |= {"establishment": est.cnes if est else "", "portfolio": credential.portfolio_code}
        rules.record(session, actor, "credential.created", credential, event)
    elif diff:
        rules.record(session, actor, "credential.updated", credential, event)


def _credential_for(
    session: Session, instance: ProcessInstance, manifest: Mapping[str, Any]
) -> Credential | None:
    """The instance's credential, locked to the commit (PostgreSQL; SQLite's writers are
    serialized, and its completions read the credential with their task), and held for the
    rest of the transaction: the later steps of a completion that ask for it by key
    (``settle``) find it without reading it again."""
    if instance.credential_id is None:
        return None
    if session.get_bind().dialect.name == "postgresql":
        params = {"credential_id": instance.credential_id}
        rows = send(session.connection(), _CREDENTIAL_LOCKED, params).rows
        found = load(session, _CREDENTIAL_COLUMNS, rows[0]) if rows else None
    else:
        found = session.get(Credential, instance.credential_id)
    return hold(session, found) if found is not None else None


# Built once (every step of a credentialing instance reads its credential, locked): its
# columns on the driver (``send``), the row made the session's object as the ORM would.
_CREDENTIAL_COLUMNS = columns_of(Credential)
_CREDENTIAL_LOCKED = (
    select(*_CREDENTIAL_COLUMNS.columns)
    .where(Credential.__table__.c.id == bindparam("credential_id"))
    .with_for_update()
)


# ---------------------------------------------------------------- who does the next task


def _check_assignees(
    session: Session, block: Mapping[str, Any], sub: Submission, data: Mapping[str, Any]
) -> None:
    """A form that names who does a later task (``assign``) must name a member: of the
    destination organization when the form names one, else of this one."""
    errors: dict[str, str] = {}
    for field in set(block.get("assign", {}).values()):
        email = sub.public.get(field)
        if not email:
            continue
        slug = data.get("organizacao_destino")
        org_id = sub.instance.org_id
        if slug and data.get("destino") == "outra_organizacao":
            target = rules.org_by_slug(session, str(slug))
            if target is None:
                errors["organizacao_destino"] = "Organização de destino não encontrada."
                continue
            org_id = target.id
        if rules.member(session, org_id, str(email)) is None:
            errors[field] = "Esta pessoa não é membro da organização; convide-a antes."
    if errors:
        raise Invalid(errors)


def after_completion(
    session: Session, actor: Actor, sub: Submission, created: Sequence[Task]
) -> None:
    """After the workflow moved: assign the tasks the block assigns, and close a request the
    run left open."""
    block = blocks.block_of(sub.loaded.manifest)
    if block is None:
        return
    assign = block.get("assign", {})
    data = sub.workflow.data if hasattr(sub.workflow, "data") else {}
    merged = {**data, **_task_data(sub)}
    for task in created:
        field = assign.get(task.element_id)
        email = merged.get(field) if field else None
        if not email:
            continue
        user = rules.member(session, task.org_id, str(email))
        if user is not None and task.assignee_id is None:
            task.assignee_id, task.claimed_at = user.id, utcnow()
    settle(session, actor, sub.instance)


def settle(session: Session, actor: Actor | None, instance: ProcessInstance) -> None:
    """A credenciamento that ended before the RNDS granted anything closes its request."""
    if instance.status == RUNNING or instance.credential_id is None:
        return
    credential = session.get(Credential, instance.credential_id)
    if credential is not None and credential.status == EM_SOLICITACAO:
        rules.close_request(session, actor, credential)


def cancel(session: Session, actor: Actor, instance_id: int, reason: str) -> ProcessInstance:
    instance = runtime_instances.cancel(session, actor, instance_id, reason)
    settle(session, actor, instance)
    return instance


# ---------------------------------------------------------------- bringing existing ones


IMPORTABLE = LIVE  # what an organization can bring: credentials the RNDS already granted


def register(
    session: Session,
    actor: Actor,
    *,
    org_id: int,
    establishment_cnes: str,
    portfolio_code: str,
    status: str,
    requester_id: str,
    homologation_on: date | None = None,
    production_on: date | None = None,
    request_numbers: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
) -> Credential:
    """Record a credential the organization already holds (granted outside Credencia):
    admin only; refused at the field like a process's update would be."""
    if not actor.has_role(org_id, "admin"):
        raise actor.deny(
            "Apenas administradores registram credenciais existentes.",
            action="credential.register",
            org_id=org_id,
        )
    errors: dict[str, str] = {}
    est = session.scalar(
        select(Establishment).where(
            Establishment.org_id == org_id, Establishment.cnes == establishment_cnes
        )
    )
    if est is None:
        errors["establishment"] = f"CNES {establishment_cnes} não cadastrado nesta organização."
    if status not in IMPORTABLE:
        allowed = ", ".join(STATUS_LABELS[s] for s in IMPORTABLE)
        errors["status"] = f"Situação inválida; use uma de: {allowed}."
    if not requester_id.strip():
        errors["requester_id"] = "Informe o identificador do solicitante."
    if errors:
        raise Invalid(errors)
    assert est is not None
    if rules.open_credential(session, org_id, est.id, portfolio_code) is not None:
        raise Invalid(
            {"establishment": f"O CNES {est.cnes} já tem credencial aberta neste portfólio."}
        )
    now = utcnow()
    credential = Credential(
        org_id=org_id,
        establishment_id=est.id,
        portfolio_code=portfolio_code,
        uf=est.uf,
        status=status,
        status_since=now,
        history=[{"status": status, "at": now.isoformat(), "instance": None}],
        homologation_on=homologation_on,
        production_on=production_on,
        requester_id=requester_id.strip(),
        request_numbers=[n for n in request_numbers if n],
        operations=[],
        origin="import",
        created_at=now,
        updated_at=now,
    )
    taken = rules.requester_taken(session, credential, credential.requester_id)
    if taken:
        raise Invalid({"requester_id": taken})
    session.add(credential)
    session.flush()
    changes = [blocks.Change(k, v, k) for k, v in (values or {}).items() if v not in (None, "")]
    rules.check(session, credential, changes)
    for change in changes:
        if change.field == "children":
            rules.set_children(session, credential, [str(c) for c in change.value])
        elif change.field == "certificate_sha256":
            rules.bind_certificate(session, credential, str(change.value))
        elif change.field in blocks.FIELDS and change.field not in ("id", "status", "organization"):
            setattr(credential, change.field, change.value)
    if not credential.certificate_sha256:
        rules.bind_current_certificate(session, credential)
    rules.record(
        session,
        actor,
        "credential.registered",
        credential,
        {
            "establishment": est.cnes,
            "portfolio": portfolio_code,
            "status": status,
            "requester_id": credential.requester_id,
        },
    )
    return credential
