"""Engine objects to the API's JSON shapes (one place, so the OpenAPI document can match)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts.models import User
from engine.audit.models import AuditEvent
from engine.establishments.models import Establishment
from engine.files.models import StoredFile
from engine.runtime.models import ProcessInstance, Task


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def emails(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(wanted))).all())


def establishment(est: Establishment) -> dict[str, Any]:
    return {
        "cnes": est.cnes,
        "cnpj": est.cnpj,
        "razao_social": est.razao_social,
        "nome_fantasia": est.nome_fantasia,
        "uf": est.uf,
        "municipio": est.municipio,
        "cep": est.cep,
        "endereco": est.endereco,
        "telefone": est.telefone,
        "email": est.email,
        "cnes_pai": est.cnes_pai,
    }


def task(row: Task, users: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "instance": row.instance_id,
        "name": row.name,
        "element": row.element_id,
        "lane": row.lane,
        "stage": row.stage,
        "state": row.state,
        "assignee": users.get(row.assignee_id) if row.assignee_id else None,
        "due_at": iso(row.due_at),
        "created_at": iso(row.created_at),
        "completed_at": iso(row.completed_at),
        "completed_by": users.get(row.completed_by_id) if row.completed_by_id else None,
    }


def tasks(session: Session, rows: list[Task]) -> list[dict[str, Any]]:
    users = emails(session, [r.assignee_id for r in rows] + [r.completed_by_id for r in rows])
    return [task(r, users) for r in rows]


def instance(
    inst: ProcessInstance,
    *,
    cnes: str,
    definition_version: int,
    ready: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out = {
        "id": inst.id,
        "process": inst.process_key,
        "version": definition_version,
        "revision": inst.version,
        "establishment": cnes,
        "portfolio": inst.portfolio_code or None,
        "stage": inst.stage,
        "stage_since": iso(inst.stage_since),
        "status": inst.status,
        "numero_solicitacao": inst.numero_solicitacao or None,
        "identificador_solicitante": inst.identificador_solicitante or None,
        "last_rejection_reason": inst.last_rejection_reason or None,
        "started_at": iso(inst.started_at),
        "ended_at": iso(inst.ended_at),
        "cancel_reason": inst.cancel_reason or None,
    }
    if ready is not None:
        out["tasks"] = ready
    return out


def event(ev: AuditEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "at": iso(ev.at),
        "actor": ev.actor,
        "action": ev.action,
        "entity_type": ev.entity_type,
        "entity_id": ev.entity_id,
        "data": ev.data,
        "hash": ev.hash,
    }


def stored_file(row: StoredFile) -> dict[str, Any]:
    return {
        "id": row.id,
        "filename": row.filename,
        "sha256": row.sha256,
        "size": row.size,
        "content_type": row.content_type,
    }
