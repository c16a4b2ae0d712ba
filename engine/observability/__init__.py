"""What the engine counts for ``/metrics`` (web/metrics.py): instances started and human tasks
completed, by process. prometheus-client counters, safe across gunicorn's worker processes
when ``PROMETHEUS_MULTIPROC_DIR`` is set (``credencia serve`` sets it). They count when the
service call returns, inside its transaction: a commit that fails after that is counted too
(rare, and logged)."""

from __future__ import annotations

from prometheus_client import Counter

INSTANCES_STARTED = Counter(
    "credencia_instance_starts", "Instâncias de processo iniciadas", ["process"]
)
TASKS_COMPLETED = Counter("credencia_task_completions", "Tarefas humanas concluídas", ["process"])


def started(process_key: str, count: int = 1) -> None:
    INSTANCES_STARTED.labels(process_key).inc(count)


def completed(process_key: str) -> None:
    TASKS_COMPLETED.labels(process_key).inc()
