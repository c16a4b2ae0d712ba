"""Processes 2 and 3 run in memory: Habilitação do PEC e-SUS APS na RNDS
(processes/habilitacao-pec-esus-aps.bpmn) and Renovação de certificado digital
(processes/renovacao-certificado.bpmn).

Pure SpiffWorkflow 3.2.0 plus the server's own form validation: every form is submitted
through ``engine.forms.validation.validate_form`` and, as the engine does, its ``x-secret``
values are removed before the data reaches the workflow (so no script or condition may
depend on the token, the contra-chave or a password).

What these tests pin down about the token's boundary timer (checked by running it):

- ``timeDate`` is an expression evaluated *once*, when the boundary event is armed (the task
  becomes READY), and cached in the event's internal data; changing ``token_expira_em``
  afterwards has no effect until the task is entered again (a new boundary event).
- A timer whose date is already past fires inside the very ``do_engine_steps()`` that arms
  it: the task is created and cancelled in the same call, so nobody ever sees it READY.
- A timer not yet due fires on ``refresh_timers()`` + ``do_engine_steps()`` once the clock
  passes its date (strictly after it), cancelling the task (interrupting boundary event).
- Completing the task cancels its waiting timer; ``waiting_events()`` is empty again.
- ``waiting_events()`` names the type by class: ``TimeDateEventDefinition`` (no "Timer" in
  it), ``DurationTimerEventDefinition``, ``CycleTimerEventDefinition``.
"""

from __future__ import annotations

import ast
import copy
import json
from datetime import UTC, datetime, timedelta, timezone
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
    check_form_schema,
    secret_fields,
    validate_form,
)
from engine.workflow.spiff import next_timer_due
from tests.support.bpmn import FLOW_NODE_TAGS, NS, assert_diagram_interchange

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"

PEC_ID = "habilitacao-pec-esus-aps"
PEC_FILE = PROCESSES / f"{PEC_ID}.bpmn"
PEC_FORMS = PROCESSES / PEC_ID
RENOV_ID = "renovacao-certificado"
RENOV_FILE = PROCESSES / f"{RENOV_ID}.bpmn"
RENOV_FORMS = PROCESSES / RENOV_ID

BRT = timezone(timedelta(hours=-3))  # America/Sao_Paulo: no daylight saving time since 2019


PEC_LANES = {
    "Gestor Municipal",
    "Administrador Municipal",
    "Administrador da Instalação",
    "DATASUS",
}
# bpmn id -> (lane, stage, SLA in business days, form name)
PEC_TASKS = {
    "informar_situacao_certificado": (
        "Gestor Municipal",
        "Preparação",
        5,
        "informar-situacao-certificado",
    ),
    "gerar_contra_chave": (
        "Administrador Municipal",
        "Token e contra-chave",
        5,
        "gerar-contra-chave",
    ),
    "gerar_token": ("Gestor Municipal", "Token e contra-chave", 5, "gerar-token"),
    "gerar_novo_token": ("Gestor Municipal", "Token e contra-chave", 1, "gerar-novo-token"),
    "solicitar_novo_credenciamento": (
        "Gestor Municipal",
        "Solicitação no e-Gestor",
        1,
        "solicitar-novo-credenciamento",
    ),
    "registrar_credencial_gerada": (
        "DATASUS",
        "Em análise (e-Gestor)",
        3,
        "registrar-credencial-gerada",
    ),
    "ajustar_solicitacao": (
        "Gestor Municipal",
        "Reprovada — ajuste pendente",
        5,
        "ajustar-solicitacao",
    ),
    "instalar_certificado": (
        "Administrador da Instalação",
        "Instalação do certificado",
        5,
        "instalar-certificado",
    ),
    "habilitar_rnds_pec": (
        "Administrador Municipal",
        "Habilitação no PEC",
        5,
        "habilitar-rnds-pec",
    ),
}
PEC_STAGES = [
    "Preparação",
    "Token e contra-chave",
    "Solicitação no e-Gestor",
    "Em análise (e-Gestor)",
    "Reprovada — ajuste pendente",
    "Instalação do certificado",
    "Habilitação no PEC",
    "PEC habilitado",
    "Encerrado sem habilitação",
]

RENOV_LANES = {"Gestor", "Integrador", "Administrador da Instalação", "Administrador Municipal"}
RENOV_TASKS = {
    "obter_novo_certificado": (
        "Gestor",
        "Renovação do certificado",
        10,
        "obter-novo-certificado",
    ),
    "atualizar_certificado_conector": (
        "Integrador",
        "Atualização no conector",
        5,
        "atualizar-certificado-conector",
    ),
    # PEC e-SUS APS credentials (seed 004)
    "instalar_certificado_chaves": (
        "Administrador da Instalação",
        "Instalação no PEC",
        5,
        "instalar-certificado-chaves",
    ),
    "reabilitar_certificado_pec": (
        "Administrador Municipal",
        "Habilitação no PEC",
        5,
        "reabilitar-certificado-pec",
    ),
}

# ------------------------------------------------------------------- sample data

FUNDO = {
    "cnes": "2077485",
    "cnpj": "11222333000181",
    "razao_social": "Fundo Municipal de Saúde de Exemplópolis",
    "uf": "GO",
    "municipio": "Exemplópolis",
    "telefone": "6233334444",
    "email": "fms@exemplopolis.example",
}
CPF_GESTOR = "52998224725"
CPF_OUTRO = "11144477735"
TODAY = "2026-03-10"  # the tests' clock day (see the ``clock`` fixture)
MORNING = datetime(2026, 3, 10, 10, 0, tzinfo=BRT)

TOKEN = {
    "token": "TK-9f8e7d6c",  # x-secret: never reaches the workflow
    "token_cpf": CPF_GESTOR,
    "token_nome": "Maria da Silva",
    "token_gerado_em": TODAY,
}
CONTRA_CHAVE = {"contra_chave": "CC-0123-4567-89AB"}  # x-secret
SOLICITACAO = {
    "cpf_solicitante": CPF_GESTOR,
    "gerar_certificado_egestor": False,
    "certificado_pfx": "file-pfx-1",
    "certificado_senha": "s3nha-do-pfx",  # x-secret
    "estabelecimento_telefone": "6233334444",
    "estabelecimento_email": "fms@exemplopolis.example",
    "ubs": [{"cnes": "0011274"}, {"cnes": "2078775"}],
    "gestor_nome": "Maria da Silva",
    "gestor_cpf": CPF_GESTOR,
    "gestor_cns": "207284801600008",
    "gestor_email": "maria@exemplopolis.example",
    "sistema_versao": "5.3.21",
    "aceite_termo": True,
}
SOLICITACAO_SEM_A1 = {
    k: v
    for k, v in SOLICITACAO.items()
    if k not in ("certificado_pfx", "certificado_senha", "gerar_certificado_egestor")
} | {"gerar_certificado_egestor": True}
APROVADA = {"decision": "aprovada", "identificador_solicitante": "40111"}
INSTALACAO = {
    "sistema_operacional": "Linux",
    "pasta_chaves_linux": "/srv/e-SUS/webserver/Chaves",
    "certificado_instalado": "file-pfx-1",
    "certificado_instalado_senha": "s3nha-do-pfx",  # x-secret
    "pasta_chaves_criada": True,
}
HABILITACAO = {
    "identificador_solicitante": "40111",
    "data_inclusao": "2026-03-20",
    "validade_certificado": "2027-03-01",
    "senha_digitada_no_pec": True,
}
SECRET_VALUES = {"TK-9f8e7d6c", "TK-novo", "CC-0123-4567-89AB", "s3nha-do-pfx", "s3nha-nova"}
INSTALACAO_CHAVES = {
    "sistema_operacional": "Windows",
    "certificado_instalado": "file-novo",
    "certificado_instalado_senha": "s3nha-nova",  # x-secret
    "pasta_chaves": True,
}
REABILITACAO = {
    "certificado_desabilitado": True,
    "identificador_solicitante": "40111",
    "senha_digitada_no_pec": True,
    "data_inclusao": "2026-04-02",
    "validade_certificado": "2027-04-01",
}

