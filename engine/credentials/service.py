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

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts.models import Membership, Organization, User
from engine.audit import service as audit
from engine.certificates.models import Certificate
from engine.credentialing import block as blocks
from engine.credentials.models import (
    EM_SOLICITACAO,
    ENCERRADA,
    HOMOLOGACAO,
    LIVE,
    OPEN,
    PRODUCAO,
    STATUS_LABELS,
    Credential,
    CredentialChild,
)
from engine.db import utcnow
from engine.definitions.models import ProcessDefinition
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments.models import Establishment
from engine.runtime import instances as runtime_instances
from engine.runtime.models import RUNNING, ProcessInstance, Task
from engine.runtime.tasks import Submission

ENDED_WITHOUT = "Encerrado sem credenciamento: a solicitação terminou antes da homologação."
# The statuses whose date the record keeps in a column of its own, when first reached.
DATED = {HOMOLOGACAO: "homologation_on", PRODUCAO: "production_on"}


# ---------------------------------------------------------------- reading one


def get(
    session: Session, actor: Actor, credential_id: int, *, action: str = "credential.read"
) -> Credential:
    """The credential, if the actor sees its establishment; a denial is audited."""
    credential = session.get(Credential, credential_id)
    if credential is None:
        raise NotFound("Credencial não encontrada.")
    if not actor.can_see_establishment(credential.org_id, credential.establishment_id):
        raise actor.deny(
            "Sem acesso a esta credencial.",
            action=action,
            org_id=credential.org_id,
            entity_type="credential",
            entity_id=credential_id,
        )
    return credential


def open_credential(
    session: Session, org_id: int, establishment_id: int, portfolio_code: str
) -> Credential | None:
    """The establishment's open credential for the portfolio (at most one)."""
    return session.scalar(
        select(Credential).where(
            Credential.org_id == org_id,
            Credential.establishment_id == establishment_id,
            Credential.portfolio_code == portfolio_code,
            Credential.status.in_(OPEN),
        )
    )


def describe(credential: Credential, cnes: str) -> str:
    """How a message names a credential."""
    who = f"credencial nº {credential.id} do CNES {cnes}"
    if credential.portfolio_code:
        who += f" ({credential.portfolio_code})"
    if credential.requester_id:
        who += f", identificador {credential.requester_id}"
    return who


def credential_values(
    credential: Credential, org_slug: str = "", children: Sequence[str] = ()
) -> dict[str, Any]:
    """The credential's fields as a block names them (``start`` sources)."""
    return {
        "id": credential.id,
        "status": credential.status,
        "requester_id": credential.requester_id,
        "request_numbers": list(credential.request_numbers or []),
        "operations": list(credential.operations or []),
        "ip_start": credential.ip_start,
        "ip_end": credential.ip_end,
        "system_name": credential.system_name,
        "system_version": credential.system_version,
        "children": list(children),
        "gestor_name": credential.gestor_name,
        "gestor_cpf": credential.gestor_cpf,
        "gestor_email": credential.gestor_email,
        "organization": org_slug,
        "certificate_sha256": credential.certificate_sha256,
        "is_pec": bool(credential.is_pec),
        "ended_on": credential.ended_on.isoformat() if credential.ended_on else "",
        "end_reason": credential.end_reason,
        "homologation_on": (
            credential.homologation_on.isoformat() if credential.homologation_on else ""
        ),
        "production_on": credential.production_on.isoformat() if credential.production_on else "",
    }


def children_of(session: Session, credential_id: int) -> list[str]:
    return list(
        session.scalars(
            select(CredentialChild.cnes)
            .where(CredentialChild.credential_id == credential_id)
            .order_by(CredentialChild.cnes)
        )
    )


def _values(session: Session, credential: Credential) -> dict[str, Any]:
    return credential_values(
        credential, _slug(session, credential.org_id), children_of(session, credential.id)
    )


