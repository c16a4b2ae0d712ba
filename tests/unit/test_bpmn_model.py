"""The Credenciamento RNDS model (processes/credenciamento-rnds.bpmn) run in memory.

Pure SpiffWorkflow 3.2.0: no database, no web layer. What these tests pin down about
the library (checked by running it):

- ``SpiffBpmnParser`` exposes ``<spiffworkflow:properties>`` as
  ``task_spec.extensions["properties"]`` (a dict of *strings*, so ``slaBusinessDays`` is
  ``"5"``), for user tasks and for end events alike; ``<spiffworkflow:preScript>`` shows up
  as ``extensions["preScript"]`` and runs when the task becomes READY.
- A plain end event inside one branch of a parallel split does NOT finish the workflow:
  the other branch stays READY and ``is_completed()`` is False. The "desistir" end event
  is therefore a terminate end event, which cancels every unfinished task and completes
  the workflow (see ``test_plain_end_event_would_leave_the_integrator_branch_running``).
- ``task.task_spec.lane`` is the lane *name*.
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.process import VALIDATOR
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from tests.support.bpmn import FLOW_NODE_TAGS, NS

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
BPMN_FILE = PROCESSES / "credenciamento-rnds.bpmn"
FORMS_DIR = PROCESSES / "credenciamento-rnds"
PROCESS_ID = "credenciamento-rnds"
LANES = {"DATASUS", "Gestor", "Integrador"}


# bpmn id -> (lane, stage, SLA in business days)
USER_TASKS = {
    "obter_certificado_digital": ("Gestor", "Preparação", 5),
    "criar_conta_govbr": ("Gestor", "Preparação", 5),
    "solicitar_acesso_homologacao": ("Gestor", "Preparação", 5),
    "avaliar_solicitacao_acesso": ("DATASUS", "Solicitação em análise", 3),
    "ajustar_solicitacao_acesso": ("Gestor", "Reprovada — ajuste pendente", 5),
    "obter_dados_acesso": ("Gestor", "Homologação", 5),
    "ambientar_servicos": ("Integrador", "Preparação", 5),
    "desenvolver_conector": ("Integrador", "Preparação", 10),
    "verificar_conformidade": ("Integrador", "Homologação", 5),
    "ajustar_conector": ("Integrador", "Homologação", 10),
    "registrar_evidencias": ("Integrador", "Homologação", 5),
    "solicitar_acesso_producao": ("Gestor", "Homologação", 5),
    "avaliar_solicitacao_producao": ("DATASUS", "Em análise para produção", 3),
    "decidir_apos_reprovacao_producao": ("Gestor", "Reprovada — ajuste pendente", 5),
    "registrar_novas_evidencias": ("Integrador", "Reprovada — ajuste pendente", 5),
    "colocar_em_producao": ("Integrador", "Produção", 5),
}

# -------------------------------------------------------------------- sample data

ESTABELECIMENTO = {
    "cnes": "0011274",
    "cnpj": "00394544000185",
    "razao_social": "Hospital Regional Exemplo",
    "nome_fantasia": "HRE",
    "uf": "DF",
    "municipio": "Brasília",
    "cep": "70000000",
    "endereco": "SQS 101 Bloco A",
    "telefone": "6133334444",
    "email": "contato@hre.example",
}
OPERATIONS = [
    {"operacao": "/token", "metodo": "POST"},
    {"operacao": "/Bundle", "metodo": "POST"},
    {"operacao": "/fhir/r4/Patient", "metodo": "GET"},
]

HOMOLOGACAO = {
    "origem_solicitacao": "Outros",
    "certificado": "file-cert-1",
    "estabelecimento_cnes": "0011274",
    "estabelecimento_telefone": "6133334444",
    "estabelecimento_email": "contato@hre.example",
    "possui_filhos": True,
    "filhos": [{"cnes": "0010464"}, {"cnes": "0010472"}],
    "gestor_cns": "898001160660070",
    "gestor_cpf": "52998224725",
    "gestor_nome": "Maria da Silva",
    "gestor_telefone": "61999990000",
    "gestor_email": "maria@hre.example",
    "sistema_nome": "ProntoHosp",
    "sistema_versao": "4.2",
    "sistema_linguagem": "Java",
    "sistema_arquitetura": "Web, cliente-servidor",
    "sistema_banco_dados": "PostgreSQL",
    "sistema_banco_dados_versao": "16",
    "resumo": "Prontuário eletrônico do hospital, com laboratório integrado.",
    "aplicacao_web": True,
    "ip_inicial": "200.130.10.1",
    "ip_final": "200.130.10.20",
    "tipo_equipe": "Própria",
    "quantidade_atendimentos": 120000,
    "data_levantamento": "2024-08-01",
    "integra_outros_sistemas": True,
    "integracoes": [{"sistema": "LIS Lab", "tipo_integracao": "HL7 v2"}],
    "periodos_maior_acesso": [{"periodo": "Manhã", "inicio": "07:00", "fim": "11:59"}],
    "atendimentos_minimo_dia": 990,
    "atendimentos_maximo_dia": 1000,
    "acessos_pico": 999,
    "data_inicio": "2024-08-16",
    "data_fim": "2034-08-16",
    "servicos": OPERATIONS,
    "aceite_termo": True,
}
APROVADA_ACESSO = {
    "decision": "aprovada",
    "numero_solicitacao": "3804/2024",
    "identificador_solicitante": "40111",
    "operacoes_aprovadas": OPERATIONS,
}
EVIDENCIAS = {"evidencias": ["file-ev-1", "file-ev-2"], "descricao": "Validador e Bundle."}
PRODUCAO = {
    "data_entrada_producao": "2024-10-01",
    "uf_endpoint": "DF",
    "data_primeiro_envio": "2024-10-02",
    "rnds_id_primeiro_envio": "a1b2c3d4-0000-4000-8000-000000000001",
}
VERIFICACOES_OK = [
    {"operacao": op["operacao"], "metodo": op["metodo"], "resultado": "ok"} for op in OPERATIONS
]

# ------------------------------------------------------------------------ helpers


def _load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def parsed():
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_files([str(BPMN_FILE)])
    return parser.get_spec(PROCESS_ID), parser.get_subprocess_specs(PROCESS_ID)


@pytest.fixture(scope="module")
def tree():
    return etree.parse(str(BPMN_FILE))


def user_task_specs(spec):
    return {s.bpmn_id: s for s in spec.task_specs.values() if type(s).__name__ == "UserTask"}


def form_schema(spec, bpmn_id):
    props = spec.task_specs[bpmn_id].extensions["properties"]
    return _load_json(FORMS_DIR / props["formJsonSchemaFilename"])


# date / email / ipv4 are checked as jsonschema knows them; "time" is our HH:MM (the
# built-in checker wants RFC 3339 with seconds) and cpf/cnes/... are the lead's formats.
FORMAT_CHECKER = FormatChecker(formats=["date", "email", "ipv4"])


def start(parsed, *, certificado=False, govbr=False):
    spec, subprocesses = parsed
    wf = BpmnWorkflow(spec, subprocesses)
    wf.task_tree.data.update(
        {
            "possui_certificado_valido": certificado,
            "possui_conta_govbr": govbr,
            "estabelecimento": dict(ESTABELECIMENTO),
            "portfolio": {
                "code": "REL",
                "name": "Integração de Resultados de Exames Laboratoriais à RNDS",
                "operations": OPERATIONS,
            },
        }
    )
    wf.do_engine_steps()
    return wf


def ready(wf, lane=None):
    tasks = wf.get_tasks(state=TaskState.READY, manual=True)
    for t in tasks:
        assert t.task_spec.lane in LANES, t.task_spec.bpmn_id
    if lane is not None:
        tasks = [t for t in tasks if t.task_spec.lane == lane]
    return tasks


def ready_ids(wf):
    return sorted(t.task_spec.bpmn_id for t in ready(wf))


def complete(wf, bpmn_id, **data):
    """Complete the single READY human task ``bpmn_id`` with form data (checked
    against that task's JSON Schema, so the data uses the forms' field names)."""
    matches = [t for t in ready(wf) if t.task_spec.bpmn_id == bpmn_id]
    assert len(matches) == 1, f"{bpmn_id} not READY; READY: {ready_ids(wf)}"
    task = matches[0]
    assert task.task_spec.lane == USER_TASKS[bpmn_id][0]
    schema = form_schema(wf.spec, bpmn_id)
    errors = list(Draft202012Validator(schema, format_checker=FORMAT_CHECKER).iter_errors(data))
    assert not errors, [e.message for e in errors]
    task.set_data(**copy.deepcopy(data))
    task.run()
    wf.do_engine_steps()
    return task


def run_gestor_until_access_request(wf, certificado=False, govbr=False):
    if not certificado:
        complete(wf, "obter_certificado_digital", certificado="file-cert-1")
    if not govbr:
        complete(
            wf,
            "criar_conta_govbr",
            cpf_responsavel="52998224725",
            nivel_conta="prata",
            conta_confirmada=True,
        )
    complete(wf, "solicitar_acesso_homologacao", **HOMOLOGACAO)


def run_integrator_preparation(wf):
    complete(wf, "ambientar_servicos", observacoes="Estudado o Bundle de resultado de exame.")
    complete(
        wf,
        "desenvolver_conector",
        conector_nome="conector-rnds",
        conector_versao="1.0.0",
        fornecedor_ou_repositorio="https://git.example/conector",
    )


def run_from_join_to_end(wf):
    complete(wf, "verificar_conformidade", verificacoes=VERIFICACOES_OK, decision="pronto")
    complete(wf, "registrar_evidencias", **EVIDENCIAS)
    complete(wf, "solicitar_acesso_producao", evidencias_revisadas=True)
    complete(wf, "avaliar_solicitacao_producao", decision="aprovada")
    complete(wf, "colocar_em_producao", **PRODUCAO)


def completed_ids(wf):
    return [
        t.task_spec.bpmn_id
        for t in wf.get_tasks(state=TaskState.COMPLETED)
        if t.task_spec.bpmn_id in USER_TASKS
    ]


def reached_end_events(wf):
    return sorted(
        t.task_spec.bpmn_id
        for t in wf.get_tasks(state=TaskState.COMPLETED)
        if type(t.task_spec).__name__ == "EndEvent"
    )


# ---------------------------------------------------------------------- parsing


def test_parses_with_spiff_validator(parsed):
    spec, subprocesses = parsed
    assert spec.name == PROCESS_ID
    assert spec.description == "Credenciamento RNDS"
    assert subprocesses == {}
    lanes = {s.lane for s in spec.task_specs.values() if s.bpmn_id is not None}
    assert lanes == LANES
    assert set(user_task_specs(spec)) == set(USER_TASKS)


def test_collaboration_and_lanes(tree):
    participants = tree.findall(".//bpmn:collaboration/bpmn:participant", NS)
    assert len(participants) == 1
    assert participants[0].get("processRef") == PROCESS_ID
    process = tree.find(f".//bpmn:process[@id='{PROCESS_ID}']", NS)
    assert process.get("isExecutable") == "true"
    assert process.get("name") == "Credenciamento RNDS"
    lanes = process.findall("./bpmn:laneSet/bpmn:lane", NS)
    assert sorted(lane.get("name") for lane in lanes) == sorted(LANES)
    # every flow node is in exactly one lane
    node_ids = [n.get("id") for tag in FLOW_NODE_TAGS for n in process.findall(f"bpmn:{tag}", NS)]
    refs = [r.text for r in process.findall("./bpmn:laneSet/bpmn:lane/bpmn:flowNodeRef", NS)]
    assert sorted(refs) == sorted(node_ids)


# -------------------------------------------------------------------- the paths


def test_happy_path(parsed):
    wf = start(parsed)
    # right after the start both branches are open
    assert ready_ids(wf) == ["ambientar_servicos", "obter_certificado_digital"]
    assert [t.task_spec.bpmn_id for t in ready(wf, "Integrador")] == ["ambientar_servicos"]
    assert [t.task_spec.bpmn_id for t in ready(wf, "Gestor")] == ["obter_certificado_digital"]

    run_gestor_until_access_request(wf)
    assert [t.task_spec.bpmn_id for t in ready(wf, "DATASUS")] == ["avaliar_solicitacao_acesso"]
    complete(wf, "avaliar_solicitacao_acesso", **APROVADA_ACESSO)
    complete(
        wf,
        "obter_dados_acesso",
        identificador_solicitante="40111",
        operacoes_aprovadas=OPERATIONS,
        confirmacao=True,
    )
    # the join waits for the integrator branch
    assert ready_ids(wf) == ["ambientar_servicos"]
    run_integrator_preparation(wf)
    assert ready_ids(wf) == ["verificar_conformidade"]
    run_from_join_to_end(wf)

    assert wf.is_completed()
    assert ready(wf) == []
    assert reached_end_events(wf) == ["fim_credenciado"]
    assert sorted(completed_ids(wf)) == sorted(
        [
            "obter_certificado_digital",
            "criar_conta_govbr",
            "solicitar_acesso_homologacao",
            "avaliar_solicitacao_acesso",
            "obter_dados_acesso",
            "ambientar_servicos",
            "desenvolver_conector",
            "verificar_conformidade",
            "registrar_evidencias",
            "solicitar_acesso_producao",
            "avaliar_solicitacao_producao",
            "colocar_em_producao",
        ]
    )
    # workflow.data receives the last task's data on completion
    assert wf.data["rnds_id_primeiro_envio"] == PRODUCAO["rnds_id_primeiro_envio"]
    assert wf.data["identificador_solicitante"] == "40111"


def test_homologation_form_prefill_from_register(parsed):
    """The preScript of 'Solicitar acesso (homologação)' copies the register data (start
    variable ``estabelecimento``) into the form's flat fields."""
    wf = start(parsed, certificado=True, govbr=True)
    [task] = ready(wf, "Gestor")
    assert task.task_spec.bpmn_id == "solicitar_acesso_homologacao"
    schema = form_schema(wf.spec, "solicitar_acesso_homologacao")
    expected = {
        "estabelecimento_cnes": "0011274",
        "estabelecimento_cnpj": "00394544000185",
        "estabelecimento_razao_social": "Hospital Regional Exemplo",
        "estabelecimento_nome_fantasia": "HRE",
        "estabelecimento_uf": "DF",
        "estabelecimento_municipio": "Brasília",
        "estabelecimento_cep": "70000000",
        "estabelecimento_logradouro": "SQS 101 Bloco A",
        "estabelecimento_bairro": "",
        "estabelecimento_telefone": "6133334444",
        "estabelecimento_email": "contato@hre.example",
    }
    for field, value in expected.items():
        assert field in schema["properties"]
        assert task.data[field] == value