CERTIFICADO_ATUAL = {
    "sha256": "ab" * 32,
    "not_after": "2026-04-09",
    "cnpj": "11222333000181",
}

# ----------------------------------------------------------------------- helpers


def _load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _parse(path: Path, process_id: str):
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_files([str(path)])
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


@pytest.fixture(scope="module")
def pec():
    return _parse(PEC_FILE, PEC_ID)


@pytest.fixture(scope="module")
def renov():
    return _parse(RENOV_FILE, RENOV_ID)


class _Clock:
    """The clock SpiffWorkflow's timers read (``datetime.now`` in its timer module)."""

    def __init__(self, now: datetime):
        self.now = now


@pytest.fixture
def clock(monkeypatch):
    state = _Clock(MORNING)

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return state.now.astimezone(tz) if tz else state.now.replace(tzinfo=None)

    monkeypatch.setattr(spiff_timer, "datetime", FakeDatetime)
    return state


def _forms_dir(wf):
    return PEC_FORMS if wf.spec.name == PEC_ID else RENOV_FORMS


def _tasks_table(wf):
    return PEC_TASKS if wf.spec.name == PEC_ID else RENOV_TASKS


def form_schema(wf, bpmn_id):
    props = wf.spec.task_specs[bpmn_id].extensions["properties"]
    return _load_json(_forms_dir(wf) / props["formJsonSchemaFilename"])


# The uploads that came as .pfx/.p12 with their key (the file store's kind for them); any
# other id is a public certificate (.cer).
WITH_KEY_FILES = {"file-pfx-1", "file-novo"}


def _lookup_file(file_id: str) -> FileInfo:
    kind = "certificate_with_key" if file_id in WITH_KEY_FILES else "certificate"
    return FileInfo(id=file_id, content_type="application/pkix-cert", kind=kind)


def form_context(data=None) -> FormContext:
    return FormContext(lookup_file=_lookup_file, establishment_uf="GO", data=data or {})


def ready(wf, lane=None):
    tasks = wf.get_tasks(state=TaskState.READY, manual=True)
    lanes = PEC_LANES if wf.spec.name == PEC_ID else RENOV_LANES
    for t in tasks:
        assert t.task_spec.lane in lanes, t.task_spec.bpmn_id
    if lane is not None:
        tasks = [t for t in tasks if t.task_spec.lane == lane]
    return tasks


def ready_ids(wf):
    return sorted(t.task_spec.bpmn_id for t in ready(wf))


def complete(wf, bpmn_id, **submitted):
    """Complete the single READY human task ``bpmn_id`` the way the engine does: validate
    with the server's validator, drop the x-secret values, set the data, run, engine steps."""
    matches = [t for t in ready(wf) if t.task_spec.bpmn_id == bpmn_id]
    assert len(matches) == 1, f"{bpmn_id} not READY; READY: {ready_ids(wf)}"
    task = matches[0]
    assert task.task_spec.lane == _tasks_table(wf)[bpmn_id][0]
    schema = form_schema(wf, bpmn_id)
    cleaned = validate_form(schema, copy.deepcopy(submitted), form_context(task.data))
    secret = secret_fields(schema)
    task.set_data(**{k: v for k, v in cleaned.items() if k not in secret})
    task.run()
    wf.do_engine_steps()
    return task


def states_of(wf, bpmn_id):
    return [TaskState.get_name(t.state) for t in wf.get_tasks() if t.task_spec.bpmn_id == bpmn_id]


def completed_ids(wf, table=PEC_TASKS):
    return [
        t.task_spec.bpmn_id
        for t in wf.get_tasks(state=TaskState.COMPLETED)
        if t.task_spec.bpmn_id in table
    ]


def reached_end_events(wf):
    return sorted(
        t.task_spec.bpmn_id
        for t in wf.get_tasks(state=TaskState.COMPLETED)
        if type(t.task_spec).__name__ == "EndEvent"
    )


TIMER_EVENT_TYPES = {
    "TimeDateEventDefinition",
    "DurationTimerEventDefinition",
    "CycleTimerEventDefinition",
}


def timer_values(wf):
    # the pending event's type is the class name: "TimeDateEventDefinition" has no "Timer"
    return [e.value for e in wf.waiting_events() if e.event_type in TIMER_EVENT_TYPES]


def fire_due_timers(wf):
    """What the scheduler does for a due instance."""
    wf.refresh_timers()
    wf.do_engine_steps()


def start_pec(pec, *, certificado=False):
    spec, subprocesses = pec
    wf = BpmnWorkflow(spec, subprocesses)
    wf.task_tree.data.update(
        {
            "possui_certificado_valido": certificado,
            "possui_conta_govbr": True,
            "estabelecimento": dict(FUNDO),
        }
    )
    wf.do_engine_steps()
    return wf


def run_until_request(wf, *, a1=True, token=None):
    """Step 1 and the parallel token / contra-chave steps; the token last, so the join
    fires when the token is registered."""
    complete(wf, "informar_situacao_certificado", possui_certificado_a1=a1)
    assert ready_ids(wf) == ["gerar_contra_chave", "gerar_token"]
    complete(wf, "gerar_contra_chave", **CONTRA_CHAVE)
    assert ready_ids(wf) == ["gerar_token"]
    complete(wf, "gerar_token", **(token or TOKEN))


def run_after_approval(wf):
    complete(wf, "instalar_certificado", **INSTALACAO)
    assert [t.task_spec.bpmn_id for t in ready(wf, "Administrador Municipal")] == [
        "habilitar_rnds_pec"
    ]
    complete(wf, "habilitar_rnds_pec", **HABILITACAO)


def all_task_data(wf):
    return [t.data for t in wf.get_tasks()] + [wf.data]


def assert_no_secrets(wf):
    blob = json.dumps(all_task_data(wf), default=str)
    for value in SECRET_VALUES:
        assert value not in blob
    for data in all_task_data(wf):
        assert not {"token", "contra_chave", "certificado_senha", "senha"} & set(data)


# -------------------------------------------------------------------- parsing


def test_pec_parses_with_spiff_validator(pec):
    spec, subprocesses = pec
    assert spec.name == PEC_ID
    assert spec.description == "Habilitação do PEC e-SUS APS na RNDS"
    assert subprocesses == {}
    lanes = {s.lane for s in spec.task_specs.values() if s.bpmn_id is not None}
    assert lanes == PEC_LANES
    users = {s.bpmn_id for s in spec.task_specs.values() if type(s).__name__ == "UserTask"}
    assert users == set(PEC_TASKS)


