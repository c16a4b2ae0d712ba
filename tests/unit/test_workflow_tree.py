"""The engine's workflow class (engine/workflow/tree.py) answers every task query exactly as
SpiffWorkflow's own iterator does, and runs every process exactly as a plain ``BpmnWorkflow``.

Each process of ``processes/`` is walked at random (forms filled from their schemas' choices,
so that every gateway goes every way over the seeds) twice in lockstep: once as the engine's
``Workflow`` and once as SpiffWorkflow's ``BpmnWorkflow``. After every step the two trees must
be the same, task by task, and on the engine's tree ``walk`` must give what ``TaskIterator``
gives for every filter it takes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskIterator, TaskState
from SpiffWorkflow.workflow import Workflow as SpiffWorkflowBase

from engine.workflow import spiff, tree

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
KEYS = sorted(p.stem for p in PROCESSES.glob("*.bpmn"))
SEEDS = range(24)
STATES = [
    TaskState.MAYBE, TaskState.LIKELY, TaskState.FUTURE, TaskState.WAITING, TaskState.READY,
    TaskState.STARTED, TaskState.COMPLETED, TaskState.ERROR, TaskState.CANCELLED,
    TaskState.FINISHED_MASK, TaskState.DEFINITE_MASK, TaskState.PREDICTED_MASK,
    TaskState.NOT_FINISHED_MASK, TaskState.ANY_MASK,
]  # fmt: skip


@pytest.fixture(scope="module", params=KEYS)
def process(request):
    key = request.param
    spec, subprocesses = spiff.parse((PROCESSES / f"{key}.bpmn").read_text("utf-8"), key)
    return key, spec, subprocesses


def _root_data(rng: random.Random) -> dict:
    return {
        "estabelecimento": {"cnes": "2000001", "razao_social": "Clínica Ação", "uf": "PR"},
        "portfolio": {"code": "RIRA", "operations": []},
        "possui_certificado_valido": rng.random() < 0.5,
        "possui_conta_govbr": rng.random() < 0.5,
        "possui_certificado_a1": rng.random() < 0.5,
        "certificado_atual": None,
        "eh_pec": rng.random() < 0.5,
        "iniciado_por": rng.choice(["datasus", "gestor"]),
        "token_cpf": "39053344705",
    }


def _value(schema: dict, rng: random.Random):
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if schema.get("format") == "date":  # (a timer on it has fired, or is far off)
        return rng.choice(["2020-01-02", "2099-01-02"])
    if schema.get("format") == "date-time":
        return rng.choice(["2020-01-02T10:00:00-03:00", "2099-01-02T10:00:00-03:00"])
    if schema.get("format") == "time":
        return "10:00"
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("integer", "number"):
        return rng.randint(1, 5)
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return rng.choice(["39053344705", "52998224725"])  # (equal to token_cpf or not)


def _answer(key: str, task, rng: random.Random) -> dict:
    """Data for a user task: a value for each field of its form, chosen at random."""
    props = task.task_spec.extensions.get("properties", {})
    name = props.get("formJsonSchemaFilename")
    if not name:
        return {}
    schema = json.loads((PROCESSES / key / name).read_text("utf-8"))
    return {field: _value(sub, rng) for field, sub in schema.get("properties", {}).items()}


def _shape(workflow) -> list:
    """The tree as SpiffWorkflow walks it, without the ids (each run draws its own)."""
    return [
        (t.task_spec.name, t.state, len(t._children), repr(sorted(t.data.items())))
        for t in TaskIterator(workflow.task_tree)
    ]


def _check_queries(workflow) -> int:
    checked = 0
    names = sorted({t.task_spec.name for t in workflow.tasks.values()})
    for state in STATES:
        for manual in (None, True, False):
            for spec_name in (None, *names[:3]):
                got = [t.id for t in tree.walk(workflow, state, manual, spec_name)]
                want = [
                    t.id
                    for t in BpmnTaskIterator(
                        workflow.task_tree, state=state, manual=manual, spec_name=spec_name
                    )
                ]
                assert got == want, (state, manual, spec_name)
                found = [t.id for t in tree.find(workflow, state, manual, spec_name)]
                assert found == want, (state, manual, spec_name)
                checked += 1
    assert workflow.get_tasks(state=TaskState.READY) == BpmnWorkflow.get_tasks(
        workflow, state=TaskState.READY
    )
    return checked


def _step(key: str, workflow, index: int, data: dict) -> None:
    ready = workflow.get_tasks(state=TaskState.READY, manual=True)
    task = ready[index]
    task.set_data(**json.loads(json.dumps(data)))
    task.run()
    workflow.do_engine_steps()


def test_every_process_runs_as_in_spiffworkflow_and_every_query_answers_alike(process):
    key, spec, subprocesses = process
    steps = 0
    outcomes = set()
    for seed in SEEDS:
        rng = random.Random(f"{key}-{seed}")
        data = _root_data(rng)
        ours = tree.Workflow(spec, subprocesses)
        theirs = BpmnWorkflow(spec, subprocesses)
        for workflow in (ours, theirs):
            workflow.task_tree.data = json.loads(json.dumps(data))
            workflow.do_engine_steps()
        assert tree.walkable(ours)
        for _ in range(40):
            assert _shape(ours) == _shape(theirs)
            _check_queries(ours)
            ready = ours.get_tasks(state=TaskState.READY, manual=True)
            if ours.is_completed() or not ready:
                break
            index = rng.randrange(len(ready))
            answer = _answer(key, ready[index], rng)
            errors = []
            for workflow in (ours, theirs):
                try:
                    _step(key, workflow, index, answer)
                    errors.append(None)
                except Exception as exc:  # the same data must fail alike in both
                    errors.append(type(exc).__name__)
            assert errors[0] == errors[1]
            steps += 1
            if errors[0]:
                break
        outcomes.add("completed" if ours.is_completed() else "open")
    # The walks went somewhere: many steps, and some instances to the end.
    assert steps >= 2 * len(SEEDS), steps
    assert "completed" in outcomes, outcomes


def test_a_walkable_query_takes_the_walk_and_any_other_goes_to_spiffworkflow(monkeypatch):
    key = "credenciamento-rnds"
    spec, subprocesses = spiff.parse((PROCESSES / f"{key}.bpmn").read_text("utf-8"), key)
    workflow = tree.Workflow(spec, subprocesses)
    workflow.task_tree.data = {"possui_certificado_valido": False, "possui_conta_govbr": False}
    workflow.do_engine_steps()
    lane = workflow.get_tasks(state=TaskState.READY, manual=True)[0].task_spec.lane

    def refuse(*_args, **_kwargs):
        raise AssertionError("SpiffWorkflow's iterator was used")

    monkeypatch.setattr(BpmnTaskIterator, "__init__", refuse)
    monkeypatch.setattr(TaskIterator, "__init__", refuse)
    assert workflow.get_tasks(state=TaskState.READY, manual=True)
    workflow.update_waiting_tasks()
    with pytest.raises(AssertionError, match="iterator was used"):
        workflow.get_tasks(state=TaskState.READY, lane=lane)
    with pytest.raises(AssertionError, match="iterator was used"):
        workflow.get_tasks(workflow.task_tree, state=TaskState.READY)
    monkeypatch.setattr(tree, "MAX_TASKS", len(workflow.tasks) - 1)
    assert not tree.walkable(workflow)
    with pytest.raises(AssertionError, match="iterator was used"):
        workflow.get_tasks(state=TaskState.READY)
    with pytest.raises(AssertionError, match="iterator was used"):
        workflow.update_waiting_tasks()


def test_the_engines_workflow_is_saved_and_read_back_as_a_bpmn_workflow():
    key = "credenciamento-rnds"
    loaded = spiff.LoadedSpec(
        key, *spiff.parse((PROCESSES / f"{key}.bpmn").read_text("utf-8"), key), {}, {}
    )
    ours = spiff.new_workflow(loaded, {"possui_certificado_valido": False})
    assert type(ours) is tree.Workflow
    state = spiff.dump_state(ours)
    assert json.loads(state)["typename"] == "BpmnWorkflow"
    assert type(spiff.load_state(loaded, state)) is tree.Workflow
    # A state written from SpiffWorkflow's own class (all saved before this class) reads back
    # as the engine's, and writes the same text.
    plain = BpmnWorkflow(loaded.spec, loaded.subprocess_specs)
    plain.task_tree.data = {"possui_certificado_valido": False}
    plain.do_engine_steps()
    text = spiff.dump_state(plain)
    again = spiff.load_state(loaded, text)
    assert type(again) is tree.Workflow
    assert spiff.dump_state(again) == text
    full = spiff.full_serializer.to_dict(ours)
    assert type(spiff.full_serializer.from_dict(full)) is tree.Workflow


def test_a_tree_changed_during_the_walk_is_walked_as_spiffworkflow_walks_it():
    """Each task's children are taken when the task is reached, before it is handed out, as
    ``TaskIterator`` takes them: a caller that changes the tree as it goes (SpiffWorkflow's
    ``update_waiting_tasks`` does) meets the same tasks in both."""
    key = "credenciamento-rnds"
    loaded = spiff.LoadedSpec(
        key, *spiff.parse((PROCESSES / f"{key}.bpmn").read_text("utf-8"), key), {}, {}
    )
    state = spiff.dump_state(
        spiff.new_workflow(loaded, {"possui_certificado_valido": True, "possui_conta_govbr": False})
    )

    def visited(iterate) -> list:
        workflow = spiff.load_state(loaded, state)  # the same tree, ids and all, each time
        seen = []
        for task in iterate(workflow):
            seen.append(task.id)
            children = task.children
            if children:
                children[0]._children = []  # not reached yet: its branch is cut in both
            task._children = []  # reached: its children were taken already
        return seen

    ours = visited(lambda w: tree.walk(w))
    assert ours == visited(lambda w: TaskIterator(w.task_tree))
    assert ours != visited(lambda w: list(tree.walk(w)))  # (a walk taken whole first differs)


def test_queries_answer_alike_on_trees_in_any_states():
    """``walk`` and ``find`` against SpiffWorkflow's iterator on trees whose tasks were put in
    states at random: branches the walk does not descend into (a predicted task above a
    definite one, a definite one above a finished one), a lone match out of the walk's reach."""
    key = "credenciamento-rnds"
    spec, subprocesses = spiff.parse((PROCESSES / f"{key}.bpmn").read_text("utf-8"), key)
    values = [s for s in STATES if s & (s - 1) == 0]  # the states, not the masks
    for seed in range(200):
        rng = random.Random(seed)
        workflow = tree.Workflow(spec, subprocesses)
        workflow.task_tree.data = {"possui_certificado_valido": False, "possui_conta_govbr": False}
        workflow.do_engine_steps()
        for task in rng.sample(list(workflow.tasks.values()), rng.randint(1, 6)):
            task._state = rng.choice(values)
        _check_queries(workflow)
        assert _woken(workflow, tree.Workflow) == _woken(workflow, SpiffWorkflowBase)


def _woken(workflow, cls) -> list:
    """The tasks ``cls.update_waiting_tasks`` updates, in order (each update only noted)."""
    woken = []
    specs = {task.task_spec for task in workflow.tasks.values()}
    for spec in specs:
        spec._update = woken.append
    try:
        cls.update_waiting_tasks(workflow)
    finally:
        for spec in specs:
            del spec._update
    return [task.id for task in woken]
