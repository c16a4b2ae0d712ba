"""The processes' English: the catalogs beside each process, their lookup, the deploy's
warnings for what they lack, and validation messages in English."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from engine import i18n
from engine.definitions import check
from engine.definitions.service import read_bundle
from engine.forms import localize
from engine.settings import ROOT

PROCESSES = ROOT / "processes"
BPMNS = sorted(PROCESSES.glob("*.bpmn"))


def test_every_process_has_a_complete_english_catalog() -> None:
    assert len(BPMNS) == 6
    for path in BPMNS:
        bundle = read_bundle(path)
        assert bundle.warnings == [], path.name
        words = i18n.catalog(bundle.files, "en")
        needed = i18n.source_texts(bundle.bpmn_xml, bundle.files)
        # Every text a user reads, translated into something else than the Portuguese
        # (except names that are the same in both languages).
        assert needed <= set(words)
        same = {k for k in needed if words[k] == k}
        assert len(same) < 15 and not [k for k in same if set(k) & set("ãçéêíóõú")]


def test_the_catalog_has_the_user_task_names_stages_and_form_texts() -> None:
    words = i18n.catalog(read_bundle(PROCESSES / "credenciamento-rnds.bpmn").files, "en")
    assert words["Criar conta gov.br"] == "Create gov.br account"
    assert words["Reprovada — ajuste pendente"] == "Rejected — adjustment pending"
    assert words["Nível da conta gov.br"] == "gov.br account level"
    assert words["Prata"] == "Silver"  # an option's label (ui:enumNames)
    assert words["Ministério da Saúde"] == "Ministry of Health"  # a plain enum option
    assert words["O IP final deve ser maior ou igual ao IP inicial."].startswith("The end IP")


def test_lookup_takes_the_locale_and_falls_back_to_portuguese() -> None:
    files = {"i18n/en.json": {"Preparação": "Preparation"}}
    assert i18n.catalog(files, "pt_BR") == {}
    assert i18n.catalog(files, None) == {}
    assert i18n.catalog(files, "en-US") == {"Preparação": "Preparation"}
    assert i18n.catalog({}, "en") == {}
    words = i18n.catalog(files, "en")
    assert i18n.text("Preparação", words) == "Preparation"
    assert i18n.text("Homologação", words) == "Homologação"  # missing: stays Portuguese
    assert i18n.text(None, words) is None
    assert i18n.locale_of("en_GB") == "en" and i18n.locale_of("fr") == "pt_BR"


def test_a_translated_schema_keeps_its_values_and_stays_valid_json_schema() -> None:
    bundle = read_bundle(PROCESSES / "credenciamento-rnds.bpmn")
    words = i18n.catalog(bundle.files, "en")
    source = bundle.files["solicitar-acesso-homologacao.schema.json"]
    translated = i18n.schema(source, words)
    Draft202012Validator.check_schema(translated)
    assert translated["title"] == "Request access (homologation)"
    origin = translated["properties"]["origem_solicitacao"]
    assert origin["title"] == "What is the origin of the request?"
    assert origin["enum"] == source["properties"]["origem_solicitacao"]["enum"]
    assert origin["x-enumTitles"] == ["Ministry of Health", "Others"]
    item = translated["properties"]["filhos"]["items"]
    assert item["title"] == "Child establishment"
    assert source["title"] == "Solicitar acesso (homologação)"  # the source is not changed
    ui = i18n.ui(bundle.files["solicitar-acesso-homologacao.ui.json"], words)
    assert ui["ui:groups"][0]["title"] == "Origin of the request"
    assert ui["resumo"]["ui:help"] == "At most 400 characters."
    assert ui["ui:order"] == bundle.files["solicitar-acesso-homologacao.ui.json"]["ui:order"]


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "processes"
    target.mkdir()
    shutil.copy(PROCESSES / "credenciamento-rnds.bpmn", target)
    shutil.copytree(PROCESSES / "credenciamento-rnds", target / "credenciamento-rnds")
    return target / "credenciamento-rnds.bpmn"


def test_a_missing_key_is_a_warning_not_a_refusal(tmp_path: Path) -> None:
    bpmn = _copy(tmp_path)
    catalog = bpmn.with_suffix("") / "i18n" / "en.json"
    words = json.loads(catalog.read_text(encoding="utf-8"))
    del words["Criar conta gov.br"]
    catalog.write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    bundle = read_bundle(bpmn)  # does not raise
    assert bundle.warnings == ["i18n/en.json: falta a tradução de “Criar conta gov.br”"]
    assert "i18n/en.json" in bundle.files  # the rest of the catalog is deployed
    warnings: list[str] = []
    assert check.check_paths([bpmn], warnings) == []  # not a problem of the model
    assert warnings == [
        "credenciamento-rnds.bpmn: i18n/en.json: falta a tradução de “Criar conta gov.br”"
    ]


@pytest.mark.parametrize("content", ["{", "[1, 2]", '{"Preparação": 3}'])
def test_a_broken_catalog_is_a_clear_warning_and_is_left_out(tmp_path: Path, content) -> None:
    bpmn = _copy(tmp_path)
    (bpmn.with_suffix("") / "i18n" / "en.json").write_text(content, encoding="utf-8")
    bundle = read_bundle(bpmn)
    assert "i18n/en.json" not in bundle.files
    assert bundle.warnings[0].startswith("credenciamento-rnds/i18n/en.json: catálogo ignorado")
    assert "sem catálogo i18n/en.json: os textos ficam em português" in bundle.warnings
    assert i18n.catalog(bundle.files, "en") == {}


def test_a_process_without_catalogs_is_reported(tmp_path: Path) -> None:
    bpmn = _copy(tmp_path)
    shutil.rmtree(bpmn.with_suffix("") / "i18n")
    assert read_bundle(bpmn).warnings == ["sem catálogo i18n/en.json: os textos ficam em português"]


def test_the_catalogs_are_part_of_the_version(tmp_path: Path) -> None:
    bpmn = _copy(tmp_path)
    before = read_bundle(bpmn).content_hash
    catalog = bpmn.with_suffix("") / "i18n" / "en.json"
    words = json.loads(catalog.read_text(encoding="utf-8"))
    words["Criar conta gov.br"] = "Create a gov.br account"
    catalog.write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    assert read_bundle(bpmn).content_hash != before


@pytest.mark.parametrize(
    ("message", "english"),
    [
        ("Campo obrigatório.", "Required field."),
        ("CPF inválido.", "Invalid CPF."),
        ("Dígitos verificadores do CPF não conferem.", "The CPF's check digits do not match."),
        ("No máximo 20 caracteres (você digitou 25).", "At most 20 characters (you typed 25)."),
        ("No mínimo 1 caractere.", "At least 1 character."),
        ("Adicione pelo menos 2 itens.", "Add at least 2 items."),
        ("Informe um valor maior ou igual a 1,5.", "Enter a value greater than or equal to 1.5."),
        ("Escolha uma das opções: sim, não.", "Choose one of the options: yes, no."),
        (
            "Tipo de arquivo não aceito. Envie: PDF ou PNG.",
            "File type not accepted. Send: PDF or PNG.",
        ),
        ("CPF deve ter 11 dígitos.", "The CPF must have 11 digits."),
        ("Algo que nenhuma tabela conhece.", "Algo que nenhuma tabela conhece."),
    ],
)
def test_validation_messages_in_english(message: str, english: str) -> None:
    assert localize(message, "en") == english
    assert localize(message, "pt_BR") == message


def test_a_forms_own_message_comes_from_the_process_catalog() -> None:
    words = i18n.catalog(read_bundle(PROCESSES / "alteracao-credencial.bpmn").files, "en")
    message = "O IP final deve ser maior ou igual ao IP inicial."
    assert (
        localize(message, "en", words)
        == "The end IP must be greater than or equal to the start IP."
    )
    assert localize("Escolha uma das opções: Prata, Ouro.", "en", {"Prata": "Silver"}) == (
        "Choose one of the options: Silver, Ouro."
    )