def test_renewal_parses_with_spiff_validator(renov):
    spec, subprocesses = renov
    assert spec.name == RENOV_ID
    assert spec.description == "Renovação de certificado digital"
    assert subprocesses == {}
    lanes = {s.lane for s in spec.task_specs.values() if s.bpmn_id is not None}
    assert lanes == RENOV_LANES
    users = {s.bpmn_id for s in spec.task_specs.values() if type(s).__name__ == "UserTask"}
    assert users == set(RENOV_TASKS)


@pytest.mark.parametrize(
    ("path", "process_id", "name", "lanes"),
    [
        (PEC_FILE, PEC_ID, "Habilitação do PEC e-SUS APS na RNDS", PEC_LANES),
        (RENOV_FILE, RENOV_ID, "Renovação de certificado digital", RENOV_LANES),
    ],
)
def test_collaboration_and_lanes(path, process_id, name, lanes):
    tree = etree.parse(str(path))
    participants = tree.findall(".//bpmn:collaboration/bpmn:participant", NS)
    assert len(participants) == 1
    assert participants[0].get("processRef") == process_id
    process = tree.find(f".//bpmn:process[@id='{process_id}']", NS)
    assert process.get("isExecutable") == "true"
    assert process.get("name") == name
    assert process.find("bpmn:documentation", NS).text.strip()
    found = process.findall("./bpmn:laneSet/bpmn:lane", NS)
    assert {lane.get("name") for lane in found} == lanes
    node_ids = [n.get("id") for tag in FLOW_NODE_TAGS for n in process.findall(f"bpmn:{tag}", NS)]
    refs = [r.text for r in process.findall("./bpmn:laneSet/bpmn:lane/bpmn:flowNodeRef", NS)]
    assert sorted(refs) == sorted(node_ids)  # every flow node in exactly one lane


def test_model_checks_pass():
    assert check_paths([PEC_FILE, RENOV_FILE]) == []


# ------------------------------------------------------------ PEC: the paths


@pytest.mark.parametrize("a1", [True, False])
def test_pec_happy_path(pec, clock, a1):
    wf = start_pec(pec, certificado=a1)
    assert ready_ids(wf) == ["informar_situacao_certificado"]
    [informar] = ready(wf)
    # suggested from the certificate on file (start data)
    assert informar.data["possui_certificado_a1"] is a1
    complete(wf, "informar_situacao_certificado", possui_certificado_a1=a1)
    # both answers lead to the token and the contra-chave, in parallel, in their lanes
    assert [t.task_spec.bpmn_id for t in ready(wf, "Gestor Municipal")] == ["gerar_token"]
    assert [t.task_spec.bpmn_id for t in ready(wf, "Administrador Municipal")] == [
        "gerar_contra_chave"
    ]
    complete(wf, "gerar_token", **TOKEN)
    # the join waits for the contra-chave
    assert ready_ids(wf) == ["gerar_contra_chave"]
    assert timer_values(wf) == []
    complete(wf, "gerar_contra_chave", **CONTRA_CHAVE)

    [solicitar] = ready(wf)
    assert solicitar.task_spec.bpmn_id == "solicitar_novo_credenciamento"
    # the token's data for the form (read-only), the certificate choice suggested by step 1
    assert solicitar.data["cpf_do_token"] == CPF_GESTOR
    assert solicitar.data["nome_do_token"] == "Maria da Silva"
    assert solicitar.data["token_valido_ate"] == TODAY
    assert solicitar.data["gerar_certificado_egestor"] is (not a1)
    assert "aviso_cpf_divergente" not in solicitar.data
    # the token expires today at 23:59 in Brasília, i.e. 02:59 UTC tomorrow
    assert timer_values(wf) == [f"{TODAY}T23:59:00-03:00"]

    complete(wf, "solicitar_novo_credenciamento", **(SOLICITACAO if a1 else SOLICITACAO_SEM_A1))
    # submitting in time cancels the timer
    assert timer_values(wf) == []
    assert "CANCELLED" in states_of(wf, "timer_token_expirado")
    assert [t.task_spec.bpmn_id for t in ready(wf, "DATASUS")] == ["registrar_credencial_gerada"]
    aprovada = APROVADA if a1 else dict(APROVADA, certificado_gerado="file-gerado-1")
    complete(wf, "registrar_credencial_gerada", **aprovada)
    assert [t.task_spec.bpmn_id for t in ready(wf, "Administrador da Instalação")] == [
        "instalar_certificado"
    ]
    complete(wf, "instalar_certificado", **INSTALACAO)
    [habilitar] = ready(wf)
    assert habilitar.task_spec.bpmn_id == "habilitar_rnds_pec"
    assert habilitar.data["identificador_solicitante"] == "40111"  # prefills the form
    complete(wf, "habilitar_rnds_pec", **HABILITACAO)

    assert wf.is_completed()
    assert ready(wf) == []
    assert reached_end_events(wf) == ["fim_pec_habilitado"]
    assert sorted(completed_ids(wf)) == sorted(
        [
            "informar_situacao_certificado",
            "gerar_token",
            "gerar_contra_chave",
            "solicitar_novo_credenciamento",
            "registrar_credencial_gerada",
            "instalar_certificado",
            "habilitar_rnds_pec",
        ]
    )
    assert wf.data["identificador_solicitante"] == "40111"
    assert wf.data["validade_certificado"] == "2027-03-01"
    assert_no_secrets(wf)


def test_token_form_suggests_today_and_the_central_de_gestao(pec, clock):
    wf = start_pec(pec)
    before = datetime.now(BRT).date().isoformat()
    complete(wf, "informar_situacao_certificado", possui_certificado_a1=False)
    after = datetime.now(BRT).date().isoformat()
    [token_task] = ready(wf, "Gestor Municipal")
    # the preScript uses the real clock, in Brasília time
    assert token_task.data["token_gerado_em"] in {before, after}
    assert token_task.data["token_estabelecimento"] == "0000068 — Central de Gestão em Saúde"
    # no module object is left behind in the task data (it must serialize)
    assert "_dt" not in token_task.data
    json.dumps(token_task.data)


def test_token_expiry_fires_only_when_due(pec, clock):
    wf = start_pec(pec)
    run_until_request(wf)
    assert ready_ids(wf) == ["solicitar_novo_credenciamento"]
    assert timer_values(wf) == [f"{TODAY}T23:59:00-03:00"]

    for now in (
        datetime(2026, 3, 10, 12, 0, tzinfo=BRT),
        datetime(2026, 3, 10, 23, 58, 59, tzinfo=BRT),
        datetime(2026, 3, 11, 2, 58, 59, tzinfo=UTC),  # the same instant seen from UTC
    ):
        clock.now = now
        fire_due_timers(wf)
        assert ready_ids(wf) == ["solicitar_novo_credenciamento"], now
        assert "WAITING" in states_of(wf, "timer_token_expirado")

    clock.now = datetime(2026, 3, 10, 23, 59, 1, tzinfo=BRT)
    fire_due_timers(wf)
    # interrupting: the open request is cancelled, regenerating the token is READY
    assert "CANCELLED" in states_of(wf, "solicitar_novo_credenciamento")
    assert ready_ids(wf) == ["gerar_novo_token"]
    assert timer_values(wf) == []
    [novo] = ready(wf)
    assert novo.task_spec.lane == "Gestor Municipal"
    assert "expirou" in novo.task_spec.documentation
    assert novo.data["token_valido_ate"] == TODAY  # the expired token's day, read-only
    assert novo.data["token_cpf"] == CPF_GESTOR  # prefilled for the new token

    # the next morning a new token is generated and the request is made in time
    clock.now = datetime(2026, 3, 11, 8, 30, tzinfo=BRT)
    complete(wf, "gerar_novo_token", **dict(TOKEN, token="TK-novo", token_gerado_em="2026-03-11"))
    assert ready_ids(wf) == ["solicitar_novo_credenciamento"]
    assert timer_values(wf) == ["2026-03-11T23:59:00-03:00"]
    [solicitar] = ready(wf)
    assert solicitar.data["token_valido_ate"] == "2026-03-11"
    fire_due_timers(wf)
    assert ready_ids(wf) == ["solicitar_novo_credenciamento"]
    complete(wf, "solicitar_novo_credenciamento", **SOLICITACAO)
    complete(wf, "registrar_credencial_gerada", **APROVADA)
    run_after_approval(wf)
    assert wf.is_completed()
    assert reached_end_events(wf) == ["fim_pec_habilitado"]
    assert completed_ids(wf).count("gerar_novo_token") == 1
    assert completed_ids(wf).count("solicitar_novo_credenciamento") == 1
    assert_no_secrets(wf)


