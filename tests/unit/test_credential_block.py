"""The ``credential`` block of a process.json as the engine reads it
(engine/credentialing/block.py): the changes a completed task makes, the start choices, and
the deploy check's refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.credentialing import block
from engine.definitions.check import check_paths

ROOT = Path(__file__).resolve().parents[2] / "processes"


def manifest(key: str) -> dict:
    return json.loads((ROOT / key / "process.json").read_text(encoding="utf-8"))


def test_an_update_applies_only_on_its_task_and_when_its_condition_holds():
    change = manifest("alteracao-credencial")["credential"]
    data = {"decision": "reprovada", "ip_inicial": "200.1.1.1", "filhos": [{"cnes": "1234567"}]}
    assert block.changes(change, "avaliar_alteracao", data) == []
    assert block.changes(change, "solicitar_alteracao", {**data, "decision": "aprovada"}) == []
    approved = block.changes(
        change, "avaliar_alteracao", {**data, "decision": "aprovada", "numero_solicitacao": "9/26"}
    )
    found = {(c.field, str(c.value), c.source, c.append) for c in approved}
    assert ("ip_start", "200.1.1.1", "ip_inicial", False) in found
    assert ("children", "['1234567']", "filhos", False) in found
    assert ("request_numbers", "9/26", "numero_solicitacao", True) in found
    # empty sources change nothing: the IP end was not given
    assert "ip_end" not in {c.field for c in approved}


def test_the_credenciamento_creates_and_the_others_work_on_one():
    assert block.creates(manifest("credenciamento-rnds"))
    assert not block.works_on_one(manifest("credenciamento-rnds"))
    for key in ("alteracao-credencial", "encerramento-credencial", "transferencia-titularidade",
                "renovacao-certificado"):  # fmt: skip
        assert block.works_on_one(manifest(key)) and not block.creates(manifest(key))
    assert not block.works_on_one(manifest("habilitacao-pec-esus-aps"))


def test_a_start_choice_follows_the_roles_that_may_choose_it():
    withdrawal = manifest("encerramento-credencial")["credential"]
    assert block.choice(withdrawal, "iniciado_por", None, {"gestor"}) == "estabelecimento"
    assert block.choice(withdrawal, "iniciado_por", None, {"datasus"}) == "datasus"
    assert block.choice(withdrawal, "iniciado_por", "datasus", {"gestor"}) is None
    assert block.choice(withdrawal, "iniciado_por", "nada", {"admin"}) is None


def test_the_deploy_check_refuses_a_block_that_names_what_does_not_exist(tmp_path):
    shutil.copy(ROOT / "alteracao-credencial.bpmn", tmp_path / "alteracao-credencial.bpmn")
    shutil.copytree(ROOT / "alteracao-credencial", tmp_path / "alteracao-credencial")
    path = tmp_path / "alteracao-credencial" / "process.json"
    bad = json.loads(path.read_text(encoding="utf-8"))
    bad["credential"]["kind"] = "mudanca"
    bad["credential"]["requires_status"] = ["ativa"]
    bad["credential"]["updates"][0]["on_task"] = "tarefa_que_nao_existe"
    bad["credential"]["updates"][0]["set"]["cor"] = "ip_inicial"
    bad["credential"]["updates"][0]["append"]["ip_start"] = "ip_inicial"
    path.write_text(json.dumps(bad), encoding="utf-8")
    problems = "\n".join(check_paths([tmp_path]))
    assert '"credential.kind"' in problems
    assert "situação desconhecida 'ativa'" in problems
    assert "'tarefa_que_nao_existe' não é uma tarefa do processo" in problems
    assert "campo da credencial desconhecido 'cor'" in problems
    assert "'ip_start' não é uma lista" in problems
    assert check_paths([ROOT]) == []
