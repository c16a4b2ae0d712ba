"""The SpiffWorkflow adapter: parsing, the spec cache, and spec-less serialization.

The parsed spec of a deployed version is cached in memory per definition id; an instance's
saved state holds only its task tree and data, and gets the cached spec back on load.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnWorkflowConverter,
    TaskConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.task import TaskState

from engine.workflow.tree import Workflow

SERIALIZER_VERSION_KEY = "serializer_version"
TIMER_EVENT_TYPES = {
    "TimerEventDefinition",
    "TimeDateEventDefinition",
    "DurationTimerEventDefinition",
    "CycleTimerEventDefinition",
}


class _SpecLessWorkflowConverter(BpmnWorkflowConverter):
    """Writes a workflow without its spec; reads one back given the spec."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["spec"] = workflow.spec.name
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(
        self, dct: dict[str, Any], spec: Any = None, subprocess_specs: Any = None
    ) -> BpmnWorkflow:
        dct.pop("spec", None)
        dct.pop("subprocess_specs", None)
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class _WorkflowConverter(_SpecLessWorkflowConverter):
    """The engine's: ``_SpecLessWorkflowConverter``'s output, its task mapping written in one
    loop. The library writes each task of a mapping through its registry (a look-up by class,
    a partial, the ``typename`` added by ``dict.update``) and its key with ``UUID.__str__``;
    here, when writing a state (the registry's encoder mode), a task of the class the registry
    knows goes straight to the task converter and its key through ``_text``. Any other value
    or key, and any other mode, takes the library's way."""

    def mapping_to_dict(self, mapping: Any, **kwargs: Any) -> dict[str, Any]:
        registry = self.registry
        if kwargs or not registry._encoder_mode:
            return super().mapping_to_dict(mapping, **kwargs)
        convert, typename = registry.convert, registry.typenames[SpiffTask]
        task_dict = _task_converter.to_dict
        out: dict[str, Any] = {}
        for key, value in mapping.items():
            if type(value) is SpiffTask and type(key) is UUID:
                dct = task_dict(value)
                dct["typename"] = typename
                out[_text(key)] = dct
            else:
                out[str(key)] = convert(value)
        return out