def test_timer_date_is_evaluated_once_when_armed(pec, clock):
    wf = start_pec(pec)
    run_until_request(wf)
    [waiting] = [
        t
        for t in wf.get_tasks(state=TaskState.WAITING)
        if t.task_spec.bpmn_id == "timer_token_expirado"
    ]
    waiting.data["token_expira_em"] = "2026-03-01T00:00:00-03:00"  # in the past
    fire_due_timers(wf)
    assert ready_ids(wf) == ["solicitar_novo_credenciamento"]
    assert timer_values(wf) == [f"{TODAY}T23:59:00-03:00"]  # the cached value


def test_token_already_expired_when_the_request_opens(pec, clock):
    """The token was generated days before the contra-chave: the timer is past when it is
    armed and fires in the same engine steps, so the request is never READY."""
    wf = start_pec(pec)
    complete(wf, "informar_situacao_certificado", possui_certificado_a1=True)
    complete(wf, "gerar_token", **dict(TOKEN, token_gerado_em="2026-03-06"))
    assert timer_values(wf) == []
    complete(wf, "gerar_contra_chave", **CONTRA_CHAVE)
    assert ready_ids(wf) == ["gerar_novo_token"]
    assert "CANCELLED" in states_of(wf, "solicitar_novo_credenciamento")
    complete(wf, "gerar_novo_token", **dict(TOKEN, token="TK-novo"))
    assert ready_ids(wf) == ["solicitar_novo_credenciamento"]
    assert timer_values(wf) == [f"{TODAY}T23:59:00-03:00"]


def test_scheduler_column_sees_the_token_timer(pec, clock):
    wf = start_pec(pec)
    run_until_request(wf)
    assert timer_values(wf) == [f"{TODAY}T23:59:00-03:00"]
    # 23:59 in Brasília is 02:59 UTC the next day
    assert next_timer_due(wf) == datetime(2026, 3, 11, 2, 59, tzinfo=UTC)


