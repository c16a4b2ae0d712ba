"""Saved workflow state: round trips exactly, and states saved earlier keep loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select

from engine.completion import service as completion
from engine.demo import samples
from engine.establishments import service as establishments
from engine.files import service as files
from engine.runtime import instances as runtime_instances
from engine.runtime import state as runtime_state
from engine.runtime.models import ProcessInstance, Task
from engine.workflow import spiff
from tests.support.builders import cast

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "states"
ROOT = Path(__file__).resolve().parents[2]


def _snapshot(workflow) -> list[tuple[str, str, int, str]]:
    return sorted(
        (str(t.id), t.task_spec.name, t.state, json.dumps(t.data, sort_keys=True, default=str))
        for t in workflow.get_tasks()
    )


def _drive(db, make, steps: list[str], settings=None, after=None) -> int:
    """Complete ``steps`` ("!" first: the negative answer) on a new instance; ``after(session,
    instance id)`` is called at the start and after each step."""
    people = cast(make, roles=("gestor", "integrador", "datasus", "admin"))
    org, est = people.org, people.est
    actors = {lane: user.actor for lane, user in people.lanes.items() if lane != "admin"}
    admin = people.admin.actor
    with db.write() as s:
        inst = runtime_instances.start_instance(
            s,
            admin,
            org_id=org,
            process_key="credenciamento-rnds",
            establishment_cnes=est.cnes,
            portfolio_code="RIRA",
        )
        ctx = {
            "estabelecimento": est.register_data(),
            "portfolio": establishments.get_portfolio(s, "RIRA").as_data(),
        }
        ctx["certificate_file"] = files.store(
            s, actors["Gestor"], org, "c.cer", samples.demo_certificate(est.cnpj), limit=10**7
        ).id
    if after is not None:
        with db.read() as s:
            after(s, inst.id)
    for step in steps:
        negative, element = step.startswith("!"), step.lstrip("!")
        with db.write() as s:
            task = s.scalar(
                select(Task).where(
                    Task.instance_id == inst.id, Task.element_id == element, Task.state == "ready"
                )
            )
            answer = samples.answer(element, ctx, negative=negative)
            completion.complete(s, actors[task.lane], task.id, answer, settings=settings)
        if after is not None:
            with db.read() as s:
                after(s, inst.id)
    return inst.id


MIDWAY = [
    "obter_certificado_digital",
    "criar_conta_govbr",
    "solicitar_acesso_homologacao",
    "!avaliar_solicitacao_acesso",
]


def test_round_trip_is_identical(db, make, settings):
    iid = _drive(db, make, MIDWAY, settings)
    with db.read() as s:
        inst = s.get(ProcessInstance, iid)
        workflow, loaded = runtime_state.load_workflow(s, inst)
        again = spiff.load_state(loaded, spiff.dump_state(workflow))
        assert _snapshot(again) == _snapshot(workflow)
        assert spiff.dump_state(again) == inst.state
        # The spec is not in the saved state: it is stored once, on the definition.
        assert '"task_specs"' not in inst.state


def test_saved_state_fixture_keeps_loading_and_finishes() -> None:
    """A state saved by an earlier build; if the library or serializer changes, this breaks."""
    fixture = json.loads((FIXTURES / "credenciamento-rnds-midway.json").read_text(encoding="utf-8"))
    bpmn = (FIXTURES / "credenciamento-rnds-midway.bpmn").read_text(encoding="utf-8")
    spec, subs = spiff.parse(bpmn, "credenciamento-rnds")
    loaded = spiff.LoadedSpec("credenciamento-rnds", spec, subs, {}, {})
    workflow = spiff.load_state(loaded, fixture["state"])
    ready = sorted(t.task_spec.name for t in spiff.ready_human_tasks(workflow))
    assert ready == fixture["ready"]
    # It runs to the end from where it was saved.
    answers = {
        "ajustar_solicitacao_acesso": {"decision": "ajustar"},
        "avaliar_solicitacao_acesso": {"decision": "aprovada"},
        "verificar_conformidade": {"decision": "pronto"},
        "avaliar_solicitacao_producao": {"decision": "aprovada"},
    }
    for _ in range(30):
        tasks = spiff.ready_human_tasks(workflow)
        if not tasks:
            break
        task = tasks[0]
        task.set_data(**answers.get(task.task_spec.name, {}))
        task.run()
        workflow.do_engine_steps()
    assert workflow.is_completed()
    assert spiff.end_stage(workflow) == "Produção"


def write_fixture(db, make) -> None:
    """Regenerate the fixture (run by hand: see tests/fixtures/states/README.md)."""
    iid = _drive(db, make, MIDWAY)
    with db.read() as s:
        inst = s.get(ProcessInstance, iid)
        workflow, _ = runtime_state.load_workflow(s, inst)
        payload = {
            "serializer_version": json.loads(inst.state)["serializer_version"],
            "state": inst.state,
            "ready": sorted(t.task_spec.name for t in spiff.ready_human_tasks(workflow)),
        }
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "credenciamento-rnds-midway.json").write_text(
        json.dumps(payload, ensure_ascii=False, indent=1)
    )
    shutil.copy(
        ROOT / "processes" / "credenciamento-rnds.bpmn",
        FIXTURES / "credenciamento-rnds-midway.bpmn",
    )


def _library_dump(workflow) -> str:
    """The state as SpiffWorkflow's own task converter and task mapping write it (ours compute
    the same dicts faster; the text must not differ by a byte)."""
    from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

    from engine.workflow.tree import Workflow

    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = spiff._SpecLessWorkflowConverter
    registry = BpmnWorkflowSerializer.configure(config)
    spiff._SpecLessWorkflowConverter(Workflow, registry, typename="BpmnWorkflow")
    serializer = BpmnWorkflowSerializer(registry)
    registry._encoder_mode = True
    dct = serializer.to_dict(workflow)
    dct[spiff.SERIALIZER_VERSION_KEY] = serializer.VERSION
    return json.dumps(dct, cls=serializer._encoder_cls, separators=(",", ":"), ensure_ascii=False)


def test_the_state_is_written_as_the_librarys_converter_writes_it(db, make, settings):
    """At the start and after every step of a path with a refusal and its adjustment (tasks
    whose data lost keys, gained keys, changed values or is empty), the saved text is the
    library's, byte for byte."""
    seen = {"states": 0, "deletions": 0, "updates": 0}

    def same(s, iid) -> None:
        workflow, _ = runtime_state.load_workflow(s, s.get(ProcessInstance, iid))
        text = spiff.dump_state(workflow)
        assert text == _library_dump(workflow)
        seen["states"] += 1
        for task in json.loads(text)["tasks"].values():
            seen["deletions"] += bool(task["delta"].get("deletions"))
            seen["updates"] += bool(task["delta"].get("updates"))

    steps = [*MIDWAY, "ajustar_solicitacao_acesso", "avaliar_solicitacao_acesso"]
    iid = _drive(db, make, steps, settings, after=same)
    assert seen["states"] == len(steps) + 1
    assert seen["deletions"] and seen["updates"]  # both halves of the delta were exercised
    # A task that dropped some of its parent's keys and changed another (no path of the
    # process does both; a script could).
    with db.read() as s:
        workflow, _ = runtime_state.load_workflow(s, s.get(ProcessInstance, iid))
    task = next(t for t in workflow.get_tasks() if t.parent is not None and len(t.data) > 2)
    first, second = list(task.data)[:2]
    del task.data[first]
    task.data[second] = {"changed": [1, 2]}
    text = spiff.dump_state(workflow)
    assert text == _library_dump(workflow)
    delta = json.loads(text)["tasks"][str(task.id)]["delta"]
    assert first in delta["deletions"] and delta["updates"][second] == {"changed": [1, 2]}


