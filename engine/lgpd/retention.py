"""Retention: each kind of personal data is kept for its setting's days, then removed or
anonymized by the scheduler's hourly ``lgpd`` job (audited as ``lgpd.retention``).

- finished processes (``LGPD_RETENTION_FINISHED_DAYS`` after they ended): the personal
  values of their task data and workflow state are anonymized, and their audit events'
  sealed values destroyed (the chain keeps its commitments and verifies);
- drafts (``LGPD_RETENTION_DRAFTS_DAYS`` after their last change): deleted;
- web sessions (``LGPD_RETENTION_SESSIONS_DAYS`` after they expired): deleted;
- access log (``LGPD_RETENTION_ACCESS_LOG_DAYS``, 6 months): removed, the chain re-anchored;
- notifications and sent or failed e-mails (``LGPD_RETENTION_NOTIFICATIONS_DAYS``): deleted;
- unattached uploads: the ``uploads`` job (``UPLOAD_TTL_HOURS``), shown here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.accounts.models import WebSession
from engine.audit import service as audit
from engine.db import utcnow
from engine.drafts.models import TaskDraft
from engine.files.models import StoredFile
from engine.lgpd import access
from engine.lgpd.declarations import personal_key
from engine.lgpd.models import AnonymizedInstance, SealedValue
from engine.notifications.models import PENDING, Notification, OutboxMessage
from engine.runtime.models import RUNNING, ProcessInstance, Task

ANONYMIZED = "[dado pessoal removido]"
BATCH = 200


@dataclass
class Due:
    """One kind of data: how long it is kept, how much is past that now, and when the next
    one will be."""

    kind: str
    label: str
    setting: str
    days: float
    due_now: int
    next_at: datetime | None


def _finished_pending():
    return select(ProcessInstance.id).where(
        ProcessInstance.status != RUNNING,
        ProcessInstance.ended_at.is_not(None),
        ProcessInstance.id.not_in(select(AnonymizedInstance.instance_id)),
    )


def plan(session: Session, settings: Any, now: datetime | None = None) -> list[Due]:
    now = now or utcnow()

    def counted(stmt_count, stmt_next, days: float) -> tuple[int, datetime | None]:
        due = session.scalar(stmt_count) or 0
        oldest = session.scalar(stmt_next)
        return due, (oldest + timedelta(days=days)) if oldest else None

    out = []
    d = settings.lgpd_retention_finished_days
    cutoff = now - timedelta(days=d)
    pending = _finished_pending().subquery()
    due, nxt = counted(
        select(func.count()).select_from(ProcessInstance).where(
            ProcessInstance.id.in_(select(pending.c.id)), ProcessInstance.ended_at < cutoff
        ),
        select(func.min(ProcessInstance.ended_at)).where(
            ProcessInstance.id.in_(select(pending.c.id)), ProcessInstance.ended_at >= cutoff
        ),
        d,
    )  # fmt: skip
    out.append(Due("finished", "Processos concluídos (dados pessoais anonimizados)",
                   "CREDENCIA_LGPD_RETENTION_FINISHED_DAYS", d, due, nxt))  # fmt: skip
    d = settings.lgpd_retention_drafts_days
    cutoff = now - timedelta(days=d)
    due, nxt = counted(
        select(func.count()).select_from(TaskDraft).where(TaskDraft.updated_at < cutoff),
        select(func.min(TaskDraft.updated_at)).where(TaskDraft.updated_at >= cutoff), d,
    )  # fmt: skip
    out.append(Due("drafts", "Rascunhos", "CREDENCIA_LGPD_RETENTION_DRAFTS_DAYS", d, due, nxt))
    d = settings.upload_ttl_hours / 24
    cutoff = now - timedelta(hours=settings.upload_ttl_hours)
    unattached = StoredFile.instance_id.is_(None)
    due, nxt = counted(
        select(func.count()).select_from(StoredFile).where(unattached, StoredFile.created_at < cutoff),
        select(func.min(StoredFile.created_at)).where(unattached, StoredFile.created_at >= cutoff), d,
    )  # fmt: skip
    out.append(Due("uploads", "Arquivos enviados e não anexados", "CREDENCIA_UPLOAD_TTL_HOURS",
                   d, due, nxt))  # fmt: skip
    d = settings.lgpd_retention_sessions_days
    cutoff = now - timedelta(days=d)
    due, nxt = counted(
        select(func.count()).select_from(WebSession).where(WebSession.expires_at < cutoff),
        select(func.min(WebSession.expires_at)).where(WebSession.expires_at >= cutoff), d,
    )  # fmt: skip
    out.append(Due("sessions", "Sessões encerradas", "CREDENCIA_LGPD_RETENTION_SESSIONS_DAYS",
                   d, due, nxt))  # fmt: skip
    d = settings.lgpd_retention_access_log_days
    due, nxt = access.next_removal(session, d)
    out.append(Due("access_log", "Registro de acessos", "CREDENCIA_LGPD_RETENTION_ACCESS_LOG_DAYS",
                   d, due, nxt))  # fmt: skip
    d = settings.lgpd_retention_notifications_days
    cutoff = now - timedelta(days=d)
    due, nxt = counted(
        select(func.count()).select_from(Notification).where(Notification.created_at < cutoff),
        select(func.min(Notification.created_at)).where(Notification.created_at >= cutoff), d,
    )  # fmt: skip
    out_due = session.scalar(
        select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status != PENDING, OutboxMessage.created_at < cutoff
        )
    ) or 0  # fmt: skip
    out.append(Due("notifications", "Notificações e e-mails enviados",
                   "CREDENCIA_LGPD_RETENTION_NOTIFICATIONS_DAYS", d, due + out_due, nxt))  # fmt: skip
    return out


def _anonymize(value: Any) -> Any:
    """``value`` with every personal key's value replaced (the declarations' rule)."""
    if isinstance(value, list):
        return [_anonymize(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: (
            ANONYMIZED
            if personal_key(str(k)) and isinstance(v, str) and v.strip()
            else _anonymize(v)
        )
        for k, v in value.items()
    }


def _anonymize_instance(session: Session, instance: ProcessInstance) -> None:
    for task in session.scalars(select(Task).where(Task.instance_id == instance.id)):
        if task.data:
            new = _anonymize(task.data)
            if new != task.data:
                task.data = new
    try:
        state = json.loads(instance.state)
    except (TypeError, ValueError):
        state = None
    if state is not None:
        new_state = _anonymize(state)
        if new_state != state:
            instance.state = json.dumps(new_state)
    session.execute(
        update(SealedValue)
        .where(SealedValue.entity_type == "instance", SealedValue.entity_id == str(instance.id))
        .values(ciphertext=None, ident_hash=None)
    )


def apply(session: Session, settings: Any, actor: Actor | None = None,
          now: datetime | None = None) -> dict[str, int]:  # fmt: skip
    """Apply every retention setting once (a batch of finished processes per run)."""
    now = now or utcnow()
    counts: dict[str, int] = {}
    cutoff = now - timedelta(days=settings.lgpd_retention_finished_days)
    pending = _finished_pending().where(ProcessInstance.ended_at < cutoff)
    ids = list(session.scalars(pending.order_by(ProcessInstance.id).limit(BATCH)))
    for instance in session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(ids))):
        _anonymize_instance(session, instance)
        session.add(AnonymizedInstance(instance_id=instance.id, at=now))
        audit.record(session, actor, "lgpd.retention_applied", org_id=instance.org_id,
                     entity_type="instance", entity_id=instance.id,
                     data={"ended_at": instance.ended_at.isoformat()})  # fmt: skip
    counts["finished"] = len(ids)
    cutoff = now - timedelta(days=settings.lgpd_retention_drafts_days)
    counts["drafts"] = session.execute(
        delete(TaskDraft).where(TaskDraft.updated_at < cutoff)
    ).rowcount
    cutoff = now - timedelta(days=settings.lgpd_retention_sessions_days)
    counts["sessions"] = session.execute(
        delete(WebSession).where(WebSession.expires_at < cutoff)
    ).rowcount
    access.seal(session)
    counts["access_log"] = access.prune(session, settings.lgpd_retention_access_log_days, now=now)
    cutoff = now - timedelta(days=settings.lgpd_retention_notifications_days)
    counts["notifications"] = session.execute(
        delete(Notification).where(Notification.created_at < cutoff)
    ).rowcount + session.execute(
        delete(OutboxMessage).where(OutboxMessage.status != PENDING, OutboxMessage.created_at < cutoff)
    ).rowcount  # fmt: skip
    if any(counts.values()):
        audit.record(session, actor, "lgpd.retention", org_id=None, data=counts)
    return counts
