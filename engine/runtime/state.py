"""An instance's workflow: locking its row, and loading it with the cached spec."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.definitions.models import ProcessDefinition
from engine.errors import NotFound
from engine.runtime.models import ProcessInstance
from engine.workflow import spiff


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_instance(session: Session, instance_id: int) -> ProcessInstance:
    """The instance row, locked for the rest of the transaction (``SELECT … FOR UPDATE`` on
    PostgreSQL; a SQLite write transaction already holds the database's write lock)."""
    stmt = select(ProcessInstance).where(ProcessInstance.id == instance_id)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    instance = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    if instance is None:
        raise NotFound("Instância não encontrada.")
    return instance


def loaded_spec(session: Session, instance: ProcessInstance) -> spiff.LoadedSpec:
    cached = spiff.cached(instance.definition_id)
    if cached is not None:
        return cached
    definition = session.get(ProcessDefinition, instance.definition_id)
    if definition is None:
        raise NotFound("Definição de processo não encontrada.")
    return spiff.cached_spec(definition)


def load_workflow(session: Session, instance: ProcessInstance) -> tuple[Any, spiff.LoadedSpec]:
    loaded = loaded_spec(session, instance)
    return spiff.load_state(loaded, instance.state), loaded