def _slug(session: Session, org_id: int) -> str:
    return session.scalar(select(Organization.slug).where(Organization.id == org_id)) or ""


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
    values = _values(session, credential)
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
    audit.record(
        session,
        actor,
        "credential.process_started",
        org_id=org_id,
        entity_type="credential",
        entity_id=credential.id,
        data={"instance": instance.id, "process": process_key, "kind": block.get("kind")},
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
    current = open_credential(session, org_id, est.id, portfolio)
    if current is None:
        return
    if current.status in LIVE:
        raise Conflict(
            f"O CNES {cnes} já tem credencial em “{current.status_label}” "
            f"({describe(current, cnes)}). Para mudar IP, sistema, operações ou filhos, "
            "inicie uma Alteração de credencial; para deixá-la, um Encerramento."
        )
    running = session.scalar(
        select(ProcessInstance.id).where(
            ProcessInstance.credential_id == current.id, ProcessInstance.status == RUNNING
        )
    )
    if running is None:
        _close_request(session, None, current)


def _close_request(session: Session, actor: Actor | None, credential: Credential) -> None:
    _set_status(credential, ENCERRADA, instance_id=None)
    credential.ended_on = utcnow().date()
    credential.end_reason = ENDED_WITHOUT
    session.execute(delete(CredentialChild).where(CredentialChild.credential_id == credential.id))
    audit.record(
        session,
        actor,
        "credential.updated",
        org_id=credential.org_id,
        entity_type="credential",
        entity_id=credential.id,
        data={"status": ENCERRADA, "reason": ENDED_WITHOUT},
    )


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
    credential = _credential_for(session, instance, manifest)
    if credential is None:
        if not blocks.creates(manifest) or instance.establishment_id is None:
            return  # a process started by hand, without a credential: nothing to change
        credential = _create(session, actor, instance)
    before = _values(session, credential)
    _check(session, credential, changes, renewal=blocks.kind_of(manifest) == "renewal")
    written = _write(session, actor, credential, changes, instance)
    instance.credential_id = credential.id
    after = _values(session, credential)
    diff = {
        k: {"de": before.get(k), "para": after.get(k)}
        for k in written
        if before.get(k) != after.get(k)
    }
    if diff:
        audit.record(
            session,
            actor,
            "credential.updated",
            org_id=credential.org_id,
            entity_type="credential",
            entity_id=credential.id,
            data={"instance": instance.id, "task": sub.task.element_id, "changes": diff},
        )


def _credential_for(
    session: Session, instance: ProcessInstance, manifest: Mapping[str, Any]
) -> Credential | None:
    if instance.credential_id is not None:
        return session.scalar(
            select(Credential).where(Credential.id == instance.credential_id).with_for_update()
        )
    return None


def _create(session: Session, actor: Actor, instance: ProcessInstance) -> Credential:
    est = session.get(Establishment, instance.establishment_id)
    assert est is not None
    stale = open_credential(session, instance.org_id, est.id, instance.portfolio_code)
    if stale is not None and stale.status in LIVE:
        raise Conflict(
            f"O CNES {est.cnes} já tem credencial em “{stale.status_label}” "
            f"({describe(stale, est.cnes)})."
        )
    if stale is not None:
        _close_request(session, actor, stale)
        session.flush()
    now = utcnow()
    credential = Credential(
        org_id=instance.org_id,
        establishment_id=est.id,
        portfolio_code=instance.portfolio_code,
        uf=est.uf,
        status=EM_SOLICITACAO,
        status_since=now,
        history=[{"status": EM_SOLICITACAO, "at": now.isoformat(), "instance": instance.id}],
        request_numbers=[],
        operations=[],
        origin="process",
        created_at=now,
        updated_at=now,
    )
    session.add(credential)
    session.flush()
    current = session.scalar(
        select(Certificate.sha256).where(
            Certificate.establishment_id == est.id, Certificate.is_current.is_(True)
        )
    )
    if current:  # until the request names one, the establishment's current certificate
        _bind_certificate(session, credential, current)
    audit.record(
        session,
        actor,
        "credential.created",
        org_id=credential.org_id,
        entity_type="credential",
        entity_id=credential.id,
        data={
            "instance": instance.id,
            "establishment": est.cnes,
            "portfolio": credential.portfolio_code,
        },
    )
    return credential


def _check(
    session: Session,
    credential: Credential,
    changes: Sequence[blocks.Change],
    *,
    renewal: bool = False,
) -> None:
    """Refuse, at the form fields, what the record's rules forbid. ``renewal``: the new
    certificate must be of the CNPJ the credential's certificate is (a request's certificate
    was already checked against the establishment, with its justified exception)."""
    errors: dict[str, str] = {}
    for change in changes:
        field = change.source or change.field
        if change.field == "requester_id":
            message = _requester_taken(session, credential, str(change.value))
        elif change.field == "children":
            message = _children_refused(session, credential, change.value)
        elif change.field == "certificate_sha256":
            field = _file_field(field)
            message = _certificate_refused(session, credential, str(change.value), renewal)
        elif change.field == "organization":
            message = (
                ""
                if _org_by_slug(session, str(change.value))
                else ("Organização de destino não encontrada.")
            )
        else:
            message = ""
        if message:
            errors.setdefault(field, message)
    if errors:
        raise Invalid(errors)


def _file_field(name: str) -> str:
    return name[: -len("_sha256")] if name.endswith("_sha256") else name


def _requester_taken(session: Session, credential: Credential, requester_id: str) -> str:
    other = session.scalar(
        select(Credential).where(
            Credential.org_id == credential.org_id,
            Credential.portfolio_code == credential.portfolio_code,
            Credential.uf == credential.uf,
            Credential.requester_id == requester_id,
            Credential.status != ENCERRADA,
            Credential.id != credential.id,
        )
    )
    if other is None:
        return ""
    cnes = session.scalar(
        select(Establishment.cnes).where(Establishment.id == other.establishment_id)
    )
    return (
        f"O identificador {requester_id} já é da credencial nº {other.id} (CNES {cnes}) "
        "neste portfólio e UF."
    )


def _children_refused(session: Session, credential: Credential, cnes_list: Any) -> str:
    if not isinstance(cnes_list, list):
        return "Informe os filhos como uma lista de CNES."
    principal = session.get(Establishment, credential.establishment_id)
    wanted = {str(c) for c in cnes_list if c}
    if principal is not None and principal.cnes in wanted:
        return "O estabelecimento principal não pode ser filho da própria credencial."
    if not wanted:
        return ""
    for cnes, uf in session.execute(
        select(Establishment.cnes, Establishment.uf).where(
            Establishment.org_id == credential.org_id, Establishment.cnes.in_(wanted)
        )
    ):
        if uf != credential.uf:
            return (
                f"O CNES {cnes} fica em {uf}; uma credencial cobre só estabelecimentos de "
                f"{credential.uf} (regra da RNDS: uma UF por credencial)."
            )
    elsewhere = session.execute(
        select(CredentialChild.cnes, Credential.id)
        .join(Credential, Credential.id == CredentialChild.credential_id)
        .where(
            CredentialChild.cnes.in_(wanted),
            Credential.portfolio_code == credential.portfolio_code,
            Credential.status != ENCERRADA,
            Credential.id != credential.id,
        )
    ).first()
    if elsewhere is not None:
        return (
            f"O CNES {elsewhere[0]} já é coberto por outra credencial deste portfólio "
            f"(nº {elsewhere[1]})."
        )
    principal_elsewhere = session.execute(
        select(Establishment.cnes)
        .join(Credential, Credential.establishment_id == Establishment.id)
        .where(
            Establishment.cnes.in_(wanted),
            Credential.org_id != credential.org_id,
            Credential.portfolio_code == credential.portfolio_code,
            Credential.status != ENCERRADA,
        )
    ).first()
    if principal_elsewhere is not None:
        return (
            f"O CNES {principal_elsewhere[0]} tem credencial própria em outra organização; "
            "não pode ser filho desta."
        )
    return ""


def _certificate_refused(
    session: Session, credential: Credential, sha256: str, renewal: bool
) -> str:
    cert = _certificate(session, credential.org_id, sha256)
    if cert is None:
        return "Certificado não encontrado nesta organização."
    expected = credential.certificate_cnpj
    if renewal and cert.cnpj and expected and cert.cnpj != expected:
        return (
            f"O certificado é do CNPJ {cert.cnpj}; a credencial usa certificados do CNPJ "
            f"{expected}."
        )
    return ""


def _certificate(session: Session, org_id: int, sha256: str) -> Certificate | None:
    return session.scalar(
        select(Certificate)
        .where(Certificate.org_id == org_id, Certificate.sha256 == sha256)
        .order_by(Certificate.id.desc())
        .limit(1)
    )


def _org_by_slug(session: Session, slug: str) -> Organization | None:
    return session.scalar(select(Organization).where(Organization.slug == slug))


def _set_status(
    credential: Credential, status: str, *, instance_id: int | None, on: date | None = None
) -> None:
    if credential.status == status:
        return
    now = utcnow()
    credential.status = status
    credential.status_since = now
    credential.history = [
        *(credential.history or []),
        {"status": status, "at": now.isoformat(), "instance": instance_id},
    ]
    column = DATED.get(status)
    if column and getattr(credential, column) is None:
        setattr(credential, column, on or now.date())


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _write(
    session: Session,
    actor: Actor,
    credential: Credential,
    changes: Sequence[blocks.Change],
    instance: ProcessInstance,
) -> list[str]:
    written: list[str] = []
    dates = {c.field: _as_date(c.value) for c in changes if c.field in DATED.values()}
    for change in changes:
        name, value = change.field, change.value
        written.append(name)
        if change.append:
            current = list(getattr(credential, name) or [])
            if value not in current:
                setattr(credential, name, [*current, value])
        elif name == "status":
            _set_status(
                credential,
                str(value),
                instance_id=instance.id,
                on=dates.get(DATED.get(str(value), "")),
            )
        elif name == "children":
            _set_children(session, credential, [str(c) for c in value])
        elif name == "certificate_sha256":
            _bind_certificate(session, credential, str(value))
        elif name == "organization":
            _move(session, actor, credential, str(value), instance)
        elif name in ("ended_on", "homologation_on", "production_on"):
            setattr(credential, name, _as_date(value))
        elif name == "is_pec":
            credential.is_pec = bool(value)
        else:
            setattr(credential, name, value if isinstance(value, list) else str(value))
    if credential.status == ENCERRADA:
        credential.ended_on = credential.ended_on or utcnow().date()
    credential.updated_at = utcnow()
    return written


def _bind_certificate(session: Session, credential: Credential, sha256: str) -> None:
    """Bind the certificate; the establishment's other open credentials that used the same
    one follow (one connector, one certificate)."""
    cert = _certificate(session, credential.org_id, sha256)
    old = credential.certificate_sha256
    siblings = [credential]
    if old:
        siblings += list(
            session.scalars(
                select(Credential).where(
                    Credential.establishment_id == credential.establishment_id,
                    Credential.certificate_sha256 == old,
                    Credential.status.in_(OPEN),
                    Credential.id != credential.id,
                )
            )
        )
    for row in siblings:
        row.certificate_sha256 = sha256
        if cert is not None:
            row.certificate_cnpj = cert.cnpj or ""
            row.certificate_not_after = cert.not_after


def _set_children(session: Session, credential: Credential, cnes_list: list[str]) -> None:
    session.execute(delete(CredentialChild).where(CredentialChild.credential_id == credential.id))
    registered = dict(
        session.execute(
            select(Establishment.cnes, Establishment.id).where(
                Establishment.org_id == credential.org_id, Establishment.cnes.in_(cnes_list)
            )
        ).all()
    )
    session.add_all(
        CredentialChild(
            credential_id=credential.id,
            org_id=credential.org_id,
            cnes=cnes,
            establishment_id=registered.get(cnes),
        )
        for cnes in sorted(set(cnes_list))
    )
    session.flush()


def _move(
    session: Session, actor: Actor, credential: Credential, slug: str, instance: ProcessInstance
) -> None:
    """The credential goes to another organization: it holds it under its own register of
    the establishment (copied when it has none)."""
    target = _org_by_slug(session, slug)
    if target is None or target.id == credential.org_id:
        return
    source_org = credential.org_id
    est = session.get(Establishment, credential.establishment_id)
    assert est is not None
    mine = session.scalar(
        select(Establishment).where(
            Establishment.org_id == target.id, Establishment.cnes == est.cnes
        )
    )
    if mine is None:
        register = est.register_data()
        mine = Establishment(
            org_id=target.id,
            cnes=est.cnes,
            cnpj=est.cnpj,
            razao_social=est.razao_social,
            nome_fantasia=est.nome_fantasia,
            uf=est.uf,
            municipio=est.municipio,
            cep=register["cep"],
            endereco=register["endereco"],
            telefone=register["telefone"],
            email=register["email"],
            cnes_pai=est.cnes_pai,
        )
        session.add(mine)
        session.flush()
    clash = open_credential(session, target.id, mine.id, credential.portfolio_code)
    if clash is not None:
        raise Invalid(
            {
                "organizacao_destino": f"A organização {slug} já tem credencial deste CNES e "
                "portfólio."
            }
        )
    credential.org_id = target.id
    credential.establishment_id = mine.id
    children = [
        c.cnes
        for c in session.scalars(
            select(CredentialChild).where(CredentialChild.credential_id == credential.id)
        )
    ]
    session.flush()
    _set_children(session, credential, children)
    data = {
        "instance": instance.id,
        "from": _slug(session, source_org),
        "to": slug,
        "establishment": est.cnes,
        "portfolio": credential.portfolio_code,
    }
    for org_id in (source_org, target.id):  # both sides keep it in their history
        audit.record(
            session,
            actor,
            "credential.transferred",
            org_id=org_id,
            entity_type="credential",
            entity_id=credential.id,
            data=data,
        )


# ---------------------------------------------------------------- who does the next task


def _member(session: Session, org_id: int, email: str) -> User | None:
    return session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id, User.email == email.strip().lower(), User.active)
        .limit(1)
    )


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
            target = _org_by_slug(session, str(slug))
            if target is None:
                errors["organizacao_destino"] = "Organização de destino não encontrada."
                continue
            org_id = target.id
        if _member(session, org_id, str(email)) is None:
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
        user = _member(session, task.org_id, str(email))
        if user is not None and task.assignee_id is None:
            task.assignee_id, task.claimed_at = user.id, utcnow()
    settle(session, actor, sub.instance)