class _TaskConverter(TaskConverter):
    """SpiffWorkflow's task converter, its output unchanged (a task's data as a delta from its
    parent's), computed with C-level dict and key-view comparisons instead of a Python loop
    over every key of every task: the same dict, at a fraction of the cost of a dump."""

    def to_dict(self, task: SpiffTask) -> dict[str, Any]:
        parent_id, internal = task._parent, task.internal_data
        parent = task.workflow.tasks.get(parent_id) if parent_id is not None else None
        if parent is None:
            data, delta = task.data, {}
        else:
            data = {}
            delta = {"updates": _updated(parent.data, task.data),
                     "deletions": _deleted(parent.data, task.data)}  # fmt: skip
        return {
            "id": _text(task.id),
            "parent": _text(parent_id) if parent is not None else None,
            "children": [_text(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task.state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": (
                {} if type(internal) is dict and not internal else self.registry.convert(internal)
            ),
            "data": data,
            "delta": delta,
        }


_uuid_texts: dict[int, str] = {}


def _text(task_id: UUID) -> str:
    """``str(task_id)``, remembered: a task's id is written on every dump of its workflow, as
    its own and in its parent's children (``UUID.__str__`` is a third of a dump's own time)."""
    key = task_id.int
    text = _uuid_texts.get(key)
    if text is None:
        if len(_uuid_texts) >= 200_000:  # ~100 tasks per live workflow; bounded all the same
            _uuid_texts.clear()
        text = _uuid_texts[key] = str(task_id)
    return text


def _updated(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``DeepMerge.get_updated_keys``: the child's keys absent from the parent or different."""
    if not child or child == parent:
        return {}
    return {key: value for key, value in child.items() if key not in parent or parent[key] != value}


def _deleted(parent: dict[str, Any], child: dict[str, Any]) -> list[str]:
    """``DeepMerge.get_deleted_keys``: the parent's keys the child lacks, in the parent's order."""
    if not child:
        return list(parent)
    if parent.keys() <= child.keys():
        return []
    return [key for key in parent if key not in child]


_config = dict(SPIFF_CONFIG)
_config[BpmnWorkflow] = _WorkflowConverter
_config[SpiffTask] = _TaskConverter
_registry = BpmnWorkflowSerializer.configure(_config)
# The task converter the mapping calls directly: registered again, it is the registry's too.
_task_converter = _TaskConverter(SpiffTask, _registry)
# The engine's workflows (engine/workflow/tree.py) are saved as, and read back from, what
# SpiffWorkflow writes for a BpmnWorkflow: the same text, and states saved before read alike.
_WorkflowConverter(Workflow, _registry, typename="BpmnWorkflow")
_state_serializer = BpmnWorkflowSerializer(_registry)
# The full (spec-embedding) serializer, for exports and round-trip tests.
_full_registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
SPIFF_CONFIG[BpmnWorkflow](Workflow, _full_registry, typename="BpmnWorkflow")
full_serializer = BpmnWorkflowSerializer(_full_registry)


@dataclass
class LoadedSpec:
    process_key: str
    spec: Any
    subprocess_specs: dict[str, Any]
    files: dict[str, Any]
    manifest: dict[str, Any]
    lanes: dict[str, str] = field(default_factory=dict)  # lane name -> role
    stages: list[str] = field(default_factory=list)


class SpecError(Exception):
    pass


def parse(
    bpmn_xml: str, process_key: str, filename: str = "process.bpmn"
) -> tuple[Any, dict[str, Any]]:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    try:
        parser.add_bpmn_str(bpmn_xml.encode("utf-8"), filename)
        return parser.get_spec(process_key), parser.get_subprocess_specs(process_key)
    except Exception as exc:  # the library raises many kinds; all mean "cannot deploy"
        raise SpecError(f"{filename}: {exc}") from exc


_cache: dict[int, LoadedSpec] = {}
_cache_lock = threading.Lock()
# Parsed specs by content hash: the same BPMN text always parses to the same spec.
_parsed: dict[str, tuple[Any, dict[str, Any]]] = {}


def parse_cached(
    bpmn_xml: str, process_key: str, content_hash: str, filename: str = "process.bpmn"
) -> tuple[Any, dict[str, Any]]:
    key = f"{process_key}:{content_hash}"
    found = _parsed.get(key)
    if found is None:
        found = _parsed[key] = parse(bpmn_xml, process_key, filename)
    return found


def cached(definition_id: int) -> LoadedSpec | None:
    """The spec of a definition if it is parsed already (no database read needed)."""
    return _cache.get(definition_id)


def cached_spec(definition: Any) -> LoadedSpec:
    """The parsed spec of a deployed definition, parsed once per process."""
    loaded = _cache.get(definition.id)
    if loaded is not None:
        return loaded
    with _cache_lock:
        loaded = _cache.get(definition.id)
        if loaded is None:
            spec, subs = parse_cached(
                definition.bpmn_xml,
                definition.key,
                definition.content_hash,
                f"{definition.key}.bpmn",
            )
            manifest = definition.manifest or {}
            loaded = LoadedSpec(
                process_key=definition.key,
                spec=spec,
                subprocess_specs=subs,
                files=definition.files,
                manifest=manifest,
                lanes=dict(manifest.get("lanes", {})),
                stages=list(manifest.get("stages", [])),
            )
            _cache[definition.id] = loaded
    return loaded


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def new_workflow(loaded: LoadedSpec, data: dict[str, Any]) -> BpmnWorkflow:
    workflow = Workflow(loaded.spec, loaded.subprocess_specs)
    # Initial data must go on the root task: setting workflow.data does not reach tasks.
    workflow.task_tree.data = dict(data)
    workflow.do_engine_steps()
    return workflow


def dump_state(workflow: BpmnWorkflow) -> str:
    _registry._encoder_mode = True
    try:
        dct = _state_serializer.to_dict(workflow)
        dct[SERIALIZER_VERSION_KEY] = _state_serializer.VERSION
        return _encoded(dct)
    finally:
        _registry._encoder_mode = False


# The library's encoder handles the objects the registry leaves for it (events, datetimes,
# sets); orjson hands it the same ones (datetimes and dataclasses passed through to it).
_ENCODER = _state_serializer._encoder_cls()
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _encoded(dct: dict[str, Any]) -> str:
    """``json.dumps(dct, cls=<the library's encoder>, separators=(",", ":"),
    ensure_ascii=False)``, written by orjson: ~20 times faster on a saved state, and the same
    text but for a float's exponent (``1e-7`` for ``1e-07``; the same number read back). The
    test of the state's text compares the two. What orjson refuses and the standard encoder
    takes (an integer beyond 64 bits, a key that is not a string, a lone surrogate) goes to
    the latter."""
    try:
        return orjson.dumps(dct, default=_ENCODER.default, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(
            dct, cls=_state_serializer._encoder_cls, separators=(",", ":"), ensure_ascii=False
        )


def data_text(data: dict[str, Any]) -> str:
    """Task data as ``dump_state`` writes it inside a saved state."""
    _registry._encoder_mode = True
    try:
        return _encoded(_registry.convert(data))
    finally:
        _registry._encoder_mode = False


# 20 digits in a row: possibly an integer beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(r"\d{20}")


def _decoded(state: str) -> dict[str, Any]:
    """``json.loads(state)``, read by orjson unless the text may hold an integer orjson would
    not keep (it reads one beyond 64 bits as a float) or something only Python's parser takes
    (NaN, a lone surrogate): those go to the latter."""
    if _LONG_DIGITS.search(state) is None:
        try:
            return orjson.loads(state)
        except orjson.JSONDecodeError:
            pass
    return json.loads(state, cls=_state_serializer.json_decoder_cls)


def load_state(loaded: LoadedSpec, state: str) -> BpmnWorkflow:
    dct = _decoded(state)
    _state_serializer.migrate(dct)
    return _state_serializer.from_dict(
        dct, spec=loaded.spec, subprocess_specs=loaded.subprocess_specs
    )


def task_spec(loaded: LoadedSpec, element_id: str) -> Any:
    """The spec of one BPMN element of the process, or None."""
    return loaded.spec.task_specs.get(element_id)


def properties(task_spec: Any) -> dict[str, str]:
    ext = getattr(task_spec, "extensions", None) or {}
    return dict(ext.get("properties", {}) or {})


def ready_human_tasks(workflow: BpmnWorkflow) -> list[SpiffTask]:
    return workflow.get_tasks(state=TaskState.READY, manual=True)


def is_ready_human(task: SpiffTask | None) -> bool:
    return task is not None and task.state == TaskState.READY and bool(task.task_spec.manual)


def find_task(workflow: BpmnWorkflow, task_id: str) -> SpiffTask | None:
    try:
        return workflow.get_task_from_id(UUID(task_id))
    except Exception:  # unknown id or malformed UUID: same answer
        return None


def is_completed_state(task: SpiffTask | None) -> bool:
    return task is not None and task.state == TaskState.COMPLETED


def element_states(workflow: BpmnWorkflow) -> tuple[set[str], set[str]]:
    """The BPMN ids of the elements the workflow went through and of those it is in now.

    Ready and started elements are active, and so is a waiting element other than a gateway
    (e.g. a timer event); an element both done and active (a loop back, a join) is active.
    """
    completed: set[str] = set()
    active: set[str] = set()
    for task in workflow.get_tasks():
        bpmn_id = getattr(task.task_spec, "bpmn_id", None)
        if not bpmn_id:
            continue
        if task.state == TaskState.COMPLETED:
            completed.add(bpmn_id)
        elif (
            task.state in (TaskState.READY, TaskState.STARTED)
            or task.state == TaskState.WAITING
            and "Gateway" not in type(task.task_spec).__name__
        ):
            active.add(bpmn_id)
    return completed - active, active


def end_stage(workflow: BpmnWorkflow) -> str | None:
    """The ``stage`` property of the end event the workflow finished on, if any."""
    for task in workflow.get_tasks(state=TaskState.COMPLETED):
        if type(task.task_spec).__name__ == "EndEvent":
            stage = properties(task.task_spec).get("stage")
            if stage:
                return stage
    return None


def next_timer_due(workflow: BpmnWorkflow) -> datetime | None:
    """The earliest time a waiting timer event is due, for the scheduler's indexed sweep."""
    due: list[datetime] = []
    for event in workflow.waiting_events():
        if str(event.event_type) not in TIMER_EVENT_TYPES:
            continue
        value = event.value
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                continue
        if isinstance(value, datetime):
            due.append(value if value.tzinfo else value.replace(tzinfo=UTC))
    return min(due) if due else None
