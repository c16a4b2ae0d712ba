"""New workflows made once per process version and stamped per instance (the bulk start).

Building a new instance's workflow runs SpiffWorkflow from the start event to the first
waiting tasks and serializes it: milliseconds of CPU, 340,000 times for a national bulk
start. For most starts the result differs from one establishment to the next only in the
task ids and the start data copied onto each task. A :class:`Stamps` builds one such
workflow for real (the *template*), recording every expression the engine evaluated on the
way (the gateways' conditions) and their results; another instance whose start data gives
the same results takes the template's saved state with fresh task ids and its own data put
where the template's was.

It refuses to stamp — and the caller builds for real — whenever that could differ from a
real build: a script ran, a timer is waiting, the workflow ended, the template's data is not
found in its state text, or the first stamp of a template disagrees with a real build of
the same instance (checked once per template, ids and times aside).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from engine.workflow import spiff
from engine.workflow.tree import Workflow

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r'"last_state_change":[0-9.eE+-]+')
DATA_SLOT = "\x00data\x00"  # where the start data goes in a template's text


class _Recording(PythonScriptEngine):
    """A script engine that remembers what it evaluated, and whether it ran a script."""

    def __init__(self) -> None:
        super().__init__()
        self.evaluated: list[tuple[str, Any]] = []
        self.ran_script = False

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        result = super().evaluate(task, expression, external_context)
        self.evaluated.append((expression, result))
        return result

    def execute(self, task: Any, script: str, external_context: Any = None) -> Any:
        self.ran_script = True
        return super().execute(task, script, external_context)


_TOKEN = re.compile(f"{UUID.pattern}|{TIME.pattern}|{DATA_SLOT}")


@dataclass
class Template:
    text: str  # the saved state with DATA_SLOT for the data and the template's own ids
    ids: list[str]  # the task ids in it
    ready: list[Any]  # the ready tasks (sync.ReadyTask), with the template's ids
    checked: bool = False  # a stamp of it matched a real build once

    def __post_init__(self) -> None:
        # The text cut at its ids, times and data slot, once: a stamp only joins the pieces.
        index = {old: i for i, old in enumerate(self.ids)}
        self.pieces: list[str | int] = []  # literal text, or the index of an id; -1 time, -2 data
        last = 0
        for m in _TOKEN.finditer(self.text):
            self.pieces.append(self.text[last : m.start()])
            token = m.group(0)
            if token == DATA_SLOT:
                self.pieces.append(-2)
            elif token.startswith('"last_state_change"'):
                self.pieces.append(-1)
            else:
                self.pieces.append(index[token])
            last = m.end()
        self.pieces.append(self.text[last:])


def _uuid4s(n: int) -> list[str]:
    """``n`` random version-4 UUIDs as text (one call for the randomness)."""
    raw = bytearray(os.urandom(16 * n))
    out = []
    for i in range(0, 16 * n, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80
        h = raw[i : i + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def canonical(state: str) -> str:
    """A saved state with its ids numbered by first appearance and its times blanked: two
    builds of the same workflow from the same data give the same text."""
    numbers: dict[str, str] = {}
    state = UUID.sub(lambda m: numbers.setdefault(m.group(0), f"id{len(numbers)}"), state)
    return TIME.sub('"last_state_change":0', state)


class Stamps:
    """Templates of one process version, each with the expressions its start evaluated and
    their results. An instance whose data gives those results takes the same path from the
    start event (the path is decided by those results alone, in that order)."""

    def __init__(self, loaded: spiff.LoadedSpec, ready_tasks: Any) -> None:
        self.loaded = loaded
        self._ready_tasks = ready_tasks  # workflow -> list of sync.ReadyTask
        # (the (expression, result) pairs of a start, its template or None: never stamped)
        self._templates: list[tuple[tuple[tuple[str, Any], ...], Template | None]] = []
        self._engine = PythonScriptEngine()
        self.stamped = self.built = 0

    def _find(self, data: dict[str, Any]) -> tuple[int, Template | None] | None:
        """The index and template whose start this data would take, or None."""
        results: dict[str, Any] = {}
        for index, (pairs, template) in enumerate(self._templates):
            try:
                for expression, result in pairs:
                    if expression not in results:
                        results[expression] = self._engine.environment.evaluate(
                            expression, dict(data), None
                        )
                    if results[expression] != result:
                        break
                else:
                    return index, template
            except Exception:  # fails on this data: a real build says why
                return None
        return None

    def _template(self, data: dict[str, Any]) -> Any:
        """Build for real with a recording engine; keep what it says as a template."""
        engine = _Recording()
        workflow = Workflow(self.loaded.spec, self.loaded.subprocess_specs, engine)
        workflow.task_tree.data = dict(data)
        workflow.do_engine_steps()
        pairs = tuple(engine.evaluated)
        template = None
        if not (
            engine.ran_script
            or workflow.is_completed()
            or spiff.next_timer_due(workflow) is not None
        ):
            state = spiff.dump_state(workflow)
            data_text = spiff.data_text(data)
            if data_text and data_text in state:
                ids = list(dict.fromkeys(UUID.findall(state.replace(data_text, ""))))
                text = state.replace(data_text, DATA_SLOT)
                template = Template(text, ids, self._ready_tasks(workflow))
        self._templates.append((pairs, template))
        return workflow

    def stamp(self, template: Template, data: dict[str, Any]) -> tuple[str, list[Any]]:
        ids = _uuid4s(len(template.ids))
        filler = {-1: f'"last_state_change":{time.time()!r}', -2: spiff.data_text(data)}
        text = "".join(
            p if isinstance(p, str) else (ids[p] if p >= 0 else filler[p]) for p in template.pieces
        )
        fresh = dict(zip(template.ids, ids, strict=True))
        ready = [t._replace(id=fresh[t.id]) for t in template.ready]
        return text, ready

    def build(self, data: dict[str, Any]) -> tuple[Any, str | None, list[Any] | None]:
        """(workflow, None, None) when built for real — the caller serializes it — or
        (None, state, ready tasks) when stamped."""
        found = self._find(data)
        if found is not None and found[1] is not None and found[1].checked:
            self.stamped += 1
            return (None, *self.stamp(found[1], data))
        self.built += 1
        if found is None:
            return self._template(data), None, None
        index, template = found
        workflow = spiff.new_workflow(self.loaded, data)
        if template is not None:  # not checked yet: this real build checks it
            state, _ready = self.stamp(template, data)
            if canonical(state) == canonical(spiff.dump_state(workflow)):
                template.checked = True
            else:
                self._templates[index] = (self._templates[index][0], None)
        return workflow, None, None
