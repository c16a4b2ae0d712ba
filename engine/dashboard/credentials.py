"""What the dashboard and the establishment page show of the credentials.

A dashboard row of an establishment and portfolio carries its credential (the open one, else
the newest closed one its instance touched), and the process running on it after go-live (a
change, a withdrawal, a transfer, a renewal): those processes make no rows of their own, the
credential's row shows both ("Produção · Alteração em análise"). A child establishment with no
credentialing of its own shows the credential that covers it. Everything is read in batches,
one query per kind for a page of rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.credentialing.block import works_on_one
from engine.credentials.models import ENCERRADA, STATUS_LABELS, Credential, CredentialChild
from engine.definitions.models import ProcessDefinition
from engine.establishments.models import Establishment
from engine.runtime.models import RUNNING, ProcessInstance
from engine.workflow import spiff


def after_go_live_keys(session: Session) -> frozenset[str]:
    """The keys of the deployed processes that work on a credential: not dashboard rows."""
    return frozenset(
        key
        for key, manifest in session.execute(
            select(ProcessDefinition.key, ProcessDefinition.manifest)
        )
        if works_on_one(manifest)
    )


def is_after_go_live(session: Session, instance: ProcessInstance) -> bool:
    """Whether the instance's process works on a credential (from the parsed spec the runtime
    just used, without a read, when it is at hand)."""
    loaded = spiff.cached(instance.definition_id)
    if loaded is not None:
        return works_on_one(loaded.manifest)
    return instance.process_key in after_go_live_keys(session)


@dataclass(frozen=True)
class InProgress:
    """A process running on a credential (or, without one, on the establishment)."""

    instance_id: int
    process_key: str
    stage: str
    stage_since: datetime | None
    credential_id: int | None
    establishment_id: int
    portfolio_code: str


@dataclass(frozen=True)
class Coverage:
    """The open credential that names a child establishment."""

    credential_id: int
    principal_cnes: str
    portfolio_code: str
    status: str

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def text(self) -> str:
        return f"Coberto pela credencial de CNES {self.principal_cnes}"


def of_establishments(
    session: Session, org_id: int, establishment_ids: Collection[int]
) -> dict[int, list[Credential]]:
    """The organization's credentials of these principal establishments, the open ones first,
    then the newest."""
    out: dict[int, list[Credential]] = {}
    if not establishment_ids:
        return out
    found = session.scalars(
        select(Credential).where(
            Credential.org_id == org_id, Credential.establishment_id.in_(list(establishment_ids))
        )
    ).all()
    for credential in sorted(found, key=lambda c: (c.status == ENCERRADA, -c.id)):
        out.setdefault(credential.establishment_id, []).append(credential)
    return out


def shown(
    credentials: Iterable[Credential], portfolio_code: str, instance_credential_id: int | None
) -> Credential | None:
    """The credential a row of this portfolio shows: the open one; else the newest closed one,
    when the row's instance touched it (or the row has no instance: ``instance_credential_id``
    is then ``-1``) — a new credenciamento after a closed credential starts fresh."""
    for credential in credentials:
        if credential.portfolio_code != portfolio_code:
            continue
        if credential.status != ENCERRADA:
            return credential
        if instance_credential_id in (-1, credential.id):
            return credential
        return None  # the newest closed one is not this row's
    return None


def running_on(
    session: Session, establishment_ids: Collection[int], keys: Collection[str]
) -> list[InProgress]:
    """The running instances of the processes that work on a credential, of these
    establishments, oldest first."""
    if not establishment_ids or not keys:
        return []
    return [
        InProgress(*row)
        for row in session.execute(
            select(ProcessInstance.id, ProcessInstance.process_key, ProcessInstance.stage,
                   ProcessInstance.stage_since, ProcessInstance.credential_id,
                   ProcessInstance.establishment_id, ProcessInstance.portfolio_code)
            .where(ProcessInstance.establishment_id.in_(list(establishment_ids)),
                   ProcessInstance.process_key.in_(list(keys)),
                   ProcessInstance.status == RUNNING)
            .order_by(ProcessInstance.id)
        )
    ]  # fmt: skip


def covering(
    session: Session, org_id: int, cnes_list: Collection[str]
) -> dict[str, list[Coverage]]:
    """CNES of a child establishment -> the open credentials that cover it, newest first."""
    if not cnes_list:
        return {}
    out: dict[str, list[Coverage]] = {}
    for cnes, credential_id, principal, code, status in session.execute(
        select(CredentialChild.cnes, Credential.id, Establishment.cnes,
               Credential.portfolio_code, Credential.status)
        .join(Credential, Credential.id == CredentialChild.credential_id)
        .join(Establishment, Establishment.id == Credential.establishment_id)
        .where(CredentialChild.org_id == org_id, CredentialChild.cnes.in_(list(cnes_list)),
               Credential.org_id == org_id, Credential.status != ENCERRADA)
        .order_by(Credential.id.desc())
    ):  # fmt: skip
        out.setdefault(cnes, []).append(Coverage(credential_id, principal, code, status))
    return out


@dataclass(frozen=True)
class EstablishmentCredentials:
    """What the establishment page shows: its own credentials, and those covering it."""

    own: list[Credential]
    covered_by: list[Coverage]


def for_establishment(session: Session, establishment: Establishment) -> EstablishmentCredentials:
    own = of_establishments(session, establishment.org_id, [establishment.id]).get(
        establishment.id, []
    )
    cover = covering(session, establishment.org_id, [establishment.cnes])
    return EstablishmentCredentials(own=own, covered_by=cover.get(establishment.cnes, []))
