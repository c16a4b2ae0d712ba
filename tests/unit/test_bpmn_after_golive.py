"""The processes after go-live, run in memory: Alteração de credencial, Encerramento de
credencial and Transferência de titularidade (processes/*.bpmn), and the ``credential`` block
of their process.json and of the renewal's.

Pure SpiffWorkflow 3.2.0 plus the server's own form validation, as in
test_bpmn_pec_and_renewal.py: every form goes through ``validate_form`` (read-only fields keep
the process's values, as the engine does), loses its ``x-secret`` values before the workflow
sees it, and a certificate field gains the ``<field>_sha256`` the engine adds. Every path of
every process is walked to its end event. ``apply_credential`` below is a reference reading of
the credential block documented in docs/adding-a-process.md: each walk also says what the
credential is after each step — above all, that nothing changes before DATASUS approves.

What these tests pin down about the library (checked by running it):

- A ``timeDuration`` boundary timer is armed when its task becomes READY and is due that long
  after (calendar time, read from ``datetime.now`` in SpiffWorkflow's timer module);
  ``waiting_events()`` reports it as a ``DurationTimerEventDefinition`` with the due instant.
- A start event runs no ``preScript``: a default for a start variable read by the first gateway
  is written in the condition itself (``globals().get("iniciado_por")``).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.process import VALIDATOR
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine.definitions.check import check_paths
from engine.forms import (
    FileInfo,
    FormContext,
    FormInvalid,
    check_form,
    check_form_schema,
    secret_fields,
    validate_form,
)
from tests.support.bpmn import FLOW_NODE_TAGS, NS, assert_diagram_interchange

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"

ALT = "alteracao-credencial"
ENC = "encerramento-credencial"
TRA = "transferencia-titularidade"
REN = "renovacao-certificado"
NEW = (ALT, ENC, TRA)
WITH_CREDENTIAL = (ALT, ENC, TRA, REN)

BRT = timezone(timedelta(hours=-3))
MORNING = datetime(2026, 3, 10, 10, 0, tzinfo=BRT)

TITLES = {
    ALT: "Alteração de credencial",
    ENC: "Encerramento de credencial",
    TRA: "Transferência de titularidade",
}
LANES = {
    ALT: {"DATASUS": "datasus", "Gestor": "gestor", "Integrador": "integrador"},
    ENC: {"DATASUS": "datasus", "Gestor": "gestor", "Integrador": "integrador"},
    TRA: {"DATASUS": "datasus", "Gestor": "gestor"},
}
# bpmn id -> (lane, stage, SLA in business days, form name)
TASKS = {
    ALT: {
        "solicitar_alteracao": ("Gestor", "Pedido de alteração", 5, "solicitar-alteracao"),
        "avaliar_alteracao": ("DATASUS", "Alteração em análise", 3, "avaliar-alteracao"),
        "ajustar_alteracao": (
            "Gestor",
            "Reprovada — ajuste pendente",
            5,
            "ajustar-alteracao",
        ),
        "aplicar_alteracao_conector": (
            "Integrador",
            "Aplicação no conector",
            5,
            "aplicar-alteracao-conector",
        ),
    },
    ENC: {
        "solicitar_encerramento": (
            "Gestor",
            "Pedido de encerramento",
            5,
            "solicitar-encerramento",
        ),
        "avaliar_encerramento": (
            "DATASUS",
            "Encerramento em análise",
            3,
            "avaliar-encerramento",
        ),
        "registrar_encerramento": (
            "DATASUS",
            "Encerramento pelo DATASUS",
            3,
            "registrar-encerramento",
        ),
        "tomar_ciencia_encerramento": (
            "Gestor",
            "Ciência do gestor",
            5,
            "tomar-ciencia-encerramento",
        ),
        "desativar_integracao": (
            "Integrador",
            "Desativação da integração",
            5,
            "desativar-integracao",
        ),
    },
    TRA: {
        "indicar_novo_titular": (
            "Gestor",
            "Indicação do novo titular",
            5,
            "indicar-novo-titular",
        ),
        "aceitar_titularidade": ("Gestor", "Aguardando aceite", 5, "aceitar-titularidade"),
        "avaliar_transferencia": (
            "DATASUS",
            "Transferência em análise",
            3,
            "avaliar-transferencia",
        ),
    },
}
ENDS = {
    ALT: {
        "fim_alteracao_aprovada": "Alteração aprovada",
        "fim_alteracao_abandonada": "Alteração abandonada",
    },
    ENC: {
        "fim_credencial_encerrada": "Credencial encerrada",
        "fim_pedido_recusado": "Pedido de encerramento recusado",
    },
    TRA: {
        "fim_titularidade_transferida": "Titularidade transferida",
        "fim_transferencia_recusada": "Transferência recusada",
    },
}
# boundary timer -> (the task it interrupts, duration expression, days, where it leads)
TIMERS = {
    ALT: {"timer_ajuste_expirado": ("ajustar_alteracao", '"P30D"', 30, "fim_alteracao_abandonada")},
    ENC: {
        "timer_ciencia_expirada": (
            "tomar_ciencia_encerramento",
            '"P10D"',
            10,
            "desativar_integracao",
        )
    },
    TRA: {
        "timer_aceite_expirado": (
            "aceitar_titularidade",
            '"P15D"',
            15,
            "fim_transferencia_recusada",
        )
    },
}
# gateway -> its one condition (the other flow is the default)
CONDITIONS = {
    ALT: {
        "gw_avaliacao_alteracao": 'decision == "reprovada"',
        "gw_ajustar_ou_desistir": 'decision == "desistir"',
    },
    ENC: {
        "gw_origem": 'globals().get("iniciado_por") == "datasus"',
        "gw_avaliacao_encerramento": 'decision == "reprovada"',
    },
    TRA: {
        "gw_aceite": 'decision == "recusada"',
        "gw_avaliacao_transferencia": 'decision == "reprovada"',
    },
}

# The credential's fields a process may read at start or write (docs/adding-a-process.md).
CREDENTIAL_FIELDS = {
    "id": "int",
    "status": "text",
    "requester_id": "text",
    "request_numbers": "list",
    "operations": "list",
    "ip_start": "text",
    "ip_end": "text",
    "system_name": "text",
    "system_version": "text",
    "children": "list",
    "gestor_name": "text",
    "gestor_cpf": "text",
    "gestor_email": "text",
    "organization": "text",
    "certificate_sha256": "text",
    "is_pec": "bool",
    "ended_on": "text",
    "end_reason": "text",
}
STATUSES = {
    "em_solicitacao",
    "homologacao",
    "em_analise_producao",
    "producao",
    "suspensa",
    "encerrada",
}
KINDS = {ALT: "change", ENC: "withdrawal", TRA: "transfer", REN: "renewal"}

# ------------------------------------------------------------------ sample data

ESTABELECIMENTO = {
    "cnes": "2077485",
    "cnpj": "11222333000181",
    "razao_social": "Hospital Estadual Exemplo",
    "nome_fantasia": "HEE",
    "uf": "GO",
    "municipio": "Goiânia",
    "cep": "74000000",
    "endereco": "Rua 1",
    "telefone": "6233334444",
    "email": "contato@hee.example",
}
UF_OF = {"0011274": "GO", "2078775": "GO", "2361787": "GO", "7654321": "PR"}
TOKEN = {"operacao": "/token", "metodo": "POST"}
BUNDLE = {"operacao": "/Bundle", "metodo": "POST"}
PATIENT = {"operacao": "/fhir/r4/Patient", "metodo": "GET"}
CONTEXTO = {"operacao": "/contexto-atendimento", "metodo": "POST"}
PORTFOLIO = {"code": "RIRA", "name": "RIRA", "operations": [TOKEN, BUNDLE, PATIENT, CONTEXTO]}
CREDENTIAL = {
    "id": 7,
    "status": "producao",
    "requester_id": "40111",
    "request_numbers": ["3804/2024"],
    "operations": [TOKEN, BUNDLE],
    "ip_start": "200.130.10.1",
    "ip_end": "200.130.10.20",
    "system_name": "ProntoHosp",
    "system_version": "4.2",
    "children": ["0011274", "2078775"],
    "gestor_name": "Maria da Silva",
    "gestor_cpf": "52998224725",
    "gestor_email": "maria@hee.example",
    "organization": "sesa-go",
    "certificate_sha256": "ab" * 32,
    "is_pec": False,
    "ended_on": "",
    "end_reason": "",
}
PEDIDO = {  # the change: new IP range and version, one more operation, one child swapped
    "ip_inicial": "200.130.20.1",
    "ip_final": "200.130.20.30",
    "sistema_nome": "ProntoHosp",
    "sistema_versao": "5.0",
    "operacoes": [TOKEN, BUNDLE, PATIENT],
    "filhos": [{"cnes": "0011274"}, {"cnes": "2361787"}],
    "justificativa": "Novo provedor de internet e nova versão do sistema.",
    "confirmacao": True,
}
NOVO_GESTOR = {
    "destino": "membro",
    "novo_gestor_nome": "João Souza",
    "novo_gestor_cpf": "390.533.447-05",
    "novo_gestor_email": "joao@hee.example",
    "justificativa": "Troca de gestão do hospital.",
    "confirmacao": True,
}

# ----------------------------------------------------------------------- helpers


def _load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def manifest(pid):
    return _load_json(PROCESSES / pid / "process.json")


def _parse(pid):
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_files([str(PROCESSES / f"{pid}.bpmn")])
    return parser.get_spec(pid), parser.get_subprocess_specs(pid)


@pytest.fixture(scope="module")
def specs():
    return {pid: _parse(pid) for pid in WITH_CREDENTIAL}


class _Clock:
    def __init__(self, now: datetime):
        self.now = now


@pytest.fixture
def clock(monkeypatch):
    """The clock SpiffWorkflow's timers read (``datetime.now`` in its timer module)."""
    state = _Clock(MORNING)

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return state.now.astimezone(tz) if tz else state.now.replace(tzinfo=None)

    monkeypatch.setattr(spiff_timer, "datetime", FakeDatetime)
    return state