def test_timer_reads_a_variable_set_before_its_task(pec):
    """ENGINE.md: a boundary timer cannot read variables set by its own task's preScript.
    token_expira_em comes from the postScript of the two token tasks, with an explicit
    offset; the request task itself has no preScript."""
    spec, _ = pec
    timer = spec.task_specs["timer_token_expirado"]
    assert type(timer.event_definition).__name__ == "TimeDateEventDefinition"
    assert timer.event_definition.expression == "token_expira_em"
    assert timer.cancel_activity is True
    for bpmn_id in ("gerar_token", "gerar_novo_token"):
        post = spec.task_specs[bpmn_id].extensions["postScript"]
        assigned = {
            n.id
            for n in ast.walk(ast.parse(post))
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        assert "token_expira_em" in assigned
        assert '"T23:59:00-03:00"' in post
    assert "preScript" not in spec.task_specs["solicitar_novo_credenciamento"].extensions
    value = datetime.fromisoformat(f"{TODAY}T23:59:00-03:00")
    assert value.utcoffset() == timedelta(hours=-3)


def test_cpf_must_match_the_tokens(pec, clock):
    wf = start_pec(pec)
    run_until_request(wf)
    # a different CPF goes back to the gestor, with a warning, and never reaches DATASUS;
    # posting the token's CPF does not help: the form does not declare token_cpf
    complete(
        wf,
        "solicitar_novo_credenciamento",
        **dict(SOLICITACAO, cpf_solicitante=CPF_OUTRO, token_cpf=CPF_OUTRO),
    )
    assert ready(wf, "DATASUS") == []
    [solicitar] = ready(wf)
    assert solicitar.task_spec.bpmn_id == "solicitar_novo_credenciamento"
    assert solicitar.data["token_cpf"] == CPF_GESTOR
    assert "CPF" in solicitar.data["aviso_cpf_divergente"]
    assert solicitar.data["cpf_solicitante"] == CPF_OUTRO  # prefilled for correction
    # the request is a new task with a new timer for the same token
    assert timer_values(wf) == [f"{TODAY}T23:59:00-03:00"]
    complete(wf, "solicitar_novo_credenciamento", **SOLICITACAO)
    [registrar] = ready(wf)
    assert registrar.task_spec.bpmn_id == "registrar_credencial_gerada"
    assert "aviso_cpf_divergente" not in registrar.data  # the warning is gone
    assert completed_ids(wf).count("solicitar_novo_credenciamento") == 2


def test_rejection_loop_then_approved(pec, clock):
    wf = start_pec(pec)
    run_until_request(wf)
    complete(wf, "solicitar_novo_credenciamento", **SOLICITACAO)

    # 1st rejection, resubmitted the same day: the token still holds
    complete(wf, "registrar_credencial_gerada", decision="reprovada", motivo="UBS sem CNES ativo")
    [ajustar] = ready(wf)
    assert ajustar.task_spec.bpmn_id == "ajustar_solicitacao"
    assert ajustar.task_spec.lane == "Gestor Municipal"
    assert ajustar.data["motivo_reprovacao"] == "UBS sem CNES ativo"
    complete(wf, "ajustar_solicitacao", decision="ajustar")
    [solicitar] = ready(wf)
    assert solicitar.task_spec.bpmn_id == "solicitar_novo_credenciamento"
    assert solicitar.data["motivo_reprovacao"] == "UBS sem CNES ativo"
    assert solicitar.data["sistema_versao"] == "5.3.21"  # the previous request prefills
    complete(wf, "solicitar_novo_credenciamento", **dict(SOLICITACAO, ubs=[{"cnes": "0011274"}]))

    # 2nd rejection days later: the token expired meanwhile, a new one is asked at once
    clock.now = datetime(2026, 3, 13, 9, 0, tzinfo=BRT)
    complete(wf, "registrar_credencial_gerada", decision="reprovada", motivo="E-mail inválido")
    complete(wf, "ajustar_solicitacao", decision="ajustar")
    assert ready_ids(wf) == ["gerar_novo_token"]
    complete(wf, "gerar_novo_token", **dict(TOKEN, token="TK-novo", token_gerado_em="2026-03-13"))
    [solicitar] = ready(wf)
    assert solicitar.data["motivo_reprovacao"] == "E-mail inválido"
    complete(wf, "solicitar_novo_credenciamento", **SOLICITACAO)
    complete(wf, "registrar_credencial_gerada", **APROVADA)
    run_after_approval(wf)

    assert wf.is_completed()
    assert reached_end_events(wf) == ["fim_pec_habilitado"]
    done = completed_ids(wf)
    assert done.count("registrar_credencial_gerada") == 3
    assert done.count("ajustar_solicitacao") == 2
    assert done.count("solicitar_novo_credenciamento") == 3
    assert done.count("gerar_novo_token") == 1
    assert_no_secrets(wf)


def test_desistir_terminates_the_instance(pec, clock):
    wf = start_pec(pec)
    run_until_request(wf)
    complete(wf, "solicitar_novo_credenciamento", **SOLICITACAO)
    complete(wf, "registrar_credencial_gerada", decision="reprovada", motivo="Sem UBS elegível")
    complete(
        wf, "ajustar_solicitacao", decision="desistir", motivo="O município vai esperar o PEC 6."
    )
    assert wf.is_completed()
    assert wf.get_tasks(state=TaskState.NOT_FINISHED_MASK) == []
    assert timer_values(wf) == []
    assert reached_end_events(wf) == ["fim_sem_habilitacao"]
    end = wf.spec.task_specs["fim_sem_habilitacao"]
    assert end.bpmn_name == "Encerrado sem habilitação"
    assert end.extensions["properties"] == {"stage": "Encerrado sem habilitação"}
    assert type(end.event_definition).__name__ == "TerminateEventDefinition"
    assert wf.data["decision"] == "desistir"


def test_serialization_round_trip_with_a_waiting_timer(pec, clock):
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
    wf = start_pec(pec)
    run_until_request(wf)
    restored = serializer.deserialize_json(serializer.serialize_json(wf))
    assert ready_ids(restored) == ["solicitar_novo_credenciamento"]
    assert timer_values(restored) == [f"{TODAY}T23:59:00-03:00"]
    clock.now = datetime(2026, 3, 11, 0, 0, tzinfo=BRT)
    fire_due_timers(restored)
    assert ready_ids(restored) == ["gerar_novo_token"]
    # and the cancelled state serializes too
    again = serializer.deserialize_json(serializer.serialize_json(restored))
    assert ready_ids(again) == ["gerar_novo_token"]
    assert "CANCELLED" in states_of(again, "solicitar_novo_credenciamento")


def test_end_events(pec, renov):
    ends = {}
    for spec, _ in (pec, renov):
        for s in spec.task_specs.values():
            if type(s).__name__ == "EndEvent":
                ends[s.bpmn_id] = (s.bpmn_name, s.extensions["properties"]["stage"])
    assert ends == {
        "fim_pec_habilitado": ("PEC habilitado", "PEC habilitado"),
        "fim_sem_habilitacao": ("Encerrado sem habilitação", "Encerrado sem habilitação"),
        "fim_certificado_renovado": ("Certificado renovado", "Certificado renovado"),
    }
    spec, _ = pec
    assert type(spec.task_specs["fim_pec_habilitado"].event_definition).__name__ == (
        "NoneEventDefinition"
    )


# ------------------------------------------------------------- renewal paths


def start_renewal(renov, certificado_atual=CERTIFICADO_ATUAL, **start):
    spec, subprocesses = renov
    wf = BpmnWorkflow(spec, subprocesses)
    data = {
        "possui_certificado_valido": True,
        "possui_conta_govbr": True,
        "estabelecimento": dict(FUNDO),
        **start,
    }
    if certificado_atual is not ...:
        data["certificado_atual"] = copy.deepcopy(certificado_atual)
    wf.task_tree.data.update(data)
    wf.do_engine_steps()
    return wf


def test_renewal_happy_path(renov):
    wf = start_renewal(renov)
    [obter] = ready(wf, "Gestor")
    assert obter.task_spec.bpmn_id == "obter_novo_certificado"
    assert obter.data["certificado_atual_validade"] == "2026-04-09"
    assert obter.data["certificado_atual_cnpj"] == "11222333000181"
    assert "_atual" not in obter.data
    complete(wf, "obter_novo_certificado", novo_certificado="file-novo", senha="s3nha-nova")
    assert [t.task_spec.bpmn_id for t in ready(wf, "Integrador")] == [
        "atualizar_certificado_conector"
    ]
    complete(
        wf,
        "atualizar_certificado_conector",
        data_atualizacao="2026-04-01",
        confirmacao=True,
        observacoes="Trocado no keystore do conector.",
    )
    assert wf.is_completed()
    assert reached_end_events(wf) == ["fim_certificado_renovado"]
    assert completed_ids(wf, RENOV_TASKS) == [
        "obter_novo_certificado",
        "atualizar_certificado_conector",
    ]
    assert wf.data["novo_certificado"] == "file-novo"
    assert wf.data["certificado_atual"] == CERTIFICADO_ATUAL
    assert_no_secrets(wf)


@pytest.mark.parametrize("eh_pec", [False, None, "sim", 1])
def test_renewal_not_pec_keeps_the_connector_path(renov, eh_pec):
    """Only a start value of exactly True takes the PEC branch; anything else (or nothing, as
    in every renewal started before the PEC branch existed) is the connector path."""
    wf = start_renewal(renov, eh_pec=eh_pec)
    complete(wf, "obter_novo_certificado", novo_certificado="file-novo")
    assert ready_ids(wf) == ["atualizar_certificado_conector"]
    complete(wf, "atualizar_certificado_conector", data_atualizacao="2026-04-01", confirmacao=True)
    assert reached_end_events(wf) == ["fim_certificado_renovado"]
    assert completed_ids(wf, RENOV_TASKS) == [
        "obter_novo_certificado",
        "atualizar_certificado_conector",
    ]


def test_renewal_of_a_pec_credential(renov):
    wf = start_renewal(renov, eh_pec=True, identificador_solicitante="40111")
    complete(wf, "obter_novo_certificado", novo_certificado="file-novo", senha="s3nha-nova")
    # no connector: the installation's administrator places the .pfx in the Chaves folder
    assert ready(wf, "Integrador") == []
    [instalar] = ready(wf, "Administrador da Instalação")
    assert instalar.task_spec.bpmn_id == "instalar_certificado_chaves"
    complete(wf, "instalar_certificado_chaves", **INSTALACAO_CHAVES)
    [reabilitar] = ready(wf, "Administrador Municipal")
    assert reabilitar.task_spec.bpmn_id == "reabilitar_certificado_pec"
    assert reabilitar.data["identificador_solicitante"] == "40111"  # prefills the form
    complete(wf, "reabilitar_certificado_pec", **REABILITACAO)
    assert wf.is_completed()
    assert reached_end_events(wf) == ["fim_certificado_renovado"]
    assert completed_ids(wf, RENOV_TASKS) == [
        "obter_novo_certificado",
        "instalar_certificado_chaves",
        "reabilitar_certificado_pec",
    ]
    assert wf.data["validade_certificado"] == "2027-04-01"
    assert_no_secrets(wf)


def test_renewal_of_a_pec_credential_without_identificador(renov):
    wf = start_renewal(renov, eh_pec=True)
    complete(wf, "obter_novo_certificado", novo_certificado="file-novo")
    complete(wf, "instalar_certificado_chaves", **INSTALACAO_CHAVES)
    [reabilitar] = ready(wf)
    assert reabilitar.data["identificador_solicitante"] == ""  # typed by the administrator


@pytest.mark.parametrize("atual", [None, {}, ...])
def test_renewal_started_without_a_current_certificate(renov, atual):
    wf = start_renewal(renov, certificado_atual=atual)
    [obter] = ready(wf)
    assert obter.data["certificado_atual_validade"] == ""
    assert obter.data["certificado_atual_cnpj"] == ""


# ----------------------------------------------------------- tasks and forms


def _all_forms():
    for folder in (PEC_FORMS, RENOV_FORMS):
        for path in sorted(folder.glob("*.schema.json")):
            ui = path.with_name(path.name.replace(".schema.json", ".ui.json"))
            yield path, _load_json(path), _load_json(ui)


@pytest.mark.parametrize("which", ["pec", "renov"])
def test_user_tasks_lanes_properties_and_forms(request, which):
    spec, _ = request.getfixturevalue(which)
    table, folder = (PEC_TASKS, PEC_FORMS) if which == "pec" else (RENOV_TASKS, RENOV_FORMS)
    stages = _load_json(folder / "process.json")["stages"]
    referenced = set()
    for bpmn_id, (lane, stage, sla, form) in table.items():
        task_spec = spec.task_specs[bpmn_id]
        assert task_spec.lane == lane, bpmn_id
        props = task_spec.extensions["properties"]
        assert props["stage"] == stage and stage in stages, bpmn_id
        assert props["slaBusinessDays"] == str(sla), bpmn_id
        assert props["formJsonSchemaFilename"] == f"{form}.schema.json"
        assert props["formUiSchemaFilename"] == f"{form}.ui.json"
        assert task_spec.documentation and len(task_spec.documentation) > 80, bpmn_id
        assert task_spec.bpmn_name, bpmn_id
        referenced |= {props["formJsonSchemaFilename"], props["formUiSchemaFilename"]}
        schema = _load_json(folder / props["formJsonSchemaFilename"])
        assert check_form_schema(schema) == [], bpmn_id
        assert schema["title"] == task_spec.bpmn_name, bpmn_id
    # every form file in the folder is used, and every used one exists
    files = {p.name for p in folder.iterdir() if p.is_file() and p.name != "process.json"}
    assert files == referenced


def _walk_properties(schema, path=""):
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}{name}", prop
        if prop.get("type") == "object":
            yield from _walk_properties(prop, f"{path}{name}.")
        items = prop.get("items")
        if isinstance(items, dict) and items.get("type") == "object":
            yield from _walk_properties(items, f"{path}{name}[].")


