"""Timer events of a running workflow: which are waiting, and whether firing moved anything."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.task import TaskState


def waiting_timers(workflow: Any) -> dict[Any, str]:
    """The waiting timer events: task id -> the element's name."""
    return {
        t.id: t.task_spec.bpmn_name or t.task_spec.bpmn_id or t.task_spec.name
        for t in workflow.get_tasks(state=TaskState.WAITING)
        if isinstance(getattr(t.task_spec, "event_definition", None), TimerEventDefinition)
    }


def fingerprint(workflow: Any) -> list[tuple[Any, int]]:
    """Every task with its state: equal fingerprints mean nothing moved."""
    return [(t.id, t.state) for t in workflow.get_tasks()]


def still_waiting(workflow: Any, task_id: Any) -> bool:
    try:
        task = workflow.get_task_from_id(task_id)
    except Exception:  # pruned from the tree: certainly no longer waiting
        return False
    return task is not None and task.state == TaskState.WAITING