def test_homologation_rejected_twice_then_approved(parsed):
    wf = start(parsed)
    run_gestor_until_access_request(wf)
    for attempt in (1, 2):
        complete(
            wf,
            "avaliar_solicitacao_acesso",
            decision="reprovada",
            motivo=f"IPs privados na faixa informada ({attempt})",
        )
        [task] = ready(wf, "Gestor")
        assert task.task_spec.bpmn_id == "ajustar_solicitacao_acesso"
        assert task.task_spec.extensions["properties"]["stage"] == "Reprovada — ajuste pendente"
        # DATASUS's reason is kept under its own name for the form (preScript)
        reason = f"IPs privados na faixa informada ({attempt})"
        assert task.data["motivo_reprovacao_acesso"] == reason
        # the homologation data is there to prefill the form
        assert task.data["sistema_nome"] == "ProntoHosp"
        assert ready(wf, "DATASUS") == []
        data = dict(
            HOMOLOGACAO, ip_inicial="200.130.10.1", ip_final="200.130.10.30", decision="ajustar"
        )
        complete(wf, "ajustar_solicitacao_acesso", **data)
        assert [t.task_spec.bpmn_id for t in ready(wf, "DATASUS")] == ["avaliar_solicitacao_acesso"]
    complete(wf, "avaliar_solicitacao_acesso", **APROVADA_ACESSO)
    assert [t.task_spec.bpmn_id for t in ready(wf, "Gestor")] == ["obter_dados_acesso"]
    complete(
        wf,
        "obter_dados_acesso",
        identificador_solicitante="40111",
        operacoes_aprovadas=OPERATIONS,
        confirmacao=True,
    )
    run_integrator_preparation(wf)
    run_from_join_to_end(wf)
    assert wf.is_completed()
    assert completed_ids(wf).count("avaliar_solicitacao_acesso") == 3
    assert completed_ids(wf).count("ajustar_solicitacao_acesso") == 2