def _lookup_file(file_id: str) -> FileInfo:
    # ids with "pfx" are uploads that came with their key (.pfx/.p12); the rest are .cer
    kind = "certificate_with_key" if "pfx" in file_id else "certificate"
    return FileInfo(id=file_id, content_type="application/pkix-cert", kind=kind)


def form_context(data=None) -> FormContext:
    return FormContext(
        lookup_file=_lookup_file,
        establishment_uf="GO",
        lookup_establishment_uf=UF_OF.get,
        data=data or {},
    )


def fingerprint(file_id: str) -> str:
    return hashlib.sha256(file_id.encode()).hexdigest()


def source_value(source, data):
    """A value named by an update's ``set``/``append`` (see docs/adding-a-process.md)."""
    if isinstance(source, str):
        return data.get(source)
    if "value" in source:
        return source["value"]
    items = data.get(source["field"])
    return None if items is None else [item[source["item"]] for item in items]


def apply_credential(block, task_id, data, credential):
    """The credential after the user task ``task_id`` was completed with ``data`` (the task's
    data after completion): each update of the task whose ``when`` matches sets and appends its
    fields; an empty or missing source leaves the field as it was."""
    new = copy.deepcopy(credential)
    for update in block.get("updates", []):
        if update["on_task"] != task_id:
            continue
        wanted = update.get("when", {})
        if any(data.get(k) not in (v if isinstance(v, list) else [v]) for k, v in wanted.items()):
            continue
        for name, source in update.get("set", {}).items():
            value = source_value(source, data)
            if value not in (None, ""):
                new[name] = copy.deepcopy(value)
        for name, source in update.get("append", {}).items():
            value = source_value(source, data)
            if value not in (None, "") and value not in new.get(name, []):
                new[name] = [*new.get(name, []), value]
    return new


class Run:
    """One instance walked the way the engine does, with its credential beside it."""

    def __init__(self, specs, pid, credential=CREDENTIAL, **start):
        spec, subprocesses = specs[pid]
        self.pid = pid
        self.block = manifest(pid)["credential"]
        self.credential = copy.deepcopy(credential)
        self.wf = BpmnWorkflow(spec, subprocesses)
        data = {
            "possui_certificado_valido": True,
            "possui_conta_govbr": True,
            "estabelecimento": dict(ESTABELECIMENTO),
            "portfolio": copy.deepcopy(PORTFOLIO),
        }
        if credential is not None:  # what the runtime gives from the credential at start
            for variable, field in self.block["start"].items():
                data[variable] = copy.deepcopy(credential[field])
        data.update(start)
        self.wf.task_tree.data.update(data)
        self.wf.do_engine_steps()

    def ready(self, lane=None):
        tasks = self.wf.get_tasks(state=TaskState.READY, manual=True)
        for t in tasks:
            assert t.task_spec.lane in manifest(self.pid)["lanes"], t.task_spec.bpmn_id
        return [t for t in tasks if lane is None or t.task_spec.lane == lane]

    def ready_ids(self):
        return sorted(t.task_spec.bpmn_id for t in self.ready())

    def task(self, bpmn_id):
        matches = [t for t in self.ready() if t.task_spec.bpmn_id == bpmn_id]
        assert len(matches) == 1, f"{bpmn_id} not READY; READY: {self.ready_ids()}"
        return matches[0]

    def schema(self, bpmn_id):
        props = self.wf.spec.task_specs[bpmn_id].extensions["properties"]
        return _load_json(PROCESSES / self.pid / props["formJsonSchemaFilename"])

    def complete(self, bpmn_id, **submitted):
        task = self.task(bpmn_id)
        if self.pid in TASKS:
            assert task.task_spec.lane == TASKS[self.pid][bpmn_id][0]
        schema = self.schema(bpmn_id)
        submitted = copy.deepcopy(submitted)
        for name, prop in schema["properties"].items():  # read-only: the process's value
            if prop.get("readOnly"):
                submitted.pop(name, None)
                if task.data.get(name) is not None:
                    submitted[name] = task.data[name]
        cleaned = validate_form(schema, submitted, form_context(task.data))
        secret = secret_fields(schema)
        public = {k: v for k, v in cleaned.items() if k not in secret}
        for name, prop in schema["properties"].items():
            accepted = {"certificate", "certificate_with_key"} & set(prop.get("x-accept", []))
            if accepted and public.get(name):
                public[f"{name}_sha256"] = fingerprint(public[name])
        task.set_data(**public)
        task.run()
        self.credential = apply_credential(self.block, bpmn_id, task.data, self.credential)
        self.wf.do_engine_steps()
        return task

    def ended_at(self):
        return sorted(
            t.task_spec.bpmn_id
            for t in self.wf.get_tasks(state=TaskState.COMPLETED)
            if type(t.task_spec).__name__ == "EndEvent"
        )

    def completed(self):
        return [
            t.task_spec.bpmn_id
            for t in self.wf.get_tasks(state=TaskState.COMPLETED)
            if type(t.task_spec).__name__ == "UserTask"
        ]

    def states(self, bpmn_id):
        return [
            TaskState.get_name(t.state)
            for t in self.wf.get_tasks()
            if t.task_spec.bpmn_id == bpmn_id
        ]

    def timers(self):
        """(type, due instant) of each waiting timer."""
        return [
            (e.event_type, datetime.fromisoformat(e.value))
            for e in self.wf.waiting_events()
            if "Time" in e.event_type
        ]

    def fire_due_timers(self):
        """What the scheduler does for a due instance."""
        self.wf.refresh_timers()
        self.wf.do_engine_steps()

    def assert_ended(self, end_event):
        assert self.wf.is_completed()
        assert self.wf.get_tasks(state=TaskState.NOT_FINISHED_MASK) == []
        assert self.ended_at() == [end_event]
        assert self.timers() == []