def settle(session: Session, actor: Actor | None, instance: ProcessInstance) -> None:
    """A credenciamento that ended before the RNDS granted anything closes its request."""
    if instance.status == RUNNING or instance.credential_id is None:
        return
    credential = session.get(Credential, instance.credential_id)
    if credential is not None and credential.status == EM_SOLICITACAO:
        _close_request(session, actor, credential)


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
    if open_credential(session, org_id, est.id, portfolio_code) is not None:
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
    taken = _requester_taken(session, credential, credential.requester_id)
    if taken:
        raise Invalid({"requester_id": taken})
    session.add(credential)
    session.flush()
    changes = [blocks.Change(k, v, k) for k, v in (values or {}).items() if v not in (None, "")]
    _check(session, credential, changes)
    for change in changes:
        if change.field == "children":
            _set_children(session, credential, [str(c) for c in change.value])
        elif change.field == "certificate_sha256":
            _bind_certificate(session, credential, str(change.value))
        elif change.field in blocks.FIELDS and change.field not in ("id", "status", "organization"):
            setattr(credential, change.field, change.value)
    if not credential.certificate_sha256:
        current = session.scalar(
            select(Certificate.sha256).where(
                Certificate.establishment_id == est.id, Certificate.is_current.is_(True)
            )
        )
        if current:
            _bind_certificate(session, credential, current)
    audit.record(
        session,
        actor,
        "credential.registered",
        org_id=org_id,
        entity_type="credential",
        entity_id=credential.id,
        data={
            "establishment": est.cnes,
            "portfolio": portfolio_code,
            "status": status,
            "requester_id": credential.requester_id,
        },
    )
    return credential
