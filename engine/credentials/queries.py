"""Reading credentials: the organization's list with its filters and counts, the CSV export,
and one credential with its children, certificate and the timeline of the processes that
touched it. What the pages and the API show, from the same queries."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit import queries as audit_queries
from engine.audit.models import AuditEvent
from engine.credentialing import block as blocks
from engine.credentials.models import STATUS_LABELS, STATUSES, Credential, CredentialChild
from engine.credentials.service import EXCLUSIVE
from engine.db import utcnow
from engine.definitions.models import ProcessDefinition
from engine.errors import Invalid
from engine.establishments.models import Establishment
from engine.exports.csvsafe import SafeWriter
from engine.runtime.models import RUNNING, ProcessInstance

MAX_EXPIRING_DAYS = 3650
PAGE_SIZE = 50
BATCH = 500


@dataclass(frozen=True)
class Filters:
    establishment: str = ""  # CNES (prefix) or name
    portfolio: str = ""
    status: str = ""
    uf: str = ""
    requester_id: str = ""
    expiring_within_days: int | None = None  # certificate ends within N days (or has ended)

    def checked(self) -> Filters:
        errors = {}
        if self.status and self.status not in STATUSES:
            errors["status"] = "Situação desconhecida."
        if self.expiring_within_days is not None and not (
            0 <= self.expiring_within_days <= MAX_EXPIRING_DAYS
        ):
            errors["expiring_within_days"] = f"Informe de 0 a {MAX_EXPIRING_DAYS} dias."
        if self.uf and len(self.uf.strip()) != 2:
            errors["uf"] = "Informe a sigla da UF."
        if errors:
            raise Invalid(errors)
        return self


@dataclass
class Row:
    credential: Credential
    cnes: str
    name: str
    municipio: str
    children: int = 0
    in_progress: list[tuple[int, str, str]] = field(default_factory=list)  # (id, kind, stage)

    @property
    def status_label(self) -> str:
        return self.credential.status_label


@dataclass
class Page:
    rows: list[Row]
    total: int
    page: int
    pages: int
    counts: dict[str, int]  # by status, for the whole organization (what the actor sees)


def can_view(actor: Actor, org_id: int) -> bool:
    return actor.is_member(org_id)


def _require(actor: Actor, org_id: int) -> None:
    if not can_view(actor, org_id):
        raise actor.deny(
            "Sem acesso às credenciais desta organização.", action="credential.list", org_id=org_id
        )


def _base(actor: Actor, org_id: int):
    stmt = (
        select(Credential, Establishment.cnes, Establishment.razao_social, Establishment.municipio)
        .join(Establishment, Establishment.id == Credential.establishment_id)
        .where(Credential.org_id == org_id)
    )
    visible = actor.visible_establishments(org_id)
    if visible is not None:
        stmt = stmt.where(Credential.establishment_id.in_(visible))
    return stmt


def _filtered(stmt, filters: Filters, now: datetime):
    if filters.establishment:
        q = filters.establishment.strip()
        like = f"%{q.lower()}%"
        stmt = stmt.where(
            Establishment.cnes.startswith(q)
            | func.lower(Establishment.razao_social).like(like)
            | func.lower(Establishment.nome_fantasia).like(like)
        )
    if filters.portfolio:
        stmt = stmt.where(Credential.portfolio_code == filters.portfolio.strip())
    if filters.status:
        stmt = stmt.where(Credential.status == filters.status)
    if filters.uf:
        stmt = stmt.where(Credential.uf == filters.uf.strip().upper())
    if filters.requester_id:
        stmt = stmt.where(Credential.requester_id == filters.requester_id.strip())
    if filters.expiring_within_days is not None:
        stmt = stmt.where(
            Credential.certificate_not_after.is_not(None),
            Credential.certificate_not_after <= now + timedelta(days=filters.expiring_within_days),
        )
    return stmt


def status_counts(session: Session, actor: Actor, org_id: int) -> dict[str, int]:
    stmt = select(Credential.status, func.count()).where(Credential.org_id == org_id)
    visible = actor.visible_establishments(org_id)
    if visible is not None:
        stmt = stmt.where(Credential.establishment_id.in_(visible))
    found = dict(session.execute(stmt.group_by(Credential.status)).all())
    return {status: int(found.get(status, 0)) for status in STATUSES}


def list_page(
    session: Session,
    actor: Actor,
    org_id: int,
    filters: Filters = Filters(),
    *,
    page: int = 1,
    per_page: int = PAGE_SIZE,
) -> Page:
    _require(actor, org_id)
    filters = filters.checked()
    now = utcnow()
    stmt = _filtered(_base(actor, org_id), filters, now)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = _rows(session, stmt, limit=per_page, offset=(page - 1) * per_page)
    return Page(rows, total, page, pages, status_counts(session, actor, org_id))


def list_slice(
    session: Session,
    actor: Actor,
    org_id: int,
    filters: Filters = Filters(),
    *,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """The list as the API pages it (limit and offset): the rows and the total."""
    _require(actor, org_id)
    filters = filters.checked()
    stmt = _filtered(_base(actor, org_id), filters, utcnow())
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    return _rows(session, stmt, limit=limit, offset=offset), total


def _rows(session: Session, stmt, *, limit: int, offset: int) -> list[Row]:
    found = session.execute(
        stmt.order_by(
            Credential.uf,
            Establishment.municipio,
            Establishment.razao_social,
            Credential.portfolio_code,
            Credential.id,
        )
        .limit(limit)
        .offset(offset)
    ).all()
    rows = [Row(c, cnes, name, municipio) for c, cnes, name, municipio in found]
    _annotate(session, rows)
    return rows


def _annotate(session: Session, rows: list[Row]) -> None:
    """Children counts and the processes running on each credential, one query each."""
    by_id = {row.credential.id: row for row in rows}
    if not by_id:
        return
    for cid, n in session.execute(
        select(CredentialChild.credential_id, func.count())
        .where(CredentialChild.credential_id.in_(by_id))
        .group_by(CredentialChild.credential_id)
    ):
        by_id[cid].children = int(n)
    for iid, cid, stage, manifest in session.execute(
        select(
            ProcessInstance.id,
            ProcessInstance.credential_id,
            ProcessInstance.stage,
            ProcessDefinition.manifest,
        )
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .where(ProcessInstance.credential_id.in_(by_id), ProcessInstance.status == RUNNING)
        .order_by(ProcessInstance.id)
    ):
        kind = blocks.kind_of(manifest)
        by_id[cid].in_progress.append((iid, blocks.KIND_LABELS.get(kind, kind), stage))


# ---------------------------------------------------------------- export

CSV_HEADER = [
    "credencial",
    "cnes",
    "estabelecimento",
    "municipio",
    "uf",
    "portfolio",
    "situacao",
    "identificador_solicitante",
    "numeros_solicitacao",
    "homologacao_em",
    "producao_em",
    "certificado_sha256",
    "certificado_cnpj",
    "certificado_valido_ate",
    "ip_inicial",
    "ip_final",
    "sistema",
    "versao",
    "gestor",
    "gestor_email",
    "filhos",
    "em_andamento",
    "encerrada_em",
]


def _day(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()


def export_csv(
    session: Session, actor: Actor, org_id: int, filters: Filters = Filters()
) -> Iterator[str]:
    """The filtered list as CSV, in batches (formula-safe cells)."""
    _require(actor, org_id)
    filters = filters.checked()
    stmt = _filtered(_base(actor, org_id), filters, utcnow()).order_by(Credential.id)
    buf = io.StringIO()
    writer = SafeWriter(csv.writer(buf))
    writer.writerow(CSV_HEADER)
    yield _drain(buf)
    last = 0
    while True:
        found = session.execute(stmt.where(Credential.id > last).limit(BATCH)).all()
        if not found:
            return
        rows = [Row(c, cnes, name, municipio) for c, cnes, name, municipio in found]
        _annotate(session, rows)
        children = _children(session, [r.credential.id for r in rows])
        for row in rows:
            c = row.credential
            writer.writerow(
                [
                    c.id,
                    row.cnes,
                    row.name,
                    row.municipio,
                    c.uf,
                    c.portfolio_code,
                    c.status_label,
                    c.requester_id,
                    " ".join(c.request_numbers or []),
                    _day(c.homologation_on),
                    _day(c.production_on),
                    c.certificate_sha256,
                    c.certificate_cnpj,
                    _day(c.certificate_not_after),
                    c.ip_start,
                    c.ip_end,
                    c.system_name,
                    c.system_version,
                    c.gestor_name,
                    c.gestor_email,
                    " ".join(children.get(c.id, [])),
                    "; ".join(f"{kind}: {stage}" for _i, kind, stage in row.in_progress),
                    _day(c.ended_on),
                ]
            )
        yield _drain(buf)
        last = rows[-1].credential.id


def _drain(buf: io.StringIO) -> str:
    out = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return out


def _children(session: Session, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for cid, cnes in session.execute(
        select(CredentialChild.credential_id, CredentialChild.cnes)
        .where(CredentialChild.credential_id.in_(ids))
        .order_by(CredentialChild.cnes)
    ):
        out.setdefault(cid, []).append(cnes)
    return out


# ---------------------------------------------------------------- one credential


@dataclass
class Child:
    cnes: str
    establishment_id: int | None
    name: str
    uf: str


@dataclass
class TimelineEntry:
    instance_id: int
    process_key: str
    title: str
    kind: str
    kind_label: str
    status: str
    stage: str
    started_at: datetime
    ended_at: datetime | None


@dataclass
class Detail:
    credential: Credential
    establishment: Establishment
    children: list[Child]
    timeline: list[TimelineEntry]
    events: list[AuditEvent]
    running: list[TimelineEntry]

    def values(self) -> dict[str, Any]:
        return {"status_label": STATUS_LABELS.get(self.credential.status, "")}


def detail(session: Session, actor: Actor, credential: Credential) -> Detail:
    """One credential as its page and the API show it (``credential`` read with
    ``service.get``, which checked the actor sees it)."""
    est = session.get(Establishment, credential.establishment_id)
    assert est is not None
    children = [
        Child(cnes, est_id, name or "", uf or "")
        for cnes, est_id, name, uf in session.execute(
            select(
                CredentialChild.cnes,
                CredentialChild.establishment_id,
                Establishment.razao_social,
                Establishment.uf,
            )
            .outerjoin(Establishment, Establishment.id == CredentialChild.establishment_id)
            .where(CredentialChild.credential_id == credential.id)
            .order_by(CredentialChild.cnes)
        )
    ]
    timeline = [
        TimelineEntry(
            iid,
            key,
            (manifest or {}).get("title", key),
            blocks.kind_of(manifest),
            blocks.KIND_LABELS.get(blocks.kind_of(manifest), key),
            status,
            stage,
            started,
            ended,
        )
        for iid, key, manifest, status, stage, started, ended in session.execute(
            select(
                ProcessInstance.id,
                ProcessInstance.process_key,
                ProcessDefinition.manifest,
                ProcessInstance.status,
                ProcessInstance.stage,
                ProcessInstance.started_at,
                ProcessInstance.ended_at,
            )
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
            .where(ProcessInstance.credential_id == credential.id)
            .order_by(ProcessInstance.started_at, ProcessInstance.id)
        )
    ]
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.entity_type == "credential", AuditEvent.entity_id == str(credential.id)
            )
            .order_by(AuditEvent.seq)
        )
    )
    events = audit_queries.shown(session, events)
    running = [t for t in timeline if t.status == RUNNING]
    return Detail(credential, est, children, timeline, events, running)


def starts(session: Session, actor: Actor, credential: Credential) -> list[dict[str, Any]]:
    """The processes that may start on this credential now, for this actor: each deployed
    process whose block works on a credential in its status and whose start roles the actor
    holds for the establishment; none while one of them runs on it."""
    running = {
        blocks.kind_of(manifest)
        for (manifest,) in session.execute(
            select(ProcessDefinition.manifest)
            .join(ProcessInstance, ProcessInstance.definition_id == ProcessDefinition.id)
            .where(
                ProcessInstance.credential_id == credential.id, ProcessInstance.status == RUNNING
            )
        )
    }
    out = []
    seen: set[str] = set()
    for key, manifest in session.execute(
        select(ProcessDefinition.key, ProcessDefinition.manifest).order_by(
            ProcessDefinition.key, ProcessDefinition.version.desc()
        )
    ):
        if key in seen:
            continue
        seen.add(key)
        block = blocks.block_of(manifest)
        if block is None or not blocks.works_on_one(manifest):
            continue
        if credential.status not in block.get("requires_status", []):
            continue
        roles = manifest.get("start_roles", ["admin"])
        if not any(
            actor.has_role(credential.org_id, r, credential.establishment_id) for r in roles
        ):
            continue
        out.append(
            {
                "process": key,
                "kind": block.get("kind"),
                "label": blocks.KIND_LABELS.get(block.get("kind", ""), manifest.get("title")),
                "title": manifest.get("title", key),
                # a kind already running, or an exclusive one while another runs
                "blocked": block.get("kind") in running
                or (block.get("kind") in EXCLUSIVE and bool(running & set(EXCLUSIVE))),
            }
        )
    return out