def test_desistir_terminates_the_whole_instance(parsed):
    wf = start(parsed, certificado=True, govbr=True)
    complete(wf, "solicitar_acesso_homologacao", **HOMOLOGACAO)
    # the integrator has already started
    complete(wf, "ambientar_servicos")
    assert ready_ids(wf) == ["avaliar_solicitacao_acesso", "desenvolver_conector"]
    complete(wf, "avaliar_solicitacao_acesso", decision="reprovada", motivo="Sem CNES ativo")
    complete(
        wf,
        "ajustar_solicitacao_acesso",
        decision="desistir",
        motivo="O estabelecimento não vai mais integrar agora.",
    )
    assert wf.is_completed()
    for lane in LANES:
        assert ready(wf, lane) == []
    assert wf.get_tasks(state=TaskState.NOT_FINISHED_MASK) == []
    assert reached_end_events(wf) == ["fim_sem_credenciamento"]
    cancelled = {t.task_spec.bpmn_id for t in wf.get_tasks(state=TaskState.CANCELLED)}
    assert "desenvolver_conector" in cancelled
    end = wf.spec.task_specs["fim_sem_credenciamento"]
    assert end.extensions["properties"] == {"stage": "Encerrado sem credenciamento"}
    assert type(end.event_definition).__name__ == "TerminateEventDefinition"
    # a terminate end event copies its task data to workflow.data
    assert wf.data["decision"] == "desistir"


