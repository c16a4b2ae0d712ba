"""The workflow class the engine runs: SpiffWorkflow's ``BpmnWorkflow``, with its whole-tree
task queries walked in one loop.

SpiffWorkflow answers "the tasks in state S" (``get_tasks``) and wakes its waiting tasks
(``update_waiting_tasks``, after every task that completes) with ``TaskIterator``: a depth-first
walk of the task tree from its root, finished branches included, in which each task visited
costs several Python calls (the iterator's step, the children property mapping ids to tasks,
the filter's checks, the subprocess look-up, the depth bookkeeping). A completion walks the
tree four or five times; the walks were a twentieth of a completion request's instructions
(docs/PERFORMANCE.md, "Issue 19, session 24").

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
            return list(walk(self, **kwargs))
        return super().get_tasks(first_task, **kwargs)

    def update_waiting_tasks(self) -> None:
        if not walkable(self):
            super().update_waiting_tasks()
            return
        for task in walk(self, state=TaskState.WAITING):
            task.task_spec._update(task)


def walkable(workflow: BpmnWorkflow) -> bool:
    """Whether ``walk`` answers for ``workflow`` as ``TaskIterator`` does."""
    return not workflow.subprocesses and len(workflow.tasks) <= MAX_TASKS


def walk(
    workflow: BpmnWorkflow,
    state: int = TaskState.ANY_MASK,
    manual: bool | None = None,
    spec_name: str | None = None,
) -> Iterator[Any]:
    """The tasks of ``workflow`` in ``state`` (a state or a mask), optionally of a manual or
    automatic spec, or of the spec named ``spec_name``, in ``TaskIterator``'s order."""
    # TaskIterator's rule: predicted tasks may follow definite ones, definite ones finished
    # ones, never the other way round; so a walk for a state never descends below it.
    if state & TaskState.PREDICTED_MASK:
        lowest = TaskState.MAYBE
    elif state & TaskState.DEFINITE_MASK:
        lowest = TaskState.FUTURE
    else:
        lowest = TaskState.COMPLETED
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
