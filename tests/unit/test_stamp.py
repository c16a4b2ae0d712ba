"""Stamped new workflows (engine/workflow/stamp.py): the saved state a real build gives,
with the instance's own ids and data, on every start path — and no stamp where a start runs
a script."""

from __future__ import annotations

from pathlib import Path

from engine.runtime.sync import ready_tasks
from engine.workflow import spiff, stamp

ROOT = Path(__file__).resolve().parents[2]
KEY = "credenciamento-rnds"


def _loaded(xml: str, key: str = KEY) -> spiff.LoadedSpec:
    spec, subs = spiff.parse(xml, key)
    return spiff.LoadedSpec(key, spec, subs, {}, {})


def _data(i: int, certificate: bool) -> dict:
    return {
        "estabelecimento": {"cnes": str(2000000 + i), "razao_social": f"Clínica Ação {i}"},
        "portfolio": {"code": "RIRA"},
        "possui_certificado_valido": certificate,
        "possui_conta_govbr": i % 3 == 0,
        "certificado_atual": None,
    }


def test_every_start_path_stamps_what_a_real_build_gives():
    loaded = _loaded((ROOT / "processes" / f"{KEY}.bpmn").read_text(encoding="utf-8"))
    stamps = stamp.Stamps(loaded, ready_tasks)
    seen: set[str] = set()
    for i in range(40):
        data = _data(i, certificate=i % 2 == 0)
        workflow, state, ready = stamps.build(data)
        if workflow is not None:
            continue
        real = spiff.dump_state(spiff.new_workflow(loaded, data))
        assert stamp.canonical(state) == stamp.canonical(real)
        restored = spiff.load_state(loaded, state)
        assert restored.task_tree.data == data
        ids = {str(t.id) for t in spiff.ready_human_tasks(restored)}
        assert ids == {t.id for t in ready} and not ids & seen
        seen |= ids
    # Three start paths. Without a certificate, and with one but no gov.br account: a
    # template and its check each, then stamps. With both, the start reaches the homologation
    # request, whose form runs a script as it opens: never stamped, 7 real builds.
    paths = {tuple(r for _, r in pairs): t is not None for pairs, t in stamps._templates}
    assert paths == {(False,): True, (True, False): True, (True, True): False}
    assert stamps.built == 2 + 2 + 7 and stamps.stamped == 40 - 11


SCRIPTED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="com-script" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="calc"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>n = len(nome)</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="ver"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="calc"/>
    <bpmn:sequenceFlow id="f2" sourceRef="calc" targetRef="ver"/>
    <bpmn:sequenceFlow id="f3" sourceRef="ver" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_start_that_runs_a_script_is_never_stamped():
    loaded = _loaded(SCRIPTED, "com-script")
    stamps = stamp.Stamps(loaded, ready_tasks)
    for i in range(5):
        workflow, state, _ready = stamps.build({"nome": "x" * i})
        assert workflow is not None and state is None
        assert workflow.last_task is not None
        assert [t.data["n"] for t in spiff.ready_human_tasks(workflow)] == [i]
    assert stamps.stamped == 0