def test_plain_end_event_would_leave_the_integrator_branch_running():
    """Why 'Encerrado sem credenciamento' is a terminate end event: with a plain end
    event spiff finishes only the gestor branch."""
    text = BPMN_FILE.read_text(encoding="utf-8")
    marker = '<bpmn:terminateEventDefinition id="fim_sem_credenciamento_terminate" />'
    assert text.count(marker) == 1
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(text.replace(marker, "").encode("utf-8"), filename="plain.bpmn")
    wf = start(
        (parser.get_spec(PROCESS_ID), parser.get_subprocess_specs(PROCESS_ID)),
        certificado=True,
        govbr=True,
    )
    complete(wf, "solicitar_acesso_homologacao", **HOMOLOGACAO)
    complete(wf, "avaliar_solicitacao_acesso", decision="reprovada", motivo="x")
    complete(wf, "ajustar_solicitacao_acesso", decision="desistir", motivo="y")
    assert reached_end_events(wf) == ["fim_sem_credenciamento"]
    assert not wf.is_completed()
    assert ready_ids(wf) == ["ambientar_servicos"]


def test_pronto_loop(parsed):
    wf = start(parsed, certificado=True, govbr=True)
    complete(wf, "solicitar_acesso_homologacao", **HOMOLOGACAO)
    complete(wf, "avaliar_solicitacao_acesso", **APROVADA_ACESSO)
    complete(
        wf,
        "obter_dados_acesso",
        identificador_solicitante="40111",
        operacoes_aprovadas=OPERATIONS,
        confirmacao=True,
    )
    run_integrator_preparation(wf)
    for version in ("1.0.1", "1.0.2"):
        failing = copy.deepcopy(VERIFICACOES_OK)
        failing[1]["resultado"] = "nao_ok"
        failing[1]["observacoes"] = "Bundle rejeitado: perfil inválido."
        complete(
            wf,
            "verificar_conformidade",
            verificacoes=failing,
            decision="nao_pronto",
            motivo="POST /Bundle falha na validação.",
        )
        assert ready_ids(wf) == ["ajustar_conector"]
        complete(
            wf, "ajustar_conector", ajustes="Perfil do Bundle corrigido.", conector_versao=version
        )
        assert ready_ids(wf) == ["verificar_conformidade"]
    run_from_join_to_end(wf)
    assert wf.is_completed()
    assert completed_ids(wf).count("verificar_conformidade") == 3
    assert completed_ids(wf).count("ajustar_conector") == 2
    assert wf.data["conector_versao"] == "1.0.2"


def test_pronto_requires_every_check_ok():
    schema = _load_json(FORMS_DIR / "verificar-conformidade.schema.json")
    validator = Draft202012Validator(schema)
    failing = copy.deepcopy(VERIFICACOES_OK)
    failing[0]["resultado"] = "nao_ok"
    assert not validator.is_valid({"verificacoes": failing, "decision": "pronto"})
    assert not validator.is_valid({"verificacoes": failing, "decision": "nao_pronto"})
    assert validator.is_valid({"verificacoes": failing, "decision": "nao_pronto", "motivo": "x"})
    assert validator.is_valid({"verificacoes": VERIFICACOES_OK, "decision": "pronto"})


def test_production_rejection_loop(parsed):
    wf = start(parsed, certificado=True, govbr=True)
    complete(wf, "solicitar_acesso_homologacao", **HOMOLOGACAO)
    complete(wf, "avaliar_solicitacao_acesso", **APROVADA_ACESSO)
    complete(
        wf,
        "obter_dados_acesso",
        identificador_solicitante="40111",
        operacoes_aprovadas=OPERATIONS,
        confirmacao=True,
    )
    run_integrator_preparation(wf)
    complete(wf, "verificar_conformidade", verificacoes=VERIFICACOES_OK, decision="pronto")
    complete(wf, "registrar_evidencias", **EVIDENCIAS)
    for attempt in (1, 2):
        complete(wf, "solicitar_acesso_producao", evidencias_revisadas=True)
        complete(
            wf,
            "avaliar_solicitacao_producao",
            decision="reprovada",
            motivo=f"Falta o print do cabeçalho da resposta ({attempt}).",
        )
        [decide] = ready(wf)
        assert decide.task_spec.bpmn_id == "decidir_apos_reprovacao_producao"
        assert decide.task_spec.lane == "Gestor"
        complete(wf, "decidir_apos_reprovacao_producao", decision="novas_evidencias")
        [task] = ready(wf)
        assert task.task_spec.bpmn_id == "registrar_novas_evidencias"
        assert task.task_spec.lane == "Integrador"
        assert task.data["motivo_reprovacao_producao"] == (
            f"Falta o print do cabeçalho da resposta ({attempt})."
        )
        complete(
            wf,
            "registrar_novas_evidencias",
            evidencias=[f"file-ev-{attempt}-b"],
            descricao="Print do cabeçalho Location.",
        )
        assert ready_ids(wf) == ["solicitar_acesso_producao"]
    complete(wf, "solicitar_acesso_producao", evidencias_revisadas=True)
    complete(wf, "avaliar_solicitacao_producao", decision="aprovada")
    complete(wf, "colocar_em_producao", **PRODUCAO)
    assert wf.is_completed()
    assert reached_end_events(wf) == ["fim_credenciado"]
    assert completed_ids(wf).count("avaliar_solicitacao_producao") == 3
    assert completed_ids(wf).count("registrar_novas_evidencias") == 2


