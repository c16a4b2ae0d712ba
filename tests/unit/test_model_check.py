"""`credencia processes check`: one line per problem, never a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definitions.check import check_paths
from web.cli import main

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
BPMN = "credenciamento-rnds.bpmn"


def test_shipped_processes_have_no_problems() -> None:
    assert check_paths([PROCESSES]) == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copy(PROCESSES / BPMN, tmp_path / BPMN)
    shutil.copytree(PROCESSES / "credenciamento-rnds", tmp_path / "credenciamento-rnds")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


CASES = [
    ("lane without role", lambda d: _edit(d / "credenciamento-rnds/process.json", '"DATASUS": "datasus",', ""),
     "raia 'DATASUS' sem papel mapeado"),
    ("gateway without default", lambda d: _edit(d / BPMN, ' default="flow_certificado_nao"', ""),
     "gateway exclusivo sem fluxo padrão"),
    ("no stage", lambda d: _edit(d / BPMN, '<spiffworkflow:property name="stage" value="Preparação" />', ""),
     "sem a propriedade 'stage'"),
    ("missing form file", lambda d: (d / "credenciamento-rnds/criar-conta-govbr.schema.json").unlink(),
     "formulário criar-conta-govbr.schema.json não existe"),
    ("invalid schema", lambda d: (d / "credenciamento-rnds/criar-conta-govbr.schema.json").write_text(
        '{"type": "object", "properties": {"x": {"type": "textoo"}}}', encoding="utf-8"), "criar-conta-govbr.schema.json"),
    ("broken json", lambda d: (d / "credenciamento-rnds/criar-conta-govbr.schema.json").write_text("{", encoding="utf-8"),
     "não é um JSON válido"),
    ("unknown variable", lambda d: _edit(d / BPMN, 'decision == "desistir"', 'decisao == "desistir"'),
     "usa a variável 'decisao'"),
    ("task outside lanes", lambda d: _edit(d / BPMN, "<bpmn:flowNodeRef>criar_conta_govbr</bpmn:flowNodeRef>", ""),
     "fora de qualquer raia"),
    ("no form", lambda d: _edit(d / BPMN, 'name="formJsonSchemaFilename" value="criar-conta-govbr.schema.json"',
                                'name="outra" value="x"'), "sem formulário"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "breaks", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_problem_is_reported(copy: Path, name: str, breaks, expected: str) -> None:
    breaks(copy)
    problems = check_paths([copy])
    assert any(expected in p for p in problems), problems
    assert all("\n" not in p and "Traceback" not in p for p in problems)


def test_cli_exit_codes(copy: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["processes", "check", str(copy)])
    assert ok.exit_code == 0 and "nenhum problema" in ok.output
    _edit(copy / BPMN, ' default="flow_certificado_nao"', "")
    bad = runner.invoke(main, ["processes", "check", str(copy / BPMN), str(copy / "nada.bpmn")])
    assert bad.exit_code == 1
    assert "nada.bpmn: arquivo ou pasta não encontrado" in bad.output
    assert "gateway exclusivo sem fluxo padrão" in bad.output


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(lambda t: t.encode()))
def test_any_file_gives_lines_not_tracebacks(tmp_path_factory, content: bytes) -> None:
    folder = tmp_path_factory.mktemp("junk")
    (folder / "x.bpmn").write_bytes(content)
    problems = check_paths([folder / "x.bpmn"])
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)


def test_hostile_xml_entities_are_not_expanded(tmp_path: Path) -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><definitions>&c;</definitions>')  # fmt: skip
    (tmp_path / "bomb.bpmn").write_text(bomb, encoding="utf-8")
    assert check_paths([tmp_path])[0].startswith("bomb.bpmn")
    assert os.path.exists(tmp_path / "bomb.bpmn")
