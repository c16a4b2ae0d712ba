"""Saving, reading and discarding task drafts. Secrets are never kept in a draft."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine import forms
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.db import utcnow
from engine.drafts.models import TaskDraft
from engine.errors import Conflict, Invalid
from engine.runtime import taskform
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import READY

MAX_BYTES = 256 * 1024


def get_draft(session: Session, actor: Actor, task_id: str) -> TaskDraft | None:
    if actor.user_id is None:
        return None
    return session.get(TaskDraft, (task_id, actor.user_id))


def save_draft(session: Session, actor: Actor, task_id: str, data: dict[str, Any]) -> TaskDraft:
    task = runtime_tasks.get_task(session, actor, task_id)
    if task.role is None or not actor.has_role(task.org_id, task.role, task.establishment_id):
        raise actor.deny("Só quem pode executar a tarefa salva rascunho dela.", action="draft.save",
                         org_id=task.org_id, entity_type="task", entity_id=task.id)  # fmt: skip
    if task.state != READY:
        raise Conflict("Esta tarefa não está mais aberta.")
    if task.assignee_id not in (None, actor.user_id):
        raise Conflict("Esta tarefa está atribuída a outra pessoa.")
    schema = taskform.task_form(session, actor, task).schema
    kept = forms.strip_secrets(schema, data) if schema else dict(data)
    if len(json.dumps(kept, default=str)) > MAX_BYTES:
        raise Invalid({"": "O rascunho é grande demais."})
    draft = session.get(TaskDraft, (task.id, actor.user_id))
    if draft is None:
        draft = TaskDraft(task_id=task.id, user_id=actor.user_id, org_id=task.org_id, data=kept)
        session.add(draft)
    else:
        draft.data = kept
        draft.updated_at = utcnow()
    session.flush()
    audit.record(session, actor, "draft.saved", org_id=task.org_id, entity_type="instance",
                 entity_id=task.instance_id, data={"task": task.id, "name": task.name})  # fmt: skip
    return draft


def discard_drafts(session: Session, task_id: str) -> None:
    """Drop every draft of a task (after it was completed)."""
    session.execute(delete(TaskDraft).where(TaskDraft.task_id == task_id))


def has_draft(session: Session, actor: Actor, task_ids: list[str]) -> set[str]:
    if not task_ids or actor.user_id is None:
        return set()
    return set(
        session.scalars(
            select(TaskDraft.task_id).where(
                TaskDraft.user_id == actor.user_id, TaskDraft.task_id.in_(task_ids)
            )
        )
    )
