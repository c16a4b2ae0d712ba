"""Comparing a running workflow with another version of its process, and moving it there.

SpiffWorkflow's own diff aligns the task specs by BPMN id; the runtime's migration decides
from it whether an instance may move (engine/runtime/migration.py).
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.task import TaskState

from engine.workflow import spiff

_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED
_DONE = TaskState.COMPLETED | TaskState.ERROR


def compare(workflow: Any, target: spiff.LoadedSpec) -> tuple[Any, dict[str, Any]]:
    """The library's diff of the workflow against ``target``, and of its subprocesses (a
    subprocess missing in the target maps to None)."""
    return diff_workflow(spiff._registry, workflow, target.spec, target.subprocess_specs)


def move(diff: Any, workflow: Any, target: spiff.LoadedSpec) -> None:
    """Move the workflow onto the target version and run what became ready."""
    migrate_workflow(diff, workflow, target.spec)
    workflow.subprocess_specs = target.subprocess_specs
    workflow.do_engine_steps()


def top_tasks(workflow: Any) -> list[Any]:
    """The workflow's tasks, its subprocesses' left out."""
    return workflow.get_tasks(skip_subprocesses=True)


def is_active(task: Any) -> bool:
    return bool(task.state & _ACTIVE)


def is_done(task: Any) -> bool:
    return bool(task.state & _DONE)
