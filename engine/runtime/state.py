"""An instance's workflow: locking its row, and loading it with the cached spec.

Completions keep the workflow they leave behind in a small per-process cache of live
workflows, keyed by (instance id, version): the next completion of that instance in this
process, finding the row still at that version, takes the object instead of parsing and
restoring the saved state. The version is the one the completion locks and checks, so a
change made anywhere else (another worker, the scheduler, a migration) is a miss; the
definition and the start time are checked too, so an id that now names another instance (a
database restored or replaced under a running process) is a miss as well. An entry
is taken out while a transaction uses it and put back only after that transaction commits,
so an object a failed transaction touched is never used again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import event, select
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


def load_workflow(
    session: Session, instance: ProcessInstance, *, live: bool = False
) -> tuple[Any, spiff.LoadedSpec]:
    """The instance's workflow restored from its saved state; with ``live``, the one a
    completion in this process left at this version, when there is one (the caller will
    change it and hand it back with ``keep_live``)."""
    loaded = loaded_spec(session, instance)
    if live and instance.version:
        workflow = _live.take(instance.id, _mark(instance))
        if workflow is not None:
            return workflow, loaded
    return spiff.load_state(loaded, instance.state), loaded


def keep_live(session: Session, instance: ProcessInstance, workflow: Any) -> None:
    """Offer ``workflow``, just saved as ``instance``'s state at its new version, to the next
    completion in this process — once this transaction has committed."""
    if _live.size:
        session.info.setdefault(_LIVE_KEY, []).append((instance.id, _mark(instance), workflow))


def give_back(instance: ProcessInstance, workflow: Any) -> None:
    """Return a workflow taken with ``live`` and only read (a form refused, a review step):
    it is still the instance's state at its version, whatever the transaction does."""
    if _live.size and instance.version:
        _live.put(instance.id, _mark(instance), workflow)


def _mark(instance: ProcessInstance) -> tuple[Any, ...]:
    """What an entry must match besides the instance id: its version, its definition, and
    when it started (an id reused by another database — a restore, a test — is not it)."""
    return (instance.version, instance.definition_id, instance.started_at)


class LiveWorkflows:
    """A bounded LRU of live workflows: (instance id) -> (mark, workflow), the mark being the
    instance's (version, definition id, start time) the workflow is the state of."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[int, tuple[tuple[Any, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def take(self, instance_id: int, mark: tuple[Any, ...]) -> Any:
        with self._lock:
            item = self._items.pop(instance_id, None)
            if item is not None and item[0] == mark:
                self.hits += 1
                return item[1]
            self.misses += 1
            return None

    def put(self, instance_id: int, mark: tuple[Any, ...], workflow: Any) -> None:
        with self._lock:
            self._items[instance_id] = (mark, workflow)
            self._items.move_to_end(instance_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget(self, instance_id: int) -> None:
        with self._lock:
            self._items.pop(instance_id, None)

    def __contains__(self, instance_id: int) -> bool:
        return instance_id in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


_LIVE_KEY = "credencia.live_workflows"
# Each entry is one instance's workflow (~100–200 KiB in memory for the credenciamento).
_live = LiveWorkflows(512)


@event.listens_for(Session, "after_commit")
def _keep_after_commit(session: Session) -> None:
    for item in session.info.pop(_LIVE_KEY, ()):
        _live.put(*item)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_LIVE_KEY, None)