def _invalid(pid, form, data, ctx_data=None):
    schema = _load_json(PROCESSES / pid / f"{form}.schema.json")
    with pytest.raises(FormInvalid) as exc:
        validate_form(schema, data, form_context(ctx_data))
    return exc.value.errors


# -------------------------------------------------------------------- parsing


@pytest.mark.parametrize("pid", NEW)
def test_parses_with_spiff_validator(specs, pid):
    spec, subprocesses = specs[pid]
    assert spec.name == pid
    assert spec.description == TITLES[pid]
    assert subprocesses == {}
    lanes = {s.lane for s in spec.task_specs.values() if s.bpmn_id is not None}
    assert lanes == set(LANES[pid])
    users = {s.bpmn_id for s in spec.task_specs.values() if type(s).__name__ == "UserTask"}
    assert users == set(TASKS[pid])


@pytest.mark.parametrize("pid", NEW)
def test_collaboration_and_lanes(pid):
    tree = etree.parse(str(PROCESSES / f"{pid}.bpmn"))
    participants = tree.findall(".//bpmn:collaboration/bpmn:participant", NS)
    assert len(participants) == 1
    assert participants[0].get("processRef") == pid
    assert participants[0].get("name") == TITLES[pid]
    process = tree.find(f".//bpmn:process[@id='{pid}']", NS)
    assert process.get("isExecutable") == "true"
    assert process.get("name") == TITLES[pid]
    assert len(process.find("bpmn:documentation", NS).text.strip()) > 100
    found = process.findall("./bpmn:laneSet/bpmn:lane", NS)
    assert [lane.get("name") for lane in found] == list(LANES[pid])  # DATASUS on top
    node_ids = [n.get("id") for tag in FLOW_NODE_TAGS for n in process.findall(f"bpmn:{tag}", NS)]
    refs = [r.text for r in process.findall("./bpmn:laneSet/bpmn:lane/bpmn:flowNodeRef", NS)]
    assert sorted(refs) == sorted(node_ids)  # every flow node in exactly one lane


def test_model_checks_pass():
    assert check_paths([PROCESSES / f"{pid}.bpmn" for pid in WITH_CREDENTIAL]) == []


@pytest.mark.parametrize("pid", NEW)
def test_diagram_interchange(pid):
    assert_diagram_interchange(PROCESSES / f"{pid}.bpmn", pid)


@pytest.mark.parametrize("pid", NEW)
def test_user_tasks_lanes_properties_and_forms(specs, pid):
    spec, _ = specs[pid]
    stages = manifest(pid)["stages"]
    referenced = set()
    for bpmn_id, (lane, stage, sla, form) in TASKS[pid].items():
        task_spec = spec.task_specs[bpmn_id]
        assert task_spec.lane == lane, bpmn_id
        props = task_spec.extensions["properties"]
        assert props == {
            "formJsonSchemaFilename": f"{form}.schema.json",
            "formUiSchemaFilename": f"{form}.ui.json",
            "stage": stage,
            "slaBusinessDays": str(sla),
        }, bpmn_id
        assert stage in stages
        assert task_spec.documentation and len(task_spec.documentation) > 120, bpmn_id
        referenced |= {props["formJsonSchemaFilename"], props["formUiSchemaFilename"]}
        schema = _load_json(PROCESSES / pid / props["formJsonSchemaFilename"])
        assert schema["title"] == task_spec.bpmn_name, bpmn_id
    # every form file in the folder is used, and every used one exists
    # the forms, beside the catalogs (i18n/) and the terms (terms/) a process may keep
    files = {
        p.name for p in (PROCESSES / pid).iterdir() if p.is_file() and p.name != "process.json"
    }
    assert files == referenced


@pytest.mark.parametrize("pid", NEW)
def test_end_events(specs, pid):
    spec, _ = specs[pid]
    ends = {
        s.bpmn_id: (s.bpmn_name, s.extensions["properties"])
        for s in spec.task_specs.values()
        if type(s).__name__ == "EndEvent"
    }
    assert ends == {eid: (name, {"stage": name}) for eid, name in ENDS[pid].items()}


@pytest.mark.parametrize("pid", NEW)
def test_boundary_timers(specs, pid):
    spec, _ = specs[pid]
    timers = {s.bpmn_id: s for s in spec.task_specs.values() if type(s).__name__ == "BoundaryEvent"}
    assert set(timers) == set(TIMERS[pid])
    tree = etree.parse(str(PROCESSES / f"{pid}.bpmn"))
    for bpmn_id, (host, duration, days, target) in TIMERS[pid].items():
        assert duration == f'"P{days}D"'
        timer = timers[bpmn_id]
        assert type(timer.event_definition).__name__ == "DurationTimerEventDefinition"
        assert timer.event_definition.expression == duration  # a quoted literal
        assert timer.cancel_activity is True
        assert timer.documentation
        node = tree.find(f".//bpmn:boundaryEvent[@id='{bpmn_id}']", NS)
        assert node.get("attachedToRef") == host
        [flow] = tree.findall(f".//bpmn:sequenceFlow[@sourceRef='{bpmn_id}']", NS)
        assert flow.get("targetRef") == target
        # in the lane of the task it interrupts
        lane = tree.find(f".//bpmn:lane[bpmn:flowNodeRef='{bpmn_id}']", NS)
        assert lane.get("name") == TASKS[pid][host][0]


@pytest.mark.parametrize("pid", NEW)
def test_gateways_defaults_and_conditions(pid):
    tree = etree.parse(str(PROCESSES / f"{pid}.bpmn"))
    flows = {f.get("id"): f for f in tree.findall(".//bpmn:process/bpmn:sequenceFlow", NS)}
    conditions = {}
    for gw in tree.findall(".//bpmn:process/bpmn:exclusiveGateway", NS):
        outgoing = [flows[o.text] for o in gw.findall("bpmn:outgoing", NS)]
        assert len(outgoing) == 2, gw.get("id")
        default = gw.get("default")
        assert default in {f.get("id") for f in outgoing}, gw.get("id")
        for flow in outgoing:
            cond = flow.find("bpmn:conditionExpression", NS)
            assert flow.get("name"), flow.get("id")
            if flow.get("id") == default:
                assert cond is None
            else:
                conditions[gw.get("id")] = cond.text.strip()
    assert conditions == CONDITIONS[pid]


@pytest.mark.parametrize("pid", NEW)
def test_process_json(specs, pid):
    spec, _ = specs[pid]
    data = manifest(pid)
    assert data["title"] == TITLES[pid]
    assert data["lanes"] == LANES[pid]
    assert data["per_portfolio"] is True  # one credential per establishment and portfolio
    assert {"admin", "gestor"} <= set(data["start_roles"])
    used = [
        s.extensions["properties"]["stage"]
        for s in spec.task_specs.values()
        if getattr(s, "extensions", {}).get("properties", {}).get("stage")
    ]
    assert set(used) == set(data["stages"])
    assert len(data["stages"]) == len(set(data["stages"]))
    assert set(data) == {
        "title",
        "lanes",
        "start_roles",
        "per_portfolio",
        "start_variables",
        "stages",
        "start_data",
        "form_context",
        "header_fields",
        "rejection",
        "credential",
    }
    # what the runtime gives at start and shows beside the forms (engine/credentialing)
    assert data["start_data"] == ["establishment", "portfolio"]
    assert data["form_context"] == ["estabelecimento", "portfolio"]  # operations to choose from
    assert data["header_fields"] == ["numero_solicitacao", "identificador_solicitante"]
    negative = ["reprovada", "recusada"] if pid == TRA else ["reprovada"]
    assert data["rejection"] == {"field": "decision", "values": negative, "reason": "motivo"}