def _to_production_rejection(parsed):
    wf = start(parsed, certificado=True, govbr=True)
    complete(wf, "solicitar_acesso_homologacao", **HOMOLOGACAO)
    complete(wf, "avaliar_solicitacao_acesso", **APROVADA_ACESSO)
    complete(wf, "obter_dados_acesso", identificador_solicitante="40111",
             operacoes_aprovadas=OPERATIONS, confirmacao=True)  # fmt: skip
    run_integrator_preparation(wf)
    complete(wf, "verificar_conformidade", verificacoes=VERIFICACOES_OK, decision="pronto")
    complete(wf, "registrar_evidencias", **EVIDENCIAS)
    complete(wf, "solicitar_acesso_producao", evidencias_revisadas=True)
    complete(wf, "avaliar_solicitacao_producao", decision="reprovada", motivo="Conector falha.")
    assert ready_ids(wf) == ["decidir_apos_reprovacao_producao"]
    return wf


def test_after_a_production_rejection_the_connector_can_be_adjusted_again(parsed):
    """Not only new evidence: the gestor sends the integrador back to the connector, whose
    conformity is checked again before new evidence and a new request (seed 003)."""
    wf = _to_production_rejection(parsed)
    complete(wf, "decidir_apos_reprovacao_producao", decision="ajustar_conector")
    [task] = ready(wf)
    assert (task.task_spec.bpmn_id, task.task_spec.lane) == ("ajustar_conector", "Integrador")
    complete(wf, "ajustar_conector", ajustes="Corrigido o Bundle.", conector_versao="1.0.2")
    complete(wf, "verificar_conformidade", verificacoes=VERIFICACOES_OK, decision="pronto")
    complete(wf, "registrar_evidencias", **EVIDENCIAS)
    complete(wf, "solicitar_acesso_producao", evidencias_revisadas=True)
    complete(wf, "avaliar_solicitacao_producao", decision="aprovada")
    complete(wf, "colocar_em_producao", **PRODUCAO)
    assert reached_end_events(wf) == ["fim_credenciado"]
    assert completed_ids(wf).count("verificar_conformidade") == 2


def test_after_a_production_rejection_the_gestor_can_give_up(parsed):
    wf = _to_production_rejection(parsed)
    complete(wf, "decidir_apos_reprovacao_producao", decision="desistir",
             observacoes="Fica em homologação até a troca de sistema.")  # fmt: skip
    assert wf.is_completed()
    assert reached_end_events(wf) == ["fim_desistencia_producao"]


@pytest.mark.parametrize(
    ("certificado", "govbr", "first_gestor_task"),
    [
        (False, False, "obter_certificado_digital"),
        (False, True, "obter_certificado_digital"),
        (True, False, "criar_conta_govbr"),
        (True, True, "solicitar_acesso_homologacao"),
    ],
)
def test_certificate_and_govbr_skips(parsed, certificado, govbr, first_gestor_task):
    wf = start(parsed, certificado=certificado, govbr=govbr)
    assert [t.task_spec.bpmn_id for t in ready(wf, "Gestor")] == [first_gestor_task]
    run_gestor_until_access_request(wf, certificado=certificado, govbr=govbr)
    assert [t.task_spec.bpmn_id for t in ready(wf, "DATASUS")] == ["avaliar_solicitacao_acesso"]
    done = completed_ids(wf)
    assert ("obter_certificado_digital" in done) is (not certificado)
    assert ("criar_conta_govbr" in done) is (not govbr)


def test_serialization_round_trip_mid_process(parsed):
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
    wf = start(parsed)
    run_gestor_until_access_request(wf)
    complete(wf, "avaliar_solicitacao_acesso", decision="reprovada", motivo="Dados incompletos")
    complete(wf, "ambientar_servicos", observacoes="ok")
    # mid-process: Gestor has 'Ajustar', Integrador has 'Desenvolver conector'
    state = serializer.serialize_json(wf)
    assert json.loads(state)["serializer_version"]
    restored = serializer.deserialize_json(state)

    def states(w):
        return {str(t.id): (t.task_spec.name, t.state) for t in w.get_tasks()}

    assert states(restored) == states(wf)
    assert ready_ids(restored) == ["ajustar_solicitacao_acesso", "desenvolver_conector"]
    [ajustar] = [t for t in ready(restored) if t.task_spec.bpmn_id == "ajustar_solicitacao_acesso"]
    assert ajustar.data["motivo_reprovacao_acesso"] == "Dados incompletos"
    assert ajustar.task_spec.extensions["properties"]["stage"] == "Reprovada — ajuste pendente"

    # the restored workflow runs on to the end
    complete(restored, "ajustar_solicitacao_acesso", **HOMOLOGACAO, decision="ajustar")
    complete(restored, "avaliar_solicitacao_acesso", **APROVADA_ACESSO)
    complete(
        restored,
        "obter_dados_acesso",
        identificador_solicitante="40111",
        operacoes_aprovadas=OPERATIONS,
        confirmacao=True,
    )
    complete(
        restored,
        "desenvolver_conector",
        conector_nome="c",
        conector_versao="1",
        fornecedor_ou_repositorio="Fornecedor X",
    )
    run_from_join_to_end(restored)
    assert restored.is_completed()


# ----------------------------------------------------------- user tasks and forms


def test_user_tasks_lanes_properties_and_forms(parsed):
    spec, _ = parsed
    stages = _load_json(FORMS_DIR / "process.json")["stages"]
    for bpmn_id, task_spec in user_task_specs(spec).items():
        lane, stage, sla = USER_TASKS[bpmn_id]
        assert task_spec.lane == lane, bpmn_id
        props = task_spec.extensions["properties"]
        assert props["stage"] == stage and stage in stages, bpmn_id
        assert props["slaBusinessDays"] == str(sla), bpmn_id  # spiff keeps strings
        assert task_spec.documentation and len(task_spec.documentation) > 40, bpmn_id
        schema_file = FORMS_DIR / props["formJsonSchemaFilename"]
        ui_file = FORMS_DIR / props["formUiSchemaFilename"]
        assert (
            schema_file.name == schema_file.name.lower()
            and "/" not in props["formJsonSchemaFilename"]
        )
        schema, ui = _load_json(schema_file), _load_json(ui_file)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["type"] == "object" and schema["title"], bpmn_id
        assert sorted(ui["ui:order"]) == sorted(schema["properties"]), bpmn_id
        for group in ui.get("ui:groups", []):
            assert group["title"] and set(group["fields"]) <= set(schema["properties"])
        for key in ui:
            assert key.startswith("ui:") or key in schema["properties"], (bpmn_id, key)


