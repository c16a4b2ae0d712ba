"""After a fault: was any acknowledged completion lost or applied twice, and does every
instance's saved workflow agree with its task rows? Used by the fault scripts, the load run
and ``tests/faults``.

Checks:
1. every completion the server acknowledged (HTTP 200) is a ``completed`` task row;
2. every completed task row has exactly one ``task.completed`` audit event, and every such
   event names a completed task (none applied twice, none without its event);
3. for every instance, the READY user tasks of its saved workflow
   (``engine.runtime.state.load_workflow``) are exactly its ``ready`` task rows, and every
   ``completed`` row is COMPLETED in the workflow;
4. the audit hash chains verify (``engine.audit.service.verify``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.db import Database
from engine.runtime.models import COMPLETED, READY, ProcessInstance, Task
from engine.runtime.state import load_workflow
from engine.workflow import spiff


@dataclass
class Report:
    acked: int = 0
    completed_rows: int = 0
    instances: int = 0
    audit_events: int = 0
    lost: list[str] = field(default_factory=list)  # acknowledged, not completed
    acked_twice: list[str] = field(default_factory=list)  # two 200s for one task
    missing_event: list[str] = field(default_factory=list)  # completed, no task.completed
    duplicate_event: list[str] = field(default_factory=list)  # more than one task.completed
    orphan_event: list[str] = field(default_factory=list)  # event for a task not completed
    mismatched: list[str] = field(default_factory=list)  # workflow vs task rows
    chain_break: str = ""

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.acked_twice
            or self.missing_event
            or self.duplicate_event
            or self.orphan_event
            or self.mismatched
            or self.chain_break
        )

    def lines(self) -> list[str]:
        out = [
            f"acknowledged completions: {self.acked}; completed task rows: {self.completed_rows}",
            f"instances compared with their saved workflow: {self.instances}",
            f"audit events verified: {self.audit_events}",
        ]
        for label, items in (
            ("LOST (acknowledged, not completed)", self.lost),
            ("ACKNOWLEDGED TWICE (two 200s for one task)", self.acked_twice),
            ("completed without a task.completed event", self.missing_event),
            ("APPLIED TWICE (several task.completed events)", self.duplicate_event),
            ("task.completed event for a task not completed", self.orphan_event),
            ("workflow and task rows disagree", self.mismatched),
        ):
            out.append(f"{label}: {len(items)}" + (f" e.g. {items[:3]}" if items else ""))
        out.append(f"audit chain: {'BROKEN ' + self.chain_break if self.chain_break else 'ok'}")
        return out


def check(db: Database, acked: Iterable[str] = ()) -> Report:
    report = Report()
    acked = list(acked)
    report.acked = len(acked)
    report.acked_twice = sorted(t for t, n in Counter(acked).items() if n > 1)
    with db.read() as s:
        completed = set(s.scalars(select(Task.id).where(Task.state == COMPLETED)))
        report.completed_rows = len(completed)
        report.lost = sorted(set(acked) - completed)
        events = Counter(
            (data or {}).get("task")
            for data in s.scalars(
                select(AuditEvent.data).where(AuditEvent.action == "task.completed")
            )
        )
        report.missing_event = sorted(t for t in completed if events.get(t, 0) == 0)
        report.duplicate_event = sorted(t for t, n in events.items() if n > 1)
        report.orphan_event = sorted(str(t) for t in events if t not in completed)

        rows: dict[int, dict[str, set[str]]] = {}
        for instance_id, task_id, state in s.execute(select(Task.instance_id, Task.id, Task.state)):
            rows.setdefault(instance_id, {}).setdefault(state, set()).add(task_id)
        for instance in s.scalars(select(ProcessInstance).order_by(ProcessInstance.id)):
            if not instance.state:
                continue
            report.instances += 1
            workflow, _loaded = load_workflow(s, instance)
            ready = {str(t.id) for t in spiff.ready_human_tasks(workflow)}
            mine = rows.get(instance.id, {})
            if ready != mine.get(READY, set()):
                report.mismatched.append(
                    f"instance {instance.id}: workflow ready {sorted(ready)} "
                    f"!= rows {sorted(mine.get(READY, set()))}"
                )
            for task_id in mine.get(COMPLETED, set()):
                if not spiff.is_completed_state(spiff.find_task(workflow, task_id)):
                    report.mismatched.append(
                        f"instance {instance.id}: task {task_id} completed in the rows only"
                    )
        checked, broken = audit.verify(s)
        report.audit_events = checked
        report.chain_break = str(broken) if broken else ""
    return report