def test_a_state_keeps_the_values_a_fast_codec_alone_would_change(db, make, settings):
    """States are written and read by orjson, with Python's json for what orjson does not
    keep: an integer beyond 64 bits stays an integer (a form stores 1e20 as one), a datetime
    comes back a datetime (the library's own encoding of it), a small float the same float."""
    from datetime import UTC, datetime

    iid = _drive(db, make, MIDWAY[:1], settings)
    with db.read() as s:
        workflow, loaded = runtime_state.load_workflow(s, s.get(ProcessInstance, iid))
    [task] = [t for t in spiff.ready_human_tasks(workflow)][:1]
    when = datetime(2026, 12, 4, 10, 30, 0, 123456, tzinfo=UTC)
    values = {"grande": 10**20, "enorme": 2**70, "limite": 2**64 - 1, "pequeno": 1e-7,
              "quando": when, "texto": "ção \u2028 🎉"}  # fmt: skip
    task.data.update(values)
    text = spiff.dump_state(workflow)
    assert json.loads(text) == json.loads(_library_dump(workflow))
    again = spiff.find_task(spiff.load_state(loaded, text), str(task.id)).data
    for name, value in values.items():
        assert again[name] == value and type(again[name]) is type(value), name
    # Without the integers beyond 64 bits, the text is orjson's, and still read back the same.
    for name in ("grande", "enorme"):
        del task.data[name]
    text = spiff.dump_state(workflow)
    again = spiff.find_task(spiff.load_state(loaded, text), str(task.id)).data
    assert again["limite"] == 2**64 - 1 and again["quando"] == when
