"""The credential record's rules and writes, shared by the processes' changes and the
import of existing credentials (engine/credentials/service.py): who holds an identificador,
which children a credential may cover, which certificate it may take, how a status change is
dated, how a credential moves to another organization.

Each check answers with the message for the form field, or "" when the value may be kept;
``check`` gathers them into one ``Invalid`` before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts.models import Membership, Organization, User
from engine.audit import service as audit
from engine.certificates import service as certificates
from engine.credentialing import block as blocks
from engine.credentials.models import (
    EM_SOLICITACAO,
    ENCERRADA,
    HOMOLOGACAO,
    LIVE,
    OPEN,
    PRODUCAO,
    Credential,
    CredentialChild,
)
from engine.db import hold, insert_now, utcnow
from engine.errors import Conflict, Invalid
from engine.establishments.models import Establishment
from engine.runtime.models import ProcessInstance

ENDED_WITHOUT = "Encerrado sem credenciamento: a solicitação terminou antes da homologação."
# The statuses whose date the record keeps in a column of its own, when first reached.
DATED = {HOMOLOGACAO: "homologation_on", PRODUCAO: "production_on"}


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


def values(
    session: Session,
    credential: Credential,
    *,
    slug: str | None = None,
    children: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The credential's values; ``slug`` and ``children`` when the caller already has them."""
    return credential_values(
        credential,
        org_slug(session, credential.org_id) if slug is None else slug,
        children_of(session, credential.id) if children is None else children,
    )


def org_slug(session: Session, org_id: int) -> str:
    return session.scalar(select(Organization.slug).where(Organization.id == org_id)) or ""


def close_request(session: Session, actor: Actor | None, credential: Credential) -> None:
    set_status(credential, ENCERRADA, instance_id=None)
    credential.ended_on = utcnow().date()
    credential.end_reason = ENDED_WITHOUT
    session.execute(delete(CredentialChild).where(CredentialChild.credential_id == credential.id))
    record(
        session,
        actor,
        "credential.updated",
        credential,
        {"status": ENCERRADA, "reason": ENDED_WITHOUT},
    )


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    credential: Credential,
    data: dict,
    *,
    org_id: int | None = None,
) -> None:
    """An event of the credential's history, in its organization's audit chain (or in
    ``org_id``'s: a transfer is recorded on both sides)."""
    audit.record(
        session,
        actor,
        action,
        org_id=org_id or credential.org_id,
        entity_type="credential",
        entity_id=credential.id,
        data=data,
    )


def create(session: Session, actor: Actor, instance: ProcessInstance) -> Credential:
    """A new credential for the instance's establishment and portfolio, ``em_solicitacao``
    (a request left open by an earlier run is closed first). The caller records the
    ``credential.created`` event with the values the request gave it."""
    est = hold(session, session.get(Establishment, instance.establishment_id))
    assert est is not None
    stale = open_credential(session, instance.org_id, est.id, instance.portfolio_code)
    if stale is not None and stale.status in LIVE:
        raise Conflict(
            f"O CNES {est.cnes} já tem credencial em “{stale.status_label}” "
            f"({describe(stale, est.cnes)})."
        )
    if stale is not None:
        close_request(session, actor, stale)
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
    insert_now(session, credential)
    bind_current_certificate(session, credential)  # until the request names one
    return credential


