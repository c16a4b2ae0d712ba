"""Test data for the scheduler: deployed fixture processes and task rows with given dates."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from engine.db import Database
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.runtime.models import READY, RUNNING, ProcessInstance, Task

FIXTURES = Path(__file__).resolve().parent.parent / "scheduler" / "fixtures"


def deploy_fixture(db: Database, name: str = "prazo-teste") -> ProcessDefinition:
    bundle = definitions.read_bundle(FIXTURES / f"{name}.bpmn")
    with db.write() as s:
        definition, _created = definitions.deploy_bundle(s, bundle)
    return definition


def add_tasks(
    db: Database,
    *,
    org_id: int,
    establishment_id: int | None,
    count: int = 1,
    lane: str | None = "DATASUS",
    role: str | None = "datasus",
    name: str = "Avaliar solicitação de acesso",
    created_at: datetime,
    due_at: datetime,
    assignee_id: int | None = None,
) -> list[str]:
    """Open tasks (each on an instance of its own) without running the process: reminders
    read only the task rows."""
    with db.write() as s:
        definition_id = s.scalar(
            select(ProcessDefinition.id).order_by(ProcessDefinition.id).limit(1)
        )
        key = s.scalar(select(ProcessDefinition.key).where(ProcessDefinition.id == definition_id))
        rows: list[dict[str, Any]] = [
            {
                "org_id": org_id,
                "definition_id": definition_id,
                "process_key": key,
                "establishment_id": establishment_id,
                "portfolio_code": f"T-{uuid.uuid4().hex[:12]}",
                "status": RUNNING,
                "stage": "Solicitação em análise",
                "stage_since": created_at,
                "state": "{}",
                "version": 1,
                "started_at": created_at,
            }
            for _ in range(count)
        ]
        instance_ids = list(s.scalars(insert(ProcessInstance).returning(ProcessInstance.id), rows))
        task_rows = [
            {
                "id": str(uuid.uuid4()),
                "instance_id": iid,
                "org_id": org_id,
                "establishment_id": establishment_id,
                "element_id": "avaliar_solicitacao_acesso",
                "name": name,
                "lane": lane,
                "role": role,
                "state": READY,
                "stage": "Solicitação em análise",
                "assignee_id": assignee_id,
                "created_at": created_at,
                "due_at": due_at,
            }
            for iid in instance_ids
        ]
        s.execute(insert(Task), task_rows)
    return [r["id"] for r in task_rows]