def test_form_conventions():
    negative = {"aprovada": "reprovada", "ajustar": "desistir"}
    for path, schema, ui in _all_forms():
        name = path.name
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["type"] == "object" and schema["title"], name
        assert check_form_schema(schema) == [], name
        assert sorted(ui["ui:order"]) == sorted(schema["properties"]), name
        for key, value in ui.items():
            assert key.startswith("ui:") or key in schema["properties"], (name, key)
            if isinstance(value, dict) and "ui:enumNames" in value:
                assert len(value["ui:enumNames"]) == len(schema["properties"][key]["enum"])
        for group in ui.get("ui:groups", []):
            assert group["title"] and set(group["fields"]) <= set(schema["properties"])
        for field_path, prop in _walk_properties(schema):
            assert prop.get("title"), (name, field_path)
            if prop.get("format") == "file":
                # the Chaves folder and the e-Gestor request need the .pfx with its key
                with_key = name.startswith("instalar") or field_path == "certificado_pfx"
                expected = ["certificate_with_key"] if with_key else ["certificate"]
                assert prop["x-accept"] == expected, (name, field_path)
            if prop.get("readOnly"):
                assert field_path not in schema.get("required", []), (name, field_path)
        props = schema["properties"]
        if "decision" in props:
            values = props["decision"]["enum"]
            assert len(values) == 2 and negative[values[0]] == values[1], name
            assert props["decision"]["x-prefill"] is False
            assert props["motivo"]["x-prefill"] is False
            assert "decision" in schema["required"]
            conditional = [
                c
                for c in schema.get("allOf", [])
                if c["if"]
                == {"properties": {"decision": {"const": values[1]}}, "required": ["decision"]}
            ]
            assert conditional and conditional[0]["then"]["required"] == ["motivo"], name


def test_secrets():
    forms = {p.name: s for p, s, _ in _all_forms()}
    assert secret_fields(forms["gerar-contra-chave.schema.json"]) == {"contra_chave"}
    assert secret_fields(forms["gerar-token.schema.json"]) == {"token"}
    assert secret_fields(forms["gerar-novo-token.schema.json"]) == {"token"}
    # token and contra-chave are on file: the request shows them (read-only, to its lane)
    # and does not ask for them again
    solicitar = forms["solicitar-novo-credenciamento.schema.json"]
    assert secret_fields(solicitar) == {"token", "contra_chave", "certificado_senha"}
    for name in ("token", "contra_chave"):
        assert solicitar["properties"][name]["readOnly"] is True
        assert name not in solicitar["required"]
    assert "token_cpf" not in solicitar["properties"]
    assert secret_fields(forms["instalar-certificado.schema.json"]) == {
        "certificado_instalado_senha"
    }
    assert secret_fields(forms["obter-novo-certificado.schema.json"]) == {"senha"}
    # the renewal of a PEC credential reads the .pfx placed in the Chaves folder
    chaves = forms["instalar-certificado-chaves.schema.json"]
    assert secret_fields(chaves) == {"certificado_instalado_senha"}
    assert chaves["properties"]["certificado_instalado_senha"]["format"] == "password"
    assert secret_fields(forms["reabilitar-certificado-pec.schema.json"]) == set()
    # passwords are writeOnly (never kept); token and contra-chave are kept encrypted
    for name, schema in forms.items():
        for field in secret_fields(schema):
            prop = schema["properties"][field]
            is_password = "senha" in field
            assert prop.get("writeOnly", False) is is_password, (name, field)
    # the certificate's password in the PEC is typed in the PEC only
    habilitar = forms["habilitar-rnds-pec.schema.json"]
    assert secret_fields(habilitar) == set()
    assert habilitar["properties"]["senha_digitada_no_pec"]["const"] is True
    # the renewal's certificate must outlast the current one (checked by the engine)
    renewal = forms["obter-novo-certificado.schema.json"]["properties"]["novo_certificado"]
    assert renewal["x-renewal"] is True


def test_token_forms_share_their_fields():
    gerar = _load_json(PEC_FORMS / "gerar-token.schema.json")
    novo = _load_json(PEC_FORMS / "gerar-novo-token.schema.json")
    assert {k: v for k, v in novo["properties"].items() if k != "token_valido_ate"} == gerar[
        "properties"
    ]
    assert novo["required"] == gerar["required"]
    assert novo["properties"]["token_valido_ate"]["readOnly"] is True
    props = gerar["properties"]
    assert props["token_cpf"]["format"] == "cpf"
    assert props["token_gerado_em"]["format"] == "date"
    assert props["token_estabelecimento"]["readOnly"] is True


def _invalid(schema_file, data, ctx_data=None):
    schema = _load_json(schema_file)
    with pytest.raises(FormInvalid) as exc:
        validate_form(schema, data, form_context(ctx_data))
    return exc.value.errors