def check(
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
            message = requester_taken(session, credential, str(change.value))
        elif change.field == "children":
            message = _children_refused(session, credential, change.value)
        elif change.field == "certificate_sha256":
            field = _file_field(field)
            message = _certificate_refused(session, credential, str(change.value), renewal)
        elif change.field == "organization":
            message = (
                ""
                if org_by_slug(session, str(change.value))
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


def requester_taken(session: Session, credential: Credential, requester_id: str) -> str:
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
    refused = children_refusals(
        session,
        org_id=credential.org_id,
        uf=credential.uf,
        portfolio_code=credential.portfolio_code,
        principal_cnes=principal.cnes if principal is not None else "",
        credential_id=credential.id,
        cnes_list=[str(c) for c in cnes_list if c],
    )
    return next(iter(refused.values()), "")


def children_refusals(
    session: Session,
    *,
    org_id: int,
    uf: str,
    portfolio_code: str,
    principal_cnes: str,
    credential_id: int | None,
    cnes_list: Sequence[str],
) -> dict[str, str]:
    """Why each refused child CNES may not be covered by the credential (``credential_id``,
    or a credential still to be created), the gravest reason first: the principal itself,
    another UF, covered by another credential of the portfolio, a principal elsewhere. The
    completion's check and the import of a list of children (engine/credentials/children.py)
    both ask it."""
    wanted = set(cnes_list)
    refused: dict[str, str] = {}
    if principal_cnes and principal_cnes in wanted:
        refused[principal_cnes] = (
            "O estabelecimento principal não pode ser filho da própria credencial."
        )
    if not wanted:
        return refused
    for cnes, child_uf in session.execute(
        select(Establishment.cnes, Establishment.uf)
        .where(Establishment.org_id == org_id, Establishment.cnes.in_(wanted))
        .order_by(Establishment.cnes)
    ):
        if child_uf != uf:
            refused.setdefault(
                cnes,
                f"O CNES {cnes} fica em {child_uf}; uma credencial cobre só estabelecimentos de "
                f"{uf} (regra da RNDS: uma UF por credencial).",
            )
    covered = (
        select(CredentialChild.cnes, Credential.id)
        .join(Credential, Credential.id == CredentialChild.credential_id)
        .where(
            CredentialChild.cnes.in_(wanted),
            Credential.portfolio_code == portfolio_code,
            Credential.status != ENCERRADA,
        )
        .order_by(CredentialChild.cnes, Credential.id)
    )
    if credential_id is not None:
        covered = covered.where(Credential.id != credential_id)
    for cnes, other_id in session.execute(covered):
        refused.setdefault(
            cnes,
            f"O CNES {cnes} já é coberto por outra credencial deste portfólio (nº {other_id}).",
        )
    for (cnes,) in session.execute(
        select(Establishment.cnes)
        .join(Credential, Credential.establishment_id == Establishment.id)
        .where(
            Establishment.cnes.in_(wanted),
            Credential.org_id != org_id,
            Credential.portfolio_code == portfolio_code,
            Credential.status != ENCERRADA,
        )
        .order_by(Establishment.cnes)
    ):
        refused.setdefault(
            cnes,
            f"O CNES {cnes} tem credencial própria em outra organização; não pode ser filho desta.",
        )
    return refused


def _certificate_refused(
    session: Session, credential: Credential, sha256: str, renewal: bool
) -> str:
    cert = certificates.by_fingerprint(session, credential.org_id, sha256)
    if cert is None:
        return "Certificado não encontrado nesta organização."
    expected = credential.certificate_cnpj
    if renewal and cert.cnpj and expected and cert.cnpj != expected:
        return (
            f"O certificado é do CNPJ {cert.cnpj}; a credencial usa certificados do CNPJ "
            f"{expected}."
        )
    return ""


def org_by_slug(session: Session, slug: str) -> Organization | None:
    return session.scalar(select(Organization).where(Organization.slug == slug))


def set_status(
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


def write(
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
            set_status(
                credential,
                str(value),
                instance_id=instance.id,
                on=dates.get(DATED.get(str(value), "")),
            )
        elif name == "children":
            set_children(session, credential, [str(c) for c in value])
        elif name == "certificate_sha256":
            bind_certificate(session, credential, str(value))
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


def bind_current_certificate(session: Session, credential: Credential) -> None:
    """Bind the establishment's current certificate, if it has one."""
    current = certificates.current_fingerprint(session, credential.establishment_id)
    if current:
        bind_certificate(session, credential, current)


def bind_certificate(session: Session, credential: Credential, sha256: str) -> None:
    """Bind the certificate; the establishment's other open credentials that used the same
    one follow (one connector, one certificate)."""
    cert = certificates.by_fingerprint(session, credential.org_id, sha256)
    old = credential.certificate_sha256
    siblings = [credential]
    if old and old != sha256:  # (those on this one already hold its values)
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


def set_children(session: Session, credential: Credential, cnes_list: list[str]) -> None:
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
    target = org_by_slug(session, slug)
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
            bairro=register["bairro"],
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
    set_children(session, credential, children)
    data = {
        "instance": instance.id,
        "from": org_slug(session, source_org),
        "to": slug,
        "establishment": est.cnes,
        "portfolio": credential.portfolio_code,
    }
    for org_id in (source_org, target.id):  # both sides keep it in their history
        record(session, actor, "credential.transferred", credential, data, org_id=org_id)


def member(session: Session, org_id: int, email: str) -> User | None:
    return session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id, User.email == email.strip().lower(), User.active)
        .limit(1)
    )