def test_who_may_start():
    assert manifest(ALT)["start_roles"] == ["admin", "gestor", "integrador"]
    # DATASUS starts a withdrawal of its own (iniciado_por = datasus)
    assert manifest(ENC)["start_roles"] == ["admin", "gestor", "datasus"]
    choices = manifest(ENC)["credential"]["start_choices"]
    assert choices == {
        "iniciado_por": {"estabelecimento": ["admin", "gestor"], "datasus": ["datasus"]}
    }
    assert manifest(TRA)["start_roles"] == ["admin", "gestor"]


# ------------------------------------------------------ the credential block


def _produced_upstream(pid, spec, task_id):
    """Names a condition or an update at ``task_id`` may read: start variables, the forms and
    scripts of the task and of every task before it."""
    tree = etree.parse(str(PROCESSES / f"{pid}.bpmn"))
    preds: dict[str, set[str]] = {}
    for flow in tree.findall(".//bpmn:process/bpmn:sequenceFlow", NS):
        preds.setdefault(flow.get("targetRef"), set()).add(flow.get("sourceRef"))
    for event in tree.findall(".//bpmn:process/bpmn:boundaryEvent", NS):
        preds.setdefault(event.get("id"), set()).add(event.get("attachedToRef"))
    seen, stack = {task_id}, [task_id]
    while stack:
        for p in preds.get(stack.pop(), ()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    names = set(manifest(pid)["start_variables"]) | {"estabelecimento", "portfolio"}
    for node_id in seen:
        task_spec = spec.task_specs.get(node_id)
        props = getattr(task_spec, "extensions", {}).get("properties", {})
        if "formJsonSchemaFilename" in props:
            schema = _load_json(PROCESSES / pid / props["formJsonSchemaFilename"])
            for name, prop in schema["properties"].items():
                names.add(name)
                if {"certificate", "certificate_with_key"} & set(prop.get("x-accept", [])):
                    names.add(f"{name}_sha256")  # added by the engine
        for key in ("preScript", "postScript"):
            script = getattr(task_spec, "extensions", {}).get(key) or ""
            names |= {
                n.id
                for n in ast.walk(ast.parse(script))
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            }
    return names


@pytest.mark.parametrize("pid", WITH_CREDENTIAL)
def test_credential_block_is_well_formed(specs, pid):
    spec, _ = specs[pid]
    data = manifest(pid)
    block = data["credential"]
    assert block["kind"] == KINDS[pid]
    assert set(block) <= {"kind", "requires_status", "start", "start_choices", "assign", "updates"}
    assert block["requires_status"] and set(block["requires_status"]) <= STATUSES
    assert "encerrada" not in block["requires_status"]
    # start: start variable <- credential field, each declared as a start variable
    assert block["start"]["credential_id"] == "id"
    assert set(block["start"]) <= set(data["start_variables"])
    assert set(block["start"].values()) <= set(CREDENTIAL_FIELDS)
    for variable in block.get("start_choices", {}):
        assert variable in data["start_variables"]
        for roles in block["start_choices"][variable].values():
            assert set(roles) <= set(data["start_roles"])
    user_tasks = {s.bpmn_id for s in spec.task_specs.values() if type(s).__name__ == "UserTask"}
    for task_id, field in block.get("assign", {}).items():
        assert task_id in user_tasks
        assert field in _produced_upstream(pid, spec, task_id) - {task_id}
    assert block["updates"]
    for update in block["updates"]:
        assert set(update) <= {"on_task", "when", "set", "append"}
        assert update["on_task"] in user_tasks
        readable = _produced_upstream(pid, spec, update["on_task"])
        assert set(update.get("when", {})) <= readable, update
        assert update.get("set") or update.get("append")
        for name, source in {**update.get("set", {}), **update.get("append", {})}.items():
            assert name in CREDENTIAL_FIELDS, name
            if isinstance(source, str):
                assert source in readable, source
            elif "value" in source:
                assert set(source) == {"value"}
            else:
                assert set(source) == {"field", "item"} and source["field"] in readable
        for name in update.get("append", {}):
            assert CREDENTIAL_FIELDS[name] == "list"
        for name, source in update.get("set", {}).items():
            if name == "status":
                assert source["value"] in STATUSES


@pytest.mark.parametrize("pid", WITH_CREDENTIAL)
def test_updates_only_follow_datasus_or_the_final_step(specs, pid):
    """A credential changes when DATASUS approves (or decides), never on a request; the
    renewal binds the certificate when the connector or the PEC uses it."""
    spec, _ = specs[pid]
    for update in manifest(pid)["credential"]["updates"]:
        task = spec.task_specs[update["on_task"]]
        if pid == REN:
            assert update["on_task"] in {
                "atualizar_certificado_conector",
                "reabilitar_certificado_pec",
            }
            assert set(update["set"]) == {"certificate_sha256"}
        else:
            assert task.lane == "DATASUS", update


def test_source_values():
    data = {"filhos": [{"cnes": "1"}, {"cnes": "2"}], "ip": "1.2.3.4"}
    assert source_value("ip", data) == "1.2.3.4"
    assert source_value("nada", data) is None
    assert source_value({"value": "encerrada"}, data) == "encerrada"
    assert source_value({"field": "filhos", "item": "cnes"}, data) == ["1", "2"]
    assert source_value({"field": "nada", "item": "cnes"}, data) is None


# ------------------------------------------------------ Alteração de credencial


def test_change_approved_updates_the_credential_only_then(specs):
    run = Run(specs, ALT)
    [solicitar] = run.ready("Gestor")
    assert solicitar.task_spec.bpmn_id == "solicitar_alteracao"
    # the request starts from the credential as it is
    assert solicitar.data["identificador_solicitante"] == "40111"
    assert solicitar.data["ip_inicial"] == solicitar.data["ip_inicial_atual"] == "200.130.10.1"
    assert solicitar.data["ip_final"] == "200.130.10.20"
    assert solicitar.data["sistema_versao"] == "4.2"
    assert solicitar.data["operacoes"] == [TOKEN, BUNDLE]
    assert solicitar.data["filhos"] == [{"cnes": "0011274"}, {"cnes": "2078775"}]
    run.complete("solicitar_alteracao", **PEDIDO)
    assert run.credential == CREDENTIAL  # a request changes nothing

    [avaliar] = run.ready("DATASUS")
    assert avaliar.task_spec.bpmn_id == "avaliar_alteracao"
    assert avaliar.data["resumo_alteracao"].splitlines() == [
        "Faixa de IPs: 200.130.10.1 a 200.130.10.20 → 200.130.20.1 a 200.130.20.30",
        "Sistema: ProntoHosp 4.2 → ProntoHosp 5.0",
        "Operações incluídas: GET /fhir/r4/Patient",
        "Filhos incluídos: 2361787",
        "Filhos retirados: 2078775",
    ]
    assert avaliar.data["filhos_incluidos"] == ["2361787"]
    assert avaliar.data["filhos_removidos"] == ["2078775"]
    assert avaliar.data["operacoes_aprovadas"] == PEDIDO["operacoes"]  # prefills the decision
    assert not [k for k in avaliar.data if k.startswith("_")]  # the script's helpers are gone
    json.dumps(avaliar.data)
    # DATASUS approves two of the three operations asked for
    run.complete(
        "avaliar_alteracao",
        decision="aprovada",
        numero_solicitacao="4836/2024",
        operacoes_aprovadas=[TOKEN, PATIENT],
    )
    expected = dict(
        CREDENTIAL,
        ip_start="200.130.20.1",
        ip_end="200.130.20.30",
        system_version="5.0",
        operations=[TOKEN, PATIENT],
        children=["0011274", "2361787"],
        request_numbers=["3804/2024", "4836/2024"],
    )
    assert run.credential == expected

    [aplicar] = run.ready("Integrador")
    assert aplicar.task_spec.bpmn_id == "aplicar_alteracao_conector"
    assert "200.130.20.1" in aplicar.data["resumo_alteracao"]
    run.complete("aplicar_alteracao_conector", data_aplicacao="2026-03-20", confirmacao=True)
    run.assert_ended("fim_alteracao_aprovada")
    assert run.credential == expected  # the connector step writes nothing
    assert run.completed() == [
        "solicitar_alteracao",
        "avaliar_alteracao",
        "aplicar_alteracao_conector",
    ]


def test_change_rejected_adjusted_twice_then_approved(specs, clock):
    run = Run(specs, ALT)
    run.complete("solicitar_alteracao", **PEDIDO)
    run.complete(
        "avaliar_alteracao", decision="reprovada", motivo="IP 200.130.20.30 é de outro AS."
    )
    assert run.credential == CREDENTIAL
    [ajustar] = run.ready("Gestor")
    assert ajustar.task_spec.bpmn_id == "ajustar_alteracao"
    assert ajustar.data["motivo_reprovacao"] == "IP 200.130.20.30 é de outro AS."
    assert ajustar.data["ip_final"] == "200.130.20.30"  # the request prefills the adjustment
    # the 30-day timer is armed with the adjustment
    assert run.timers() == [("DurationTimerEventDefinition", MORNING + timedelta(days=30))]
    run.complete("ajustar_alteracao", **dict(PEDIDO, decision="ajustar", ip_final="200.130.20.9"))
    assert run.timers() == []  # answered in time: the timer is gone
    [avaliar] = run.ready()
    assert avaliar.task_spec.bpmn_id == "avaliar_alteracao"
    assert "200.130.20.1 a 200.130.20.9" in avaliar.data["resumo_alteracao"]
    run.complete("avaliar_alteracao", decision="reprovada", motivo="Falta o filho 2078775.")
    [ajustar] = run.ready()
    assert ajustar.data["motivo_reprovacao"] == "Falta o filho 2078775."
    filhos = [{"cnes": "0011274"}, {"cnes": "2078775"}, {"cnes": "2361787"}]
    run.complete(
        "ajustar_alteracao",
        **dict(PEDIDO, decision="ajustar", ip_final="200.130.20.9", filhos=filhos),
    )
    [avaliar] = run.ready()
    assert "Filhos retirados" not in avaliar.data["resumo_alteracao"]
    assert run.credential == CREDENTIAL  # two rejections, nothing changed
    run.complete("avaliar_alteracao", decision="aprovada", operacoes_aprovadas=PEDIDO["operacoes"])
    assert run.credential == dict(
        CREDENTIAL,
        ip_start="200.130.20.1",
        ip_end="200.130.20.9",
        system_version="5.0",
        operations=PEDIDO["operacoes"],
        children=["0011274", "2078775", "2361787"],
    )  # no nº da solicitação given: request_numbers as it was
    run.complete("aplicar_alteracao_conector", data_aplicacao="2026-03-25", confirmacao=True)
    run.assert_ended("fim_alteracao_aprovada")
    done = run.completed()
    assert done.count("avaliar_alteracao") == 3 and done.count("ajustar_alteracao") == 2


def test_change_given_up(specs, clock):
    run = Run(specs, ALT)
    run.complete("solicitar_alteracao", **PEDIDO)
    run.complete("avaliar_alteracao", decision="reprovada", motivo="Faixa de IPs privada.")
    # giving up needs a reason, nothing else
    assert _invalid(ALT, "ajustar-alteracao", {"decision": "desistir"}) == {
        "motivo": "Campo obrigatório."
    }
    run.complete("ajustar_alteracao", decision="desistir", motivo="Mantemos o provedor atual.")
    run.assert_ended("fim_alteracao_abandonada")
    assert run.credential == CREDENTIAL
    assert run.wf.data["decision"] == "desistir"


def test_change_abandoned_after_thirty_days(specs, clock):
    run = Run(specs, ALT)
    run.complete("solicitar_alteracao", **PEDIDO)
    run.complete("avaliar_alteracao", decision="reprovada", motivo="Versão inexistente.")
    clock.now = MORNING + timedelta(days=29, hours=23)
    run.fire_due_timers()
    assert run.ready_ids() == ["ajustar_alteracao"]
    clock.now = MORNING + timedelta(days=30, minutes=1)
    run.fire_due_timers()
    assert "CANCELLED" in run.states("ajustar_alteracao")
    run.assert_ended("fim_alteracao_abandonada")
    assert run.credential == CREDENTIAL


def test_change_started_without_a_credential(specs):
    """Before a credential exists (or when the runtime gives none) the request starts empty."""
    run = Run(specs, ALT, credential=None)
    [solicitar] = run.ready()
    for name in ("identificador_solicitante", "ip_inicial", "sistema_nome", "sistema_versao"):
        assert solicitar.data[name] == "", name
    assert solicitar.data["operacoes"] == [] and solicitar.data["filhos"] == []
    run.complete("solicitar_alteracao", **PEDIDO)
    [avaliar] = run.ready()
    assert avaliar.data["resumo_alteracao"].startswith("Faixa de IPs: nenhuma → 200.130.20.1")


def test_change_with_nothing_changed_says_so(specs):
    run = Run(specs, ALT)
    same = dict(
        PEDIDO,
        ip_inicial="200.130.10.1",
        ip_final="200.130.10.20",
        sistema_versao="4.2",
        operacoes=[TOKEN, BUNDLE],
        filhos=[{"cnes": "2078775"}, {"cnes": "0011274"}],  # order does not matter
    )
    run.complete("solicitar_alteracao", **same)
    [avaliar] = run.ready()
    assert avaliar.data["resumo_alteracao"] == "Nenhum dado difere da credencial atual."


def test_change_forms_refuse_bad_input():
    ctx = {"portfolio": PORTFOLIO}
    bad_ips = _invalid(ALT, "solicitar-alteracao", dict(PEDIDO, ip_inicial="10.0.0.1"), ctx)
    assert bad_ips == {"ip_inicial": "Informe endereços IP públicos."}
    reversed_range = dict(PEDIDO, ip_inicial="200.130.20.9", ip_final="200.130.20.1")
    assert _invalid(ALT, "solicitar-alteracao", reversed_range, ctx) == {
        "ip_final": "O IP final deve ser maior ou igual ao IP inicial."
    }
    half = {k: v for k, v in PEDIDO.items() if k != "ip_final"}
    assert _invalid(ALT, "solicitar-alteracao", half, ctx) == {"ip_final": "Campo obrigatório."}
    other_uf = dict(PEDIDO, filhos=[{"cnes": "0011274"}, {"cnes": "7654321"}])
    assert _invalid(ALT, "solicitar-alteracao", other_uf, ctx) == {
        "filhos.1.cnes": "Os estabelecimentos filhos devem ser da mesma UF do estabelecimento "
        "principal."
    }
    repeated = dict(PEDIDO, filhos=[{"cnes": "0011274"}, {"cnes": "0011274"}])
    assert _invalid(ALT, "solicitar-alteracao", repeated, ctx) == {
        "filhos.1.cnes": "CNES repetido na lista de estabelecimentos filhos."
    }
    unknown = dict(PEDIDO, operacoes=[TOKEN, {"operacao": "/Outra", "metodo": "GET"}])
    assert set(_invalid(ALT, "solicitar-alteracao", unknown, ctx)) == {"operacoes.1"}
    assert set(_invalid(ALT, "solicitar-alteracao", dict(PEDIDO, operacoes=[]), ctx)) == {
        "operacoes"
    }
    assert set(_invalid(ALT, "solicitar-alteracao", dict(PEDIDO, confirmacao=False), ctx)) == {
        "confirmacao"
    }
    # the IP range is required whatever the system (seed 003 marks both fields *)
    no_ips = {k: v for k, v in PEDIDO.items() if not k.startswith("ip_")}
    assert _invalid(ALT, "solicitar-alteracao", no_ips, ctx) == {
        "ip_inicial": "Campo obrigatório.",
        "ip_final": "Campo obrigatório.",
    }
    avaliar = "avaliar-alteracao"
    assert _invalid(ALT, avaliar, {"decision": "reprovada"}, ctx) == {
        "motivo": "Campo obrigatório."
    }
    assert _invalid(ALT, avaliar, {"decision": "aprovada"}, ctx) == {
        "operacoes_aprovadas": "Campo obrigatório."
    }
    wrong_number = {
        "decision": "aprovada",
        "operacoes_aprovadas": [TOKEN],
        "numero_solicitacao": "4836/24",
    }
    assert set(_invalid(ALT, avaliar, wrong_number, ctx)) == {"numero_solicitacao"}


# ------------------------------------------------------ Encerramento de credencial

PEDIDO_ENCERRAMENTO = {
    "motivo_encerramento": "Troca de sistema",
    "descricao": "O hospital passa a usar o sistema estadual.",
    "data_encerramento": "2026-04-01",
    "ciencia": True,
}
DESATIVACAO = {
    "data_desativacao": "2026-04-01",
    "conector_desativado": True,
    "certificado_removido": True,
}
ENCERRADA = dict(
    CREDENTIAL, status="encerrada", ended_on="2026-04-01", end_reason="Troca de sistema"
)


@pytest.mark.parametrize("origem", [None, "estabelecimento", "outro valor"])
def test_withdrawal_requested_and_confirmed(specs, origem):
    start = {} if origem is None else {"iniciado_por": origem}
    run = Run(specs, ENC, **start)
    [solicitar] = run.ready("Gestor")
    assert solicitar.task_spec.bpmn_id == "solicitar_encerramento"
    assert solicitar.data["identificador_solicitante"] == "40111"
    run.complete("solicitar_encerramento", **PEDIDO_ENCERRAMENTO)
    assert run.credential == CREDENTIAL
    [avaliar] = run.ready("DATASUS")
    assert avaliar.task_spec.bpmn_id == "avaliar_encerramento"
    assert avaliar.data["data_encerramento_efetiva"] == "2026-04-01"  # the date asked for
    run.complete(
        "avaliar_encerramento", decision="aprovada", data_encerramento_efetiva="2026-04-01"
    )
    assert run.credential == ENCERRADA  # ends when DATASUS confirms
    [desativar] = run.ready("Integrador")
    assert desativar.task_spec.bpmn_id == "desativar_integracao"
    run.complete("desativar_integracao", **DESATIVACAO)
    run.assert_ended("fim_credencial_encerrada")
    assert run.credential == ENCERRADA
    assert "registrar_encerramento" not in run.completed()


def test_withdrawal_request_refused(specs):
    run = Run(specs, ENC)
    run.complete("solicitar_encerramento", **PEDIDO_ENCERRAMENTO)
    assert _invalid(ENC, "avaliar-encerramento", {"decision": "reprovada"}) == {
        "motivo": "Campo obrigatório."
    }
    run.complete(
        "avaliar_encerramento", decision="reprovada", motivo="Há envios pendentes de correção."
    )
    run.assert_ended("fim_pedido_recusado")
    assert run.credential == CREDENTIAL
    assert run.completed() == ["solicitar_encerramento", "avaliar_encerramento"]


def test_withdrawal_by_datasus_with_the_gestors_notice(specs, clock):
    run = Run(specs, ENC, iniciado_por="datasus")
    [registrar] = run.ready()  # nothing waits for the gestor first
    assert registrar.task_spec.bpmn_id == "registrar_encerramento"
    assert registrar.task_spec.lane == "DATASUS"
    run.complete(
        "registrar_encerramento",
        motivo_encerramento="Uso irregular",
        descricao="Envio de dados de outro estabelecimento.",
        data_encerramento_efetiva="2026-03-10",
    )
    assert run.credential == dict(
        CREDENTIAL, status="encerrada", ended_on="2026-03-10", end_reason="Uso irregular"
    )
    [ciencia] = run.ready("Gestor")
    assert ciencia.task_spec.bpmn_id == "tomar_ciencia_encerramento"
    assert ciencia.data["motivo_encerramento"] == "Uso irregular"
    assert run.timers() == [("DurationTimerEventDefinition", MORNING + timedelta(days=10))]
    run.complete("tomar_ciencia_encerramento", ciente=True, manifestacao="Vamos recorrer.")
    assert run.timers() == []
    run.complete("desativar_integracao", **dict(DESATIVACAO, certificado_removido=False))
    run.assert_ended("fim_credencial_encerrada")
    assert run.completed() == [
        "registrar_encerramento",
        "tomar_ciencia_encerramento",
        "desativar_integracao",
    ]


def test_withdrawal_by_datasus_goes_on_without_notice_after_ten_days(specs, clock):
    run = Run(specs, ENC, iniciado_por="datasus")
    run.complete(
        "registrar_encerramento",
        motivo_encerramento="Certificado revogado ou inválido",
        descricao="Certificado revogado pela AC.",
        data_encerramento_efetiva="2026-03-10",
    )
    clock.now = MORNING + timedelta(days=9)
    run.fire_due_timers()
    assert run.ready_ids() == ["tomar_ciencia_encerramento"]
    clock.now = MORNING + timedelta(days=10, minutes=1)
    run.fire_due_timers()
    assert "CANCELLED" in run.states("tomar_ciencia_encerramento")
    [desativar] = run.ready()
    assert desativar.task_spec.bpmn_id == "desativar_integracao"
    assert desativar.data["data_encerramento_efetiva"] == "2026-03-10"
    run.complete("desativar_integracao", **DESATIVACAO)
    run.assert_ended("fim_credencial_encerrada")
    assert run.credential["status"] == "encerrada"


def test_withdrawal_forms_refuse_bad_input():
    form = "solicitar-encerramento"
    assert set(_invalid(ENC, form, dict(PEDIDO_ENCERRAMENTO, ciencia=False))) == {"ciencia"}
    assert set(_invalid(ENC, form, dict(PEDIDO_ENCERRAMENTO, motivo_encerramento="x"))) == {
        "motivo_encerramento"
    }
    assert set(_invalid(ENC, form, dict(PEDIDO_ENCERRAMENTO, data_encerramento="01/04/2026"))) == {
        "data_encerramento"
    }
    assert _invalid(ENC, "avaliar-encerramento", {"decision": "aprovada"}) == {
        "data_encerramento_efetiva": "Campo obrigatório."
    }
    assert set(_invalid(ENC, "tomar-ciencia-encerramento", {"ciente": False})) == {"ciente"}
    assert _invalid(
        ENC, "desativar-integracao", {"data_desativacao": "2026-04-01", "conector_desativado": True}
    ) == {"certificado_removido": "Campo obrigatório."}


# ------------------------------------------------- Transferência de titularidade

ACEITE = {"decision": "aceita", "novo_gestor_telefone": "62999990000", "declaracao": True}
NOVO_TITULAR = dict(
    CREDENTIAL,
    gestor_name="João Souza",
    gestor_cpf="39053344705",
    gestor_email="joao@hee.example",
)


def test_transfer_to_a_member_accepted_and_approved(specs, clock):
    run = Run(specs, TRA)
    [indicar] = run.ready("Gestor")
    assert indicar.task_spec.bpmn_id == "indicar_novo_titular"
    assert indicar.data["gestor_atual_nome"] == "Maria da Silva"
    assert indicar.data["gestor_atual_email"] == "maria@hee.example"
    run.complete("indicar_novo_titular", **NOVO_GESTOR)
    assert run.credential == CREDENTIAL
    [aceitar] = run.ready("Gestor")
    assert aceitar.task_spec.bpmn_id == "aceitar_titularidade"
    # the task goes to the person named (the runtime reads "assign")
    assert manifest(TRA)["credential"]["assign"] == {"aceitar_titularidade": "novo_gestor_email"}
    assert aceitar.data["novo_gestor_email"] == "joao@hee.example"
    assert aceitar.data["novo_gestor_cpf"] == "39053344705"  # stored normalized
    assert run.timers() == [("DurationTimerEventDefinition", MORNING + timedelta(days=15))]
    run.complete("aceitar_titularidade", **ACEITE)
    assert run.credential == CREDENTIAL  # accepting changes nothing yet
    [avaliar] = run.ready("DATASUS")
    assert avaliar.task_spec.bpmn_id == "avaliar_transferencia"
    run.complete("avaliar_transferencia", decision="aprovada")
    assert run.credential == NOVO_TITULAR  # same organization
    run.assert_ended("fim_titularidade_transferida")


def test_transfer_to_another_organization(specs):
    run = Run(specs, TRA)
    assert _invalid(
        TRA, "indicar-novo-titular", dict(NOVO_GESTOR, destino="outra_organizacao")
    ) == {"organizacao_destino": "Campo obrigatório."}
    run.complete(
        "indicar_novo_titular",
        **dict(NOVO_GESTOR, destino="outra_organizacao", organizacao_destino="sms-goiania"),
    )
    [aceitar] = run.ready()
    assert aceitar.data["organizacao_destino"] == "sms-goiania"
    run.complete("aceitar_titularidade", **ACEITE)
    run.complete("avaliar_transferencia", decision="aprovada")
    assert run.credential == dict(NOVO_TITULAR, organization="sms-goiania")
    run.assert_ended("fim_titularidade_transferida")


def test_transfer_refused_by_the_new_gestor(specs, clock):
    run = Run(specs, TRA)
    run.complete("indicar_novo_titular", **NOVO_GESTOR)
    assert _invalid(TRA, "aceitar-titularidade", {"decision": "recusada"}) == {
        "motivo": "Campo obrigatório."
    }
    assert _invalid(TRA, "aceitar-titularidade", {"decision": "aceita"}) == {
        "declaracao": "Campo obrigatório."
    }
    run.complete("aceitar_titularidade", decision="recusada", motivo="Não respondo por este CNES.")
    run.assert_ended("fim_transferencia_recusada")
    assert run.credential == CREDENTIAL
    assert "avaliar_transferencia" not in run.completed()


def test_transfer_refused_when_not_accepted_in_fifteen_days(specs, clock):
    run = Run(specs, TRA)
    run.complete("indicar_novo_titular", **NOVO_GESTOR)
    clock.now = MORNING + timedelta(days=14, hours=23)
    run.fire_due_timers()
    assert run.ready_ids() == ["aceitar_titularidade"]
    clock.now = MORNING + timedelta(days=15, seconds=1)
    run.fire_due_timers()
    assert "CANCELLED" in run.states("aceitar_titularidade")
    run.assert_ended("fim_transferencia_recusada")
    assert run.credential == CREDENTIAL


def test_transfer_rejected_by_datasus(specs):
    run = Run(specs, TRA)
    run.complete(
        "indicar_novo_titular",
        **dict(NOVO_GESTOR, destino="outra_organizacao", organizacao_destino="sms-goiania"),
    )
    run.complete("aceitar_titularidade", **ACEITE)
    run.complete("avaliar_transferencia", decision="reprovada", motivo="Sem termo assinado.")
    run.assert_ended("fim_transferencia_recusada")
    assert run.credential == CREDENTIAL


def test_transfer_forms_refuse_bad_input():
    form = "indicar-novo-titular"
    assert set(_invalid(TRA, form, dict(NOVO_GESTOR, novo_gestor_cpf="123.456.789-00"))) == {
        "novo_gestor_cpf"
    }
    assert set(_invalid(TRA, form, dict(NOVO_GESTOR, novo_gestor_email="joao"))) == {
        "novo_gestor_email"
    }
    bad_slug = dict(NOVO_GESTOR, destino="outra_organizacao", organizacao_destino="SMS Goiânia")
    assert set(_invalid(TRA, form, bad_slug)) == {"organizacao_destino"}
    assert set(_invalid(TRA, form, dict(NOVO_GESTOR, confirmacao=False))) == {"confirmacao"}
    assert set(_invalid(TRA, form, dict(NOVO_GESTOR, destino="qualquer"))) == {"destino"}


# ------------------------------------------- Renovação: the certificate bound


def test_renewal_binds_the_new_certificate_when_the_connector_uses_it(specs):
    run = Run(specs, REN, certificado_atual={"sha256": "ab" * 32, "not_after": "2026-04-09"})
    run.complete("obter_novo_certificado", novo_certificado="file-novo")
    assert run.credential == CREDENTIAL  # uploaded, not yet in use
    run.complete("atualizar_certificado_conector", data_atualizacao="2026-04-01", confirmacao=True)
    assert run.credential == dict(CREDENTIAL, certificate_sha256=fingerprint("file-novo"))
    run.assert_ended("fim_certificado_renovado")


def test_pec_renewal_binds_the_certificate_placed_in_chaves(specs):
    run = Run(specs, REN, credential=dict(CREDENTIAL, is_pec=True))
    assert run.wf.task_tree.data["eh_pec"] is True  # from the credential, by the block
    run.complete("obter_novo_certificado", novo_certificado="file-novo")
    run.complete(
        "instalar_certificado_chaves",
        sistema_operacional="Windows",
        certificado_instalado="file-pfx",
        certificado_instalado_senha="s3nha",
        pasta_chaves=True,
    )
    assert run.credential["certificate_sha256"] == "ab" * 32
    [reabilitar] = run.ready()
    assert reabilitar.data["identificador_solicitante"] == "40111"  # prefilled from the credential
    run.complete(
        "reabilitar_certificado_pec",
        certificado_desabilitado=True,
        identificador_solicitante="40111",
        senha_digitada_no_pec=True,
        data_inclusao="2026-04-02",
        validade_certificado="2027-04-01",
    )
    assert run.credential == dict(
        CREDENTIAL, is_pec=True, certificate_sha256=fingerprint("file-pfx")
    )
    run.assert_ended("fim_certificado_renovado")
    assert "s3nha" not in json.dumps([t.data for t in run.wf.get_tasks()])


# -------------------------------------------------------------- serialization


SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


def _round_trip(run):
    """Save and restore mid-process: the restored state is the saved one, exactly."""
    saved = SERIALIZER.serialize_json(run.wf)
    restored = SERIALIZER.deserialize_json(saved)
    assert json.loads(SERIALIZER.serialize_json(restored)) == json.loads(saved)
    assert sorted(t.task_spec.bpmn_id for t in restored.get_tasks(state=TaskState.READY)) == sorted(
        t.task_spec.bpmn_id for t in run.wf.get_tasks(state=TaskState.READY)
    )
    run.wf = restored
    return run


def test_change_round_trip_with_a_waiting_timer(specs, clock):
    run = Run(specs, ALT)
    run.complete("solicitar_alteracao", **PEDIDO)
    run.complete("avaliar_alteracao", decision="reprovada", motivo="Corrigir o IP final.")
    _round_trip(run)
    assert run.ready_ids() == ["ajustar_alteracao"]
    assert run.timers() == [("DurationTimerEventDefinition", MORNING + timedelta(days=30))]
    run.complete("ajustar_alteracao", **dict(PEDIDO, decision="ajustar"))
    run.complete("avaliar_alteracao", decision="aprovada", operacoes_aprovadas=[TOKEN])
    _round_trip(run)
    run.complete("aplicar_alteracao_conector", data_aplicacao="2026-03-20", confirmacao=True)
    run.assert_ended("fim_alteracao_aprovada")
    assert run.credential["operations"] == [TOKEN]


def test_withdrawal_round_trip_then_the_timer_fires(specs, clock):
    run = Run(specs, ENC, iniciado_por="datasus")
    _round_trip(run)  # before the first task: the start data survives
    assert run.ready_ids() == ["registrar_encerramento"]
    run.complete(
        "registrar_encerramento",
        motivo_encerramento="Credencial sem uso",
        descricao="Nenhum envio em 12 meses.",
        data_encerramento_efetiva="2026-03-10",
    )
    _round_trip(run)
    clock.now = MORNING + timedelta(days=11)
    run.fire_due_timers()
    assert run.ready_ids() == ["desativar_integracao"]
    _round_trip(run)  # the cancelled state serializes too
    assert "CANCELLED" in run.states("tomar_ciencia_encerramento")
    run.complete("desativar_integracao", **DESATIVACAO)
    run.assert_ended("fim_credencial_encerrada")


def test_transfer_round_trip_waiting_for_the_new_gestor(specs, clock):
    run = Run(specs, TRA)
    run.complete("indicar_novo_titular", **NOVO_GESTOR)
    _round_trip(run)
    assert run.ready_ids() == ["aceitar_titularidade"]
    assert run.timers() == [("DurationTimerEventDefinition", MORNING + timedelta(days=15))]
    run.complete("aceitar_titularidade", **ACEITE)
    _round_trip(run)
    run.complete("avaliar_transferencia", decision="aprovada")
    run.assert_ended("fim_titularidade_transferida")
    assert run.credential == NOVO_TITULAR


# ----------------------------------------------------------------- forms


def _walk_properties(schema, path=""):
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}{name}", prop
        items = prop.get("items")
        if isinstance(items, dict) and items.get("type") == "object":
            yield from _walk_properties(items, f"{path}{name}[].")