def test_request_form_rules():
    path = PEC_FORMS / "solicitar-novo-credenciamento.schema.json"
    schema = _load_json(path)
    assert validate_form(schema, SOLICITACAO, form_context())["cpf_solicitante"] == CPF_GESTOR
    assert "certificado_pfx" not in validate_form(schema, SOLICITACAO_SEM_A1, form_context())
    # a .pfx is required unless the certificate is generated in e-Gestor AB
    no_pfx = dict(SOLICITACAO)
    del no_pfx["certificado_pfx"]
    assert _invalid(path, no_pfx) == {"certificado_pfx": "Campo obrigatório."}
    repeated = dict(SOLICITACAO, ubs=[{"cnes": "0011274"}, {"cnes": "0011274"}])
    assert _invalid(path, repeated) == {"ubs.1.cnes": "CNES repetido na lista de UBS."}
    assert "ubs" in _invalid(path, dict(SOLICITACAO, ubs=[]))
    assert "aceite_termo" in _invalid(path, dict(SOLICITACAO, aceite_termo=False))
    assert "cpf_solicitante" in _invalid(path, dict(SOLICITACAO, cpf_solicitante="12345678900"))
    assert "gestor_cns" in _invalid(path, dict(SOLICITACAO, gestor_cns="123"))
    # identifiers are stored normalized, so the gateway compares digits with digits
    masked = dict(SOLICITACAO, cpf_solicitante="529.982.247-25")
    assert validate_form(schema, masked, form_context())["cpf_solicitante"] == CPF_GESTOR


def test_decision_and_date_rules():
    registrar = PEC_FORMS / "registrar-credencial-gerada.schema.json"
    assert _invalid(registrar, {"decision": "reprovada"}) == {"motivo": "Campo obrigatório."}
    assert _invalid(registrar, {"decision": "aprovada"}) == {
        "identificador_solicitante": "Campo obrigatório."
    }
    assert "identificador_solicitante" in _invalid(
        registrar, {"decision": "aprovada", "identificador_solicitante": "40-111"}
    )
    ajustar = PEC_FORMS / "ajustar-solicitacao.schema.json"
    assert _invalid(ajustar, {"decision": "desistir"}) == {"motivo": "Campo obrigatório."}
    habilitar = PEC_FORMS / "habilitar-rnds-pec.schema.json"
    errors = _invalid(habilitar, dict(HABILITACAO, validade_certificado="2026-03-01"))
    assert errors == {
        "validade_certificado": "A validade do certificado deve ser posterior à data de inclusão."
    }
    instalar = PEC_FORMS / "instalar-certificado.schema.json"
    assert "sistema_operacional" in _invalid(instalar, dict(INSTALACAO, sistema_operacional="Mac"))
    assert "pasta_chaves_criada" in _invalid(instalar, dict(INSTALACAO, pasta_chaves_criada=False))
    atualizar = RENOV_FORMS / "atualizar-certificado-conector.schema.json"
    assert _invalid(atualizar, {"confirmacao": True}) == {"data_atualizacao": "Campo obrigatório."}
    reabilitar = RENOV_FORMS / "reabilitar-certificado-pec.schema.json"
    errors = _invalid(reabilitar, dict(REABILITACAO, validade_certificado="2026-04-01"))
    assert errors == {
        "validade_certificado": "A validade do certificado deve ser posterior à data de inclusão."
    }
    assert set(_invalid(reabilitar, dict(REABILITACAO, certificado_desabilitado=False))) == {
        "certificado_desabilitado"
    }
    assert set(_invalid(reabilitar, dict(REABILITACAO, identificador_solicitante="40-111"))) == {
        "identificador_solicitante"
    }
    chaves = RENOV_FORMS / "instalar-certificado-chaves.schema.json"
    assert set(_invalid(chaves, dict(INSTALACAO_CHAVES, pasta_chaves=False))) == {"pasta_chaves"}
    no_file = {k: v for k, v in INSTALACAO_CHAVES.items() if k != "certificado_instalado"}
    assert _invalid(chaves, no_file) == {"certificado_instalado": "Campo obrigatório."}


def test_instalar_documents_both_folders(pec):
    spec, _ = pec
    doc = spec.task_specs["instalar_certificado"].documentation
    # seed 004: a folder named "Chaves"; the Linux path is the installation's (asked)
    assert "C:\\Program Files\\e-SUS\\webserver\\Chaves" in doc
    assert "/opt/e-SUS/webserver/Chaves" in doc and "informe o caminho" in doc
    assert ".cer não serve" in doc


def test_renewal_documents_the_server_side_checks(renov):
    spec, _ = renov
    doc = spec.task_specs["obter_novo_certificado"].documentation
    assert "mesmo CNPJ" in doc and "vence depois" in doc


def test_pec_renewal_documents_the_seed_steps(renov):
    """Seed 004: the .pfx/.p12 with its key in the Chaves folder; in the PEC, "Desabilitar
    certificado", then choose the new one, its password and the identificador, "Habilitar"."""
    spec, _ = renov
    doc = spec.task_specs["instalar_certificado_chaves"].documentation
    assert "C:\\Program Files\\e-SUS\\webserver\\Chaves" in doc
    assert "/opt/e-SUS/webserver/Chaves" in doc and "informe o caminho" in doc
    assert "com a chave" in doc and ".pfx ou .p12" in doc
    doc = spec.task_specs["reabilitar_certificado_pec"].documentation
    for step in (
        "Configuração RNDS",
        "Desabilitar certificado",
        "senha",
        "identificador",
        "Habilitar",
    ):
        assert step in doc, step
    assert doc.index("Desabilitar certificado") < doc.index("“Habilitar”")
    ui = _load_json(RENOV_FORMS / "instalar-certificado-chaves.ui.json")
    names = ui["sistema_operacional"]["ui:enumNames"]
    assert "C:\\Program Files\\e-SUS\\webserver\\Chaves" in names[0]
    assert "Chaves" in names[1] and "instalado" in names[1]


# --------------------------------------------------------------- gateways


def _flows(tree):
    return {f.get("id"): f for f in tree.findall(".//bpmn:process/bpmn:sequenceFlow", NS)}


def test_gateways_defaults_and_conditions():
    tree = etree.parse(str(PEC_FILE))
    flows = _flows(tree)
    gateways = tree.findall(".//bpmn:process/bpmn:exclusiveGateway", NS)
    conditions = {}
    for gw in gateways:
        outgoing = [flows[o.text] for o in gw.findall("bpmn:outgoing", NS)]
        if len(outgoing) == 1:  # the merge after the certificate question
            assert gw.get("id") == "gw_certificado_juncao"
            continue
        assert len(outgoing) == 2, gw.get("id")
        default = gw.get("default")
        assert default in {f.get("id") for f in outgoing}, gw.get("id")
        for flow in outgoing:
            cond = flow.find("bpmn:conditionExpression", NS)
            if flow.get("id") == default:
                assert cond is None
            else:
                conditions[gw.get("id")] = cond.text.strip()
    assert conditions == {
        "gw_possui_certificado_a1": "possui_certificado_a1 == True",
        "gw_mesmo_cpf": "cpf_solicitante == token_cpf",
        "gw_credencial_aprovada": 'decision == "reprovada"',
        "gw_ajustar_ou_desistir": 'decision == "desistir"',
    }
    # the safe way is the default: a different CPF goes back to the request
    assert flows["flow_cpf_diferente"].get("targetRef") == "solicitar_novo_credenciamento"
    renewal = etree.parse(str(RENOV_FILE))
    [gw] = renewal.findall(".//bpmn:process/bpmn:exclusiveGateway", NS)
    assert gw.get("id") == "gw_credencial_pec"
    renewal_flows = _flows(renewal)
    # the connector is the default: a renewal started without eh_pec runs as before
    assert gw.get("default") == "flow_conector"
    assert renewal_flows["flow_conector"].get("targetRef") == "atualizar_certificado_conector"
    pec_flow = renewal_flows["flow_pec"]
    assert pec_flow.get("targetRef") == "instalar_certificado_chaves"
    condition = pec_flow.find("bpmn:conditionExpression", NS).text.strip()
    assert condition == 'globals().get("eh_pec") is True'