def _walk_properties(schema, path=""):
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}{name}", prop
        if prop.get("type") == "object":
            yield from _walk_properties(prop, f"{path}{name}.")
        items = prop.get("items")
        if isinstance(items, dict) and items.get("type") == "object":
            yield from _walk_properties(items, f"{path}{name}[].")


def _all_schemas():
    return {p.name: _load_json(p) for p in sorted(FORMS_DIR.glob("*.schema.json"))}


def test_form_conventions():
    known_formats = {
        "cpf",
        "cnpj",
        "cns",
        "cnes",
        "date",
        "time",
        "email",
        "ipv4",
        "file",
        "password",
    }
    negative = {"aprovada": "reprovada", "pronto": "nao_pronto", "ajustar": "desistir"}
    for name, schema in _all_schemas().items():
        for path, prop in _walk_properties(schema):
            assert prop.get("title"), (name, path)
            if "format" in prop:
                assert prop["format"] in known_formats, (name, path)
            if prop.get("format") == "file":
                assert prop.get("x-accept"), (name, path)
            if prop.get("x-options-from"):
                # Choices come from the portfolio, or (conformity rows) from what DATASUS approved.
                assert prop["x-options-from"] in ("portfolio.operations", "operacoes_aprovadas")
                assert {"operacao", "metodo"} <= set(prop["items"]["properties"])
        props = schema["properties"]
        if name == "decidir-apos-reprovacao-producao.schema.json":
            # three ways on (seed 003): new evidence, back to the connector, or give up — the
            # reason of giving up has its own name, so DATASUS's ``motivo`` stays for the
            # integrador's next form
            assert props["decision"]["enum"] == ["novas_evidencias", "ajustar_conector",
                                                 "desistir"]  # fmt: skip
            assert props["decision"]["x-prefill"] is False and "motivo" not in props
            assert schema["allOf"][0]["then"]["required"] == ["observacoes"]
        elif "decision" in props:
            values = props["decision"]["enum"]
            assert len(values) == 2 and values[0] in negative and values[1] == negative[values[0]]
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
        for rule_holder_path, holder in [("", schema)] + [
            (p, pr["items"])
            for p, pr in _walk_properties(schema)
            if isinstance(pr.get("items"), dict)
        ]:
            for rule in holder.get("x-rules", []):
                assert rule["rule"] in {"differ", "lte", "public_ip", "same_uf", "unique"}
                for field in rule["fields"]:
                    assert field in holder["properties"], (name, rule_holder_path, rule)
                if "item_field" in rule:
                    item_props = holder["properties"][rule["fields"][0]]["items"]["properties"]
                    assert rule["item_field"] in item_props


def test_ui_enum_names_match_the_enums():
    def walk(ui, props, where):
        for field, spec in ui.items():
            if field.startswith("ui:") or not isinstance(spec, dict):
                continue
            prop = props[field]
            if "ui:enumNames" in spec:
                assert len(spec["ui:enumNames"]) == len(prop["enum"]), (where, field)
            if "items" in spec and "properties" in prop["items"]:
                walk(spec["items"], prop["items"]["properties"], f"{where}.{field}[]")

    for schema_file in sorted(FORMS_DIR.glob("*.schema.json")):
        ui_file = schema_file.with_name(schema_file.name.replace(".schema.json", ".ui.json"))
        walk(_load_json(ui_file), _load_json(schema_file)["properties"], ui_file.name)


def test_avaliacao_acesso_conditional_requirements():
    validator = Draft202012Validator(
        _load_json(FORMS_DIR / "avaliar-solicitacao-acesso.schema.json")
    )
    assert validator.is_valid({"decision": "reprovada", "motivo": "x"})
    assert not validator.is_valid({"decision": "reprovada"})
    assert not validator.is_valid({"decision": "aprovada"})
    assert not validator.is_valid(dict(APROVADA_ACESSO, numero_solicitacao="3804/24"))
    assert validator.is_valid(dict(APROVADA_ACESSO, numero_solicitacao="4836"))  # as the portal
    assert validator.is_valid(APROVADA_ACESSO)


def test_homologation_conditional_requirements():
    validator = Draft202012Validator(
        _load_json(FORMS_DIR / "solicitar-acesso-homologacao.schema.json")
    )
    assert validator.is_valid(HOMOLOGACAO)
    for field, value, missing in [
        ("possui_filhos", True, "filhos"),
        ("aplicacao_web", True, "ip_inicial"),
        ("integra_outros_sistemas", True, "integracoes"),
    ]:
        data = dict(HOMOLOGACAO, **{field: value})
        data.pop(missing)
        assert not validator.is_valid(data), field
    assert not validator.is_valid(dict(HOMOLOGACAO, filhos=[]))
    assert not validator.is_valid(dict(HOMOLOGACAO, aceite_termo=False))
    assert not validator.is_valid(dict(HOMOLOGACAO, resumo="x" * 401))
    no_web = {k: v for k, v in HOMOLOGACAO.items() if k not in ("ip_inicial", "ip_final")}
    # the IP range is asked whatever the system (seed 003 marks it *; issue 14 item 6)
    assert not validator.is_valid(dict(no_web, aplicacao_web=False))
    assert validator.is_valid(
        dict(
            HOMOLOGACAO,
            aplicacao_web=False,
            possui_filhos=False,
            filhos=[],
            integra_outros_sistemas=False,
        )
    )


