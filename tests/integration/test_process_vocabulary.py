"""The credentialing vocabulary is declared per process (process.json): the start data a
workflow gets, the instance header, what a rejection is. A process that says nothing gets the
credentialing defaults; one that declares something unknown is refused at deploy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.completion import service as completion
from engine.definitions import service as definitions
from engine.definitions.check import check_paths
from engine.runtime import instances as runtime_instances
from engine.runtime import state as runtime_state
from engine.runtime.models import READY, ProcessInstance, Task

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "processes"
KEY = "atualizacao-cadastral"
DEFAULT_START = {"possui_certificado_valido", "certificado_atual", "possui_conta_govbr",
                 "estabelecimento"}  # fmt: skip
FILLED = {"telefone": "4133334444", "email": "novo@hospital.gov.br",
          "responsavel_cpf": "390.533.447-05"}  # fmt: skip


def _bundle(tmp_path: Path, **declared) -> Path:
    folder = tmp_path / "processes"
    shutil.copytree(FIXTURE, folder)
    manifest_path = folder / KEY / "process.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.update(declared)
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def _run_to_rejection(db, make, folder: Path) -> tuple[dict, ProcessInstance]:
    """Deploy, start, fill in, reject: the workflow's start data and the instance after."""
    definitions.deploy_all(db, folder)
    org = make.org()
    est = make.establishment(org)
    gestor = make.user("sesa-pr", "gestor", est.cnes)
    datasus = make.user("sesa-pr", "datasus")

    def ready() -> str:
        with db.read() as s:
            return s.scalar(select(Task.id).where(Task.state == READY))

    with db.write() as s:
        instance_id = runtime_instances.start_instance(
            s, gestor.actor, org_id=org, process_key=KEY, establishment_cnes=est.cnes
        ).id
        workflow, _ = runtime_state.load_workflow(s, s.get(ProcessInstance, instance_id))
        start = dict(workflow.task_tree.data)
    with db.write() as s:
        completion.complete(s, gestor.actor, ready(), FILLED)
    with db.write() as s:
        completion.complete(s, datasus.actor, ready(), {"decision": "reprovada",
                                                      "motivo": "Telefone sem DDD."})  # fmt: skip
    with db.read() as s:
        return start, s.get(ProcessInstance, instance_id)


def test_a_process_that_declares_nothing_gets_the_credentialing_defaults(db, make, tmp_path):
    start, instance = _run_to_rejection(db, make, _bundle(tmp_path))
    assert set(start) == DEFAULT_START  # not per portfolio: no portfolio
    assert instance.last_rejection_reason == "Telefone sem DDD."


def test_the_declared_start_data_and_rejection_are_the_ones_used(db, make, tmp_path):
    folder = _bundle(
        tmp_path,
        start_data=["establishment"],
        rejection={"field": "decision", "values": ["recusada"], "reason": "motivo"},
    )
    start, instance = _run_to_rejection(db, make, folder)
    assert set(start) == {"estabelecimento"}
    assert instance.last_rejection_reason == ""  # "reprovada" is not a rejection here


def test_no_rejection_at_all(db, make, tmp_path):
    start, instance = _run_to_rejection(db, make, _bundle(tmp_path, rejection=None))
    assert instance.last_rejection_reason == ""


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({"start_data": ["certificado"]}, "fonte desconhecida 'certificado'"),
        ({"header_fields": ["cnpj"]}, "'cnpj' não é um campo do cabeçalho"),
        ({"rejection": {"field": "decision"}}, '"rejection" deve ter'),
    ],
)
def test_unknown_declarations_are_refused(db, tmp_path, declared, problem):
    folder = _bundle(tmp_path, **declared)
    assert any(problem in p for p in check_paths([folder])), check_paths([folder])
    with pytest.raises(definitions.DeployError, match=problem):
        definitions.deploy_all(db, folder)
