"""The workflow class the engine runs: SpiffWorkflow's ``BpmnWorkflow``, with its whole-tree
task queries walked in one loop.

SpiffWorkflow answers "the tasks in state S" (``get_tasks``) and wakes its waiting tasks
(``update_waiting_tasks``, after every task that completes) with ``TaskIterator``: a depth-first
walk of the task tree from its root, finished branches included, in which each task visited
costs several Python calls (the iterator's step, the children property mapping ids to tasks,
the filter's checks, the subprocess look-up, the depth bookkeeping). A completion walked its
tree four to eleven times; the walks were about a sixteenth of a completion request's
instructions (docs/PERFORMANCE.md, "Issue 19, session 24").

``walk`` is the same walk in one loop: the same tasks, in the same order (pre-order, children
in their order), each task's children taken when it is reached and before it is handed out —
so a caller that changes the tree while it iterates (``update_waiting_tasks``) sees what it
would have seen — and descending only into the tasks ``TaskIterator`` descends into (those in
a state at least the filter's lowest traversed one). It is used only where it gives exactly
``TaskIterator``'s answer:

- from the root, with no filter but the state, ``manual`` and the spec's name (the ones the
  engine and SpiffWorkflow's own gateways ask for); any other query goes to SpiffWorkflow;
- in a workflow with no subprocess (``BpmnTaskIterator`` also walks into subprocesses, with
  rules of its own);
- in a tree of at most ``MAX_TASKS`` tasks: ``TaskIterator`` stops descending at depth 1,000,
  which such a tree cannot reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

MAX_TASKS = 1000  # TaskIterator's max_depth: no task of a tree this size is that deep
_WALKED_FILTERS = frozenset({"state", "manual", "spec_name"})


class Workflow(BpmnWorkflow):
    """A ``BpmnWorkflow`` whose task queries from the root take ``walk`` when it answers
    exactly as SpiffWorkflow would (see the module's notes); saved as a ``BpmnWorkflow``."""

    def get_tasks(self, first_task: Any = None, **kwargs: Any) -> list[Any]:
        if first_task is None and kwargs.keys() <= _WALKED_FILTERS and walkable(self):
            return find(self, **kwargs)
        return super().get_tasks(first_task, **kwargs)

    def update_waiting_tasks(self) -> None:
        if not walkable(self):
            super().update_waiting_tasks()
            return
        tasks = self.tasks.values()
        if not any(task._state == TaskState.WAITING for task in tasks):
            return  # (most calls: the walk would meet none, and change nothing)
        for task in walk(self, state=TaskState.WAITING):
            task.task_spec._update(task)


def walkable(workflow: BpmnWorkflow) -> bool:
    """Whether ``walk`` answers for ``workflow`` as ``TaskIterator`` does."""
    return not workflow.subprocesses and len(workflow.tasks) <= MAX_TASKS


def find(
    workflow: BpmnWorkflow,
    state: int = TaskState.ANY_MASK,
    manual: bool | None = None,
    spec_name: str | None = None,
) -> list[Any]:
    """``list(walk(...))``, without the walk when the tree holds at most one task of the kind
    (most queries: "the ready tasks" is one or none). Those are found in the task mapping;
    one is in the walk's answer when the walk reaches it: when every task above it, each of
    which lists it among its children, is in a state the walk descends into."""
    found = [
        task
        for task in workflow.tasks.values()
        if task._state & state
        and (manual is None or task.task_spec.manual == manual)
        and (spec_name is None or task.task_spec.name == spec_name)
    ]
    if len(found) > 1:
        return list(walk(workflow, state, manual, spec_name))
    if found and not _reached(workflow, found[0], _lowest(state)):
        return []
    return found


def _reached(workflow: BpmnWorkflow, task: Any, lowest: int) -> bool:
    """Whether a walk descending into tasks in states from ``lowest`` up meets ``task``."""
    tasks, root = workflow.tasks, workflow.task_tree
    while task is not root:
        parent = tasks.get(task._parent) if task._parent is not None else None
        if parent is None or parent._state < lowest or task.id not in parent._children:
            return False
        task = parent
    return True


def _lowest(state: int) -> int:
    """The lowest state a walk for ``state`` descends into (``TaskIterator``'s rule: predicted
    tasks may follow definite ones, definite ones finished ones, never the other way round)."""
    if state & TaskState.PREDICTED_MASK:
        return TaskState.MAYBE
    if state & TaskState.DEFINITE_MASK:
        return TaskState.FUTURE
    return TaskState.COMPLETED


def walk(
    workflow: BpmnWorkflow,
    state: int = TaskState.ANY_MASK,
    manual: bool | None = None,
    spec_name: str | None = None,
) -> Iterator[Any]:
    """The tasks of ``workflow`` in ``state`` (a state or a mask), optionally of a manual or
    automatic spec, or of the spec named ``spec_name``, in ``TaskIterator``'s order."""
    lowest = _lowest(state)
    tasks = workflow.tasks
    stack = [workflow.task_tree]
    while stack:
        task = stack.pop()
        children = task._children
        if children and task._state >= lowest:
            stack.extend([tasks.get(child) for child in reversed(children)])
        if not task._state & state:
            continue
        spec = task.task_spec
        if manual is not None and spec.manual != manual:
            continue
        if spec_name is not None and spec.name != spec_name:
            continue
        yield task