def test_ajustar_form_shares_the_homologation_form():
    homolog = _load_json(FORMS_DIR / "solicitar-acesso-homologacao.schema.json")
    ajustar = _load_json(FORMS_DIR / "ajustar-solicitacao-acesso.schema.json")
    for field, prop in homolog["properties"].items():
        assert ajustar["properties"][field] == prop, field
    assert set(ajustar["properties"]) - set(homolog["properties"]) == {
        "decision",
        "motivo",
        "motivo_reprovacao_acesso",
    }
    assert ajustar["x-rules"] == homolog["x-rules"]
    assert ajustar["properties"]["decision"]["enum"] == ["ajustar", "desistir"]
    # the homologation requirements apply when resubmitting, not when giving up
    [branch] = [
        c for c in ajustar["allOf"] if c["if"]["properties"]["decision"]["const"] == "ajustar"
    ]
    assert branch["then"]["required"] == homolog["required"]
    assert branch["then"]["allOf"] == homolog["allOf"]
    validator = Draft202012Validator(ajustar)
    assert validator.is_valid(dict(HOMOLOGACAO, decision="ajustar"))
    assert not validator.is_valid({"decision": "ajustar"})
    assert validator.is_valid({"decision": "desistir", "motivo": "x"})
    assert not validator.is_valid({"decision": "desistir"})

    homolog_ui = _load_json(FORMS_DIR / "solicitar-acesso-homologacao.ui.json")
    ajustar_ui = _load_json(FORMS_DIR / "ajustar-solicitacao-acesso.ui.json")
    assert ajustar_ui["ui:order"][3:] == homolog_ui["ui:order"]
    assert ajustar_ui["ui:groups"][1:] == homolog_ui["ui:groups"]
    for field in homolog["properties"]:
        assert ajustar_ui.get(field) == homolog_ui.get(field), field


def test_registrar_novas_evidencias_shares_registrar_evidencias():
    base = _load_json(FORMS_DIR / "registrar-evidencias.schema.json")
    novas = _load_json(FORMS_DIR / "registrar-novas-evidencias.schema.json")
    for field, prop in base["properties"].items():
        assert novas["properties"][field] == prop
    assert set(novas["properties"]) - set(base["properties"]) == {"motivo_reprovacao_producao"}
    assert novas["required"] == base["required"]
    evid = base["properties"]["evidencias"]
    assert evid["minItems"] == 1
    assert evid["items"]["format"] == "file"
    assert evid["items"]["x-accept"] == ["application/pdf", "image/png"]


def test_secrets_and_certificates():
    schemas = _all_schemas()
    cert = schemas["obter-certificado-digital.schema.json"]
    assert cert["properties"]["certificado"]["x-accept"] == ["certificate"]
    assert cert["properties"]["senha"]["x-secret"] is True
    assert cert["required"] == ["certificado"]
    homolog = schemas["solicitar-acesso-homologacao.schema.json"]
    assert homolog["properties"]["certificado"]["x-accept"] == ["certificate"]
    assert "certificado" not in homolog["required"]


# --------------------------------------------------------------- gateways


def _flows(tree):
    return {f.get("id"): f for f in tree.findall(".//bpmn:process/bpmn:sequenceFlow", NS)}


def test_every_exclusive_gateway_has_a_default_and_conditions(tree):
    flows = _flows(tree)
    gateways = tree.findall(".//bpmn:process/bpmn:exclusiveGateway", NS)
    assert len(gateways) == 7
    for gw in gateways:
        outgoing = [flows[o.text] for o in gw.findall("bpmn:outgoing", NS)]
        # two ways, but three after a production rejection
        assert len(outgoing) == (3 if gw.get("id") == "gw_decisao_reprovacao_producao" else 2)
        default = gw.get("default")
        assert default in {f.get("id") for f in outgoing}, gw.get("id")
        for flow in outgoing:
            assert flow.get("sourceRef") == gw.get("id")
            cond = flow.find("bpmn:conditionExpression", NS)
            if flow.get("id") == default:
                assert cond is None
            else:
                assert cond is not None and cond.text.strip(), flow.get("id")


def test_conditions_read_start_data_or_the_previous_form(tree, parsed):
    """Every condition names only start variables or ``decision`` set by the form right
    before the gateway, and compares it with a value that form offers."""
    spec, _ = parsed
    flows = _flows(tree)
    start_variables = {"possui_certificado_valido", "possui_conta_govbr"}
    read = set()
    for flow in flows.values():
        cond = flow.find("bpmn:conditionExpression", NS)
        if cond is None:
            continue
        expr = ast.parse(cond.text.strip(), mode="eval")
        names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
        read |= names
        if names == {"decision"}:
            gw = tree.find(f".//bpmn:exclusiveGateway[@id='{flow.get('sourceRef')}']", NS)
            [incoming] = gw.findall("bpmn:incoming", NS)
            previous = flows[incoming.text].get("sourceRef")
            enum = form_schema(spec, previous)["properties"]["decision"]["enum"]
            literals = {n.value for n in ast.walk(expr) if isinstance(n, ast.Constant)}
            assert literals and literals <= set(enum), (flow.get("id"), literals, enum)
        else:
            assert names <= start_variables, flow.get("id")
    assert read == start_variables | {"decision"}


# --------------------------------------------------------------------- DI


def _bounds(shape):
    b = shape.find("dc:Bounds", NS)
    return tuple(float(b.get(k)) for k in ("x", "y", "width", "height"))