# ------------------------------------------------------------- process.json


def test_process_json_pec(pec):
    spec, _ = pec
    manifest = _load_json(PEC_FORMS / "process.json")
    # the PEC credential the habilitation brings (docs/credentials.md), checked apart
    block = manifest.pop("credential")
    assert block["kind"] == "request"
    assert [u["on_task"] for u in block["updates"]] == [
        "solicitar_novo_credenciamento", "registrar_credencial_gerada", "instalar_certificado",
        "habilitar_rnds_pec",
    ]  # fmt: skip
    assert block["updates"][0]["set"]["is_pec"] == {"value": True}
    assert manifest == {
        "title": "Habilitação do PEC e-SUS APS na RNDS",
        "lanes": {
            "Gestor Municipal": "gestor_municipal",
            "Administrador Municipal": "admin_municipal",
            "Administrador da Instalação": "admin_instalacao",
            "DATASUS": "datasus",
        },
        "start_roles": ["admin", "gestor_municipal"],
        "per_portfolio": False,
        "start_variables": [],
        "stages": PEC_STAGES,
        "start_data": ["certificate", "govbr_account", "establishment"],
        "form_context": ["estabelecimento"],
        "header_fields": ["numero_solicitacao", "identificador_solicitante"],
        "rejection": {"field": "decision", "values": ["reprovada"], "reason": "motivo"},
    }
    used = {
        s.extensions["properties"]["stage"]
        for s in spec.task_specs.values()
        if getattr(s, "extensions", {}).get("properties", {}).get("stage")
    }
    assert used == set(PEC_STAGES)


def test_process_json_renewal(renov):
    spec, _ = renov
    manifest = _load_json(RENOV_FORMS / "process.json")
    credential = manifest.pop("credential")  # tests/unit/test_bpmn_after_golive.py
    assert manifest == {
        "title": "Renovação de certificado digital",
        "lanes": {
            "Gestor": "gestor",
            "Integrador": "integrador",
            "Administrador da Instalação": "admin_instalacao",
            "Administrador Municipal": "admin_municipal",
        },
        "start_roles": ["admin", "gestor"],
        "per_portfolio": False,
        "start_variables": [
            "certificado_atual",
            "credential_id",
            "eh_pec",
            "identificador_solicitante",
        ],
        "stages": [
            "Renovação do certificado",
            "Atualização no conector",
            "Instalação no PEC",
            "Habilitação no PEC",
            "Certificado renovado",
        ],
        "start_data": ["certificate", "govbr_account", "establishment"],
        "form_context": ["estabelecimento"],
        "header_fields": ["numero_solicitacao", "identificador_solicitante"],
        "rejection": {"field": "decision", "values": ["reprovada"], "reason": "motivo"},
    }
    assert credential["kind"] == "renewal"
    assert credential["start"]["eh_pec"] == "is_pec"
    used = {
        s.extensions["properties"]["stage"]
        for s in spec.task_specs.values()
        if getattr(s, "extensions", {}).get("properties", {}).get("stage")
    }
    assert used == set(manifest["stages"])


# --------------------------------------------------------------------- DI


@pytest.mark.parametrize(("path", "process_id"), [(PEC_FILE, PEC_ID), (RENOV_FILE, RENOV_ID)])
def test_diagram_interchange(path, process_id):
    assert_diagram_interchange(path, process_id)


# --------------------------------------------- the Chaves folder: a .pfx with its key


@pytest.mark.parametrize(
    ("process", "bpmn_id", "data"),
    [("pec", "instalar_certificado", INSTALACAO), ("renov", "instalar_certificado_chaves",
                                                   INSTALACAO_CHAVES)],
)  # fmt: skip
def test_chaves_folder_needs_the_certificate_with_its_key(request, process, bpmn_id, data):
    spec, subprocesses = request.getfixturevalue(process)
    schema = form_schema(BpmnWorkflow(spec, subprocesses), bpmn_id)
    # the .pfx/.p12 with its key passes
    validate_form(schema, copy.deepcopy(data), form_context())
    # a public certificate (.cer) is refused at the field, saying why
    with pytest.raises(FormInvalid) as refused:
        validate_form(schema, dict(data, certificado_instalado="file-cer-1"), form_context())
    message = refused.value.errors["certificado_instalado"]
    assert ".pfx ou .p12" in message and "chave" in message
    # the page's file picker offers only .pfx/.p12 there
    assert schema["properties"]["certificado_instalado"]["x-accept"] == ["certificate_with_key"]


def test_pec_request_refuses_a_cer(pec, clock):
    wf = start_pec(pec, certificado=True)
    run_until_request(wf)
    [solicitar] = ready(wf)
    schema = form_schema(wf, "solicitar_novo_credenciamento")
    with pytest.raises(FormInvalid) as refused:
        validate_form(
            schema, dict(SOLICITACAO, certificado_pfx="file-cer-1"), form_context(solicitar.data)
        )
    assert "chave" in refused.value.errors["certificado_pfx"]


@pytest.mark.parametrize(
    ("process", "bpmn_id", "data"),
    [("pec", "instalar_certificado", INSTALACAO), ("renov", "instalar_certificado_chaves",
                                                   INSTALACAO_CHAVES)],
)  # fmt: skip
def test_chaves_folder_paths(request, process, bpmn_id, data):
    spec, subprocesses = request.getfixturevalue(process)
    wf = BpmnWorkflow(spec, subprocesses)
    schema = form_schema(wf, bpmn_id)
    ui = _load_json(_forms_dir(wf) / bpmn_id.replace("_", "-").join(("", ".ui.json")))
    windows, linux = ui["sistema_operacional"]["ui:enumNames"]
    assert windows.endswith("C:\\Program Files\\e-SUS\\webserver\\Chaves")  # as in seed 004
    assert "Chaves" in linux
    linux_data = dict(data, sistema_operacional="Linux")
    # on Linux the installation's own path is asked, and it must end in the Chaves folder
    without = {k: v for k, v in linux_data.items() if k != "pasta_chaves_linux"}
    with pytest.raises(FormInvalid) as missing:
        validate_form(schema, copy.deepcopy(without), form_context())
    assert "pasta_chaves_linux" in missing.value.errors
    with pytest.raises(FormInvalid) as wrong:
        validate_form(
            schema, dict(linux_data, pasta_chaves_linux="/opt/e-SUS/chaves"), form_context()
        )
    assert "Chaves" in wrong.value.errors["pasta_chaves_linux"]
    kept = validate_form(
        schema, dict(linux_data, pasta_chaves_linux="/srv/esus/webserver/Chaves"), form_context()
    )
    assert kept["pasta_chaves_linux"] == "/srv/esus/webserver/Chaves"
    # on Windows the question is hidden: its value is dropped, never validated
    on_windows = validate_form(
        schema,
        dict(data, sistema_operacional="Windows", pasta_chaves_linux="not a path"),
        form_context(),
    )
    assert "pasta_chaves_linux" not in on_windows