def _forms():
    new_renewal = {"instalar-certificado-chaves", "reabilitar-certificado-pec"}
    for pid in WITH_CREDENTIAL:
        for path in sorted((PROCESSES / pid).glob("*.schema.json")):
            name = path.name.removesuffix(".schema.json")
            if pid == REN and name not in new_renewal:
                continue
            ui = _load_json(path.with_name(f"{name}.ui.json"))
            yield pid, name, _load_json(path), ui


def test_every_form_of_the_new_steps_is_checked():
    names = {(pid, name) for pid, name, _, _ in _forms()}
    assert len(names) == 14
    assert (REN, "instalar-certificado-chaves") in names


def test_form_conventions():
    negative = {"aprovada": "reprovada", "ajustar": "desistir", "aceita": "recusada"}
    for pid, name, schema, ui in _forms():
        where = f"{pid}/{name}"
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["type"] == "object" and schema["title"] and schema["description"], where
        assert check_form_schema(schema) == [], where
        assert check_form(schema, ui) == [], where  # the task page can draw it
        assert ui["ui:order"] == list(schema["properties"]), where
        for key, value in ui.items():
            assert key.startswith("ui:") or key in schema["properties"], (where, key)
            if isinstance(value, dict) and "ui:enumNames" in value:
                assert len(value["ui:enumNames"]) == len(schema["properties"][key]["enum"])
        grouped = [f for group in ui.get("ui:groups", []) for f in group["fields"]]
        if grouped:  # groups, when there are, hold every field once
            assert sorted(grouped) == sorted(schema["properties"]), where
        required = set(schema.get("required", []))
        for field_path, prop in _walk_properties(schema):
            # every field says what it is and how to fill it, in Portuguese
            assert prop.get("title"), (where, field_path)
            assert prop.get("description") or ui.get(field_path, {}).get("ui:help"), (
                where,
                field_path,
            )
            if prop.get("type") == "array":
                assert 0 < prop["maxItems"] <= 500, (where, field_path)
                assert prop["items"]["type"] == "object"  # rows, never plain values
            if prop.get("format") == "file":
                # the Chaves folder of a PEC needs the .pfx/.p12 with its key (seed 004)
                chaves = "chaves" in where
                expected = ["certificate_with_key"] if chaves else ["certificate"]
                assert prop["x-accept"] == expected, (where, field_path)
            if prop.get("readOnly"):
                assert field_path not in required, (where, field_path)
            is_password = "senha" in field_path and prop.get("type") == "string"
            assert (prop.get("format") == "password") is is_password, (where, field_path)
            if is_password:
                assert prop["x-secret"] is True and prop["writeOnly"] is True
            if prop.get("x-options-from"):
                assert prop["x-options-from"] == "portfolio.operations"
        props = schema["properties"]
        if "decision" in props:
            values = props["decision"]["enum"]
            assert len(values) == 2 and negative[values[0]] == values[1], where
            assert props["decision"]["x-prefill"] is False
            assert props["motivo"]["x-prefill"] is False
            assert "decision" in schema["required"]
            conditional = [
                c
                for c in schema.get("allOf", [])
                if c["if"]
                == {"properties": {"decision": {"const": values[1]}}, "required": ["decision"]}
            ]
            assert conditional and conditional[0]["then"]["required"] == ["motivo"], where