def test_diagram_interchange(tree):
    process = tree.find(f".//bpmn:process[@id='{PROCESS_ID}']", NS)
    shapes = {s.get("bpmnElement"): s for s in tree.findall(".//bpmndi:BPMNShape", NS)}
    edges = {e.get("bpmnElement"): e for e in tree.findall(".//bpmndi:BPMNEdge", NS)}
    nodes = {n.get("id"): n for tag in FLOW_NODE_TAGS for n in process.findall(f"bpmn:{tag}", NS)}
    flows = _flows(tree)
    assert set(nodes) <= set(shapes)
    assert set(flows) == set(edges)
    for fid, edge in edges.items():
        assert len(edge.findall("di:waypoint", NS)) >= 2, fid

    participant = tree.find(".//bpmn:collaboration/bpmn:participant", NS).get("id")
    px, py, pw, ph = _bounds(shapes[participant])
    lanes = {lane.get("id"): lane for lane in process.findall("bpmn:laneSet/bpmn:lane", NS)}
    lane_of = {}
    for lid, lane in lanes.items():
        lx, ly, lw, lh = _bounds(shapes[lid])
        assert px <= lx and lx + lw <= px + pw and py <= ly and ly + lh <= py + ph, lid
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            lane_of[ref.text] = (lx, ly, lw, lh)

    boxes = {nid: _bounds(shapes[nid]) for nid in nodes}
    for nid, (x, y, w, h) in boxes.items():
        lx, ly, lw, lh = lane_of[nid]
        assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, nid
    items = sorted(boxes.items())
    for i, (a, (ax, ay, aw, ah)) in enumerate(items):
        for b, (bx, by, bw, bh) in items[i + 1 :]:
            overlap = ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
            assert not overlap, (a, b)
    # lanes are stacked without overlapping either
    lane_boxes = sorted(_bounds(shapes[lid]) for lid in lanes)
    for (_, y1, _, h1), (_, y2, _, _) in zip(lane_boxes, lane_boxes[1:], strict=False):
        assert y1 + h1 <= y2


def test_edge_waypoints_touch_their_nodes(tree):
    """First and last waypoints lie on the border of the source and target shapes."""
    shapes = {s.get("bpmnElement"): _bounds(s) for s in tree.findall(".//bpmndi:BPMNShape", NS)}
    flows = _flows(tree)
    for edge in tree.findall(".//bpmndi:BPMNEdge", NS):
        flow = flows[edge.get("bpmnElement")]
        points = [(float(p.get("x")), float(p.get("y"))) for p in edge.findall("di:waypoint", NS)]
        for (px, py), ref in ((points[0], "sourceRef"), (points[-1], "targetRef")):
            x, y, w, h = shapes[flow.get(ref)]
            assert x <= px <= x + w and y <= py <= y + h, (edge.get("bpmnElement"), ref)
            assert px in (x, x + w) or py in (y, y + h), (edge.get("bpmnElement"), ref)
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            assert x1 == x2 or y1 == y2, edge.get("bpmnElement")  # orthogonal routing


# ------------------------------------------------------------ extensions on events


def test_end_event_properties(parsed):
    spec, _ = parsed
    ends = {s.bpmn_id: s for s in spec.task_specs.values() if type(s).__name__ == "EndEvent"}
    assert {k: v.extensions["properties"]["stage"] for k, v in ends.items()} == {
        "fim_credenciado": "Produção",
        "fim_sem_credenciamento": "Encerrado sem credenciamento",
        "fim_desistencia_producao": "Encerrado em homologação",
    }
    assert ends["fim_credenciado"].bpmn_name == "Credenciado em produção"
    assert ends["fim_sem_credenciamento"].bpmn_name == "Encerrado sem credenciamento"
    assert type(ends["fim_credenciado"].event_definition).__name__ == "NoneEventDefinition"
    # gateways and the start event carry no extensions
    assert spec.task_specs["inicio"].extensions == {}


# ------------------------------------------------------- process.json, portfolios


def test_process_json_matches_the_model(parsed):
    spec, _ = parsed
    process = _load_json(FORMS_DIR / "process.json")
    assert process["title"] == "Credenciamento RNDS"
    assert process["lanes"] == {
        "DATASUS": "datasus",
        "Gestor": "gestor",
        "Integrador": "integrador",
    }
    assert process["start_roles"] == ["admin", "gestor"]
    assert process["stages"] == [
        "Preparação",
        "Solicitação em análise",
        "Reprovada — ajuste pendente",
        "Homologação",
        "Em análise para produção",
        "Produção",
        "Encerrado sem credenciamento",
        "Encerrado em homologação",
    ]
    used = {
        s.extensions["properties"]["stage"]
        for s in spec.task_specs.values()
        if getattr(s, "extensions", {}).get("properties", {}).get("stage")
    }
    assert used == set(process["stages"])


def test_portfolios_catalogue():
    portfolios = _load_json(PROCESSES / "portfolios.json")
    assert [p["code"] for p in portfolios] == [
        "CNS",
        "REL",
        "RIA",
        "VACINACAO-DOSES",
        "VACINACAO-PNI",
        "SOA-BNAFAR",
        "ESUS-NOTIFICA",
        "CNS-ANS",
        "VACINACAO-CALENDARIO",
        "SUS-DIGITAL",
        "RAC",
        "RIRA",
    ]
    known = {
        ("/fhir/r4/Patient", "GET"),
        ("/fhir/r4/Organization", "GET"),
        ("/fhir/r4/Practitioner", "GET"),
        ("/fhir/r4/PractitionerRole", "GET"),
        ("/token", "POST"),
        ("/contexto-atendimento", "POST"),
        ("/Bundle", "POST"),
        ("/fhir/r4/Bundle/{id}", "DELETE"),
        ("/fhir/r4/Composition/{id}/$document", "GET"),
        ("/identifier", "GET"),
        ("/fhir/r4/metadata", "GET"),
    }
    item_schema = _load_json(FORMS_DIR / "solicitar-acesso-homologacao.schema.json")["properties"][
        "servicos"
    ]["items"]
    for p in portfolios:
        assert p["name"] and p["version"]
        assert len(p["date"]) == 10 and p["date"][4] == "-" and p["date"][7] == "-"
        ops = [(o["operacao"], o["metodo"]) for o in p["operations"]]
        assert ops and len(set(ops)) == len(ops) and set(ops) <= known, p["code"]
        for o in p["operations"]:
            assert Draft202012Validator(item_schema).is_valid(o)
    by_code = {p["code"]: p for p in portfolios}
    assert by_code["REL"]["version"] == "3.1" and by_code["REL"]["date"] == "2024-07-09"
    assert by_code["RIRA"]["date"] == "2024-08-01"
    for code in ("RAC", "RIRA"):
        assert {"operacao": "/contexto-atendimento", "metodo": "POST"} in by_code[code][
            "operations"
        ]