def test_secrets():
    secrets = {(pid, name): secret_fields(schema) for pid, name, schema, _ in _forms()}
    assert secrets.pop((REN, "instalar-certificado-chaves")) == {"certificado_instalado_senha"}
    assert all(not found for found in secrets.values()), secrets
    # the PEC's password is typed in the PEC, never given to Credencia
    reabilitar = _load_json(PROCESSES / REN / "reabilitar-certificado-pec.schema.json")
    assert reabilitar["properties"]["senha_digitada_no_pec"]["const"] is True


def test_change_forms_share_their_fields():
    solicitar = _load_json(PROCESSES / ALT / "solicitar-alteracao.schema.json")
    ajustar = _load_json(PROCESSES / ALT / "ajustar-alteracao.schema.json")
    for name in ("ip_inicial", "ip_final", "sistema_nome", "sistema_versao", "filhos"):
        assert ajustar["properties"][name] == solicitar["properties"][name], name
    assert ajustar["x-rules"] == solicitar["x-rules"]
    # both ask the IP range whatever the system (issue 14 item 6)
    assert "dependentRequired" not in ajustar and "dependentRequired" not in solicitar
    ops = dict(solicitar["properties"]["operacoes"])
    assert ops.pop("minItems") == 1  # asked always on a request, only when adjusting here
    assert ajustar["properties"]["operacoes"] == ops
    rules = {r["rule"] for r in solicitar["x-rules"]}
    assert rules == {"lte", "public_ip", "same_uf", "unique"}
