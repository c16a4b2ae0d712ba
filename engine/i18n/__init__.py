"""The words of a process in other languages: one catalog per language beside each process.

``processes/<key>/i18n/<locale>.json`` is one JSON object whose keys are the Portuguese texts
the process shows (task names and instructions, stage names, the title, form titles,
descriptions, help, options and messages) and whose values are their translations. The
catalogs are deployed with the process version (``ProcessDefinition.files["i18n/en.json"]``),
so an instance always reads the words of the version it runs. Portuguese (pt-BR) is the
source language: it has no catalog, and a text missing from a catalog stays in Portuguese.

Pure functions: the caller passes the locale (``engine`` never asks a request for it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lxml import etree

DEFAULT = "pt_BR"
LOCALES = ("pt_BR", "en")
FOLDER = "i18n"
_BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
_SPIFF = "{http://spiffworkflow.org/bpmn/schema/1.0/core}"
# Schema keywords whose string value a user reads; enum strings are read as option labels.
_SCHEMA_TEXTS = ("title", "description", "x-options-message")
_UI_TEXTS = ("ui:help", "ui:title", "ui:description")


def locale_of(value: str | None) -> str:
    """One of LOCALES for a locale or language tag (``en-US`` → ``en``; unknown → pt_BR)."""
    return "en" if (value or "").lower().replace("-", "_").startswith("en") else DEFAULT


def file_name(locale: str) -> str:
    """Where a locale's catalog is kept among a definition's files."""
    return f"{FOLDER}/{locale}.json"


def read_catalogs(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The catalogs of a process folder as ``{"i18n/en.json": {...}}`` and the problems of
    those that cannot be used (bad JSON, not an object of texts): reported, never raised."""
    found: dict[str, Any] = {}
    problems: list[str] = []
    directory = folder / FOLDER
    if not directory.is_dir():
        return found, problems
    for path in sorted(directory.glob("*.json")):
        label = f"{folder.name}/{FOLDER}/{path.name}"
        try:
            content = json.loads(path.read_bytes())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{label}: catálogo ignorado, não é um JSON válido ({exc})")
            continue
        if not isinstance(content, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in content.items()
        ):
            problems.append(f"{label}: catálogo ignorado, deve ser um objeto de textos")
            continue
        found[f"{FOLDER}/{path.name}"] = content
    return found, problems


def catalog(files: Mapping[str, Any] | None, locale: str | None) -> dict[str, str]:
    """The catalog of ``locale`` among a definition's files; empty for pt-BR or when absent."""
    locale = locale_of(locale)
    if locale == DEFAULT or not files:
        return {}
    found = files.get(file_name(locale))
    return found if isinstance(found, dict) else {}


def text(value: Any, words: Mapping[str, str]) -> Any:
    """``value`` in the catalog's language when the catalog has it; otherwise unchanged."""
    if isinstance(value, str) and value:
        translated = words.get(value) or words.get(value.strip())
        if translated:
            return translated
    return value


def schema(node: Any, words: Mapping[str, str]) -> Any:
    """A copy of a JSON Schema with its titles, descriptions and messages translated. Values
    (``enum``, ``const``, defaults) never change: a translated form accepts the same data.
    Plain ``enum`` strings get their labels in ``x-enumTitles`` (an annotation)."""
    if isinstance(node, list):
        return [schema(item, words) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_TEXTS:
            out[key] = text(value, words)
        elif key == "x-messages" and isinstance(value, dict):
            out[key] = {k: text(v, words) for k, v in value.items()}
        elif key == "x-rules" and isinstance(value, list):
            out[key] = [
                {**rule, "message": text(rule["message"], words)}
                if isinstance(rule, dict) and "message" in rule
                else rule
                for rule in value
            ]
        elif key in ("enum", "const", "default", "examples", "x-enumTitles"):
            out[key] = value
        elif key in ("properties", "$defs", "definitions", "patternProperties"):
            out[key] = (
                {k: schema(v, words) for k, v in value.items()}
                if isinstance(value, dict)
                else value
            )
        else:
            out[key] = schema(value, words)
    enum = node.get("enum")
    if words and isinstance(enum, list) and any(text(v, words) != v for v in enum):
        out["x-enumTitles"] = [str(text(v, words)) if v is not None else "" for v in enum]
    return out


def ui(hints: Any, words: Mapping[str, str]) -> Any:
    """A copy of a form's UI hints with the help, option names and group titles translated."""
    if isinstance(hints, list):
        return [ui(item, words) for item in hints]
    if not isinstance(hints, dict):
        return hints
    out: dict[str, Any] = {}
    for key, value in hints.items():
        if key in _UI_TEXTS:
            out[key] = text(value, words)
        elif key == "ui:enumNames" and isinstance(value, list):
            out[key] = [text(v, words) for v in value]
        elif key == "ui:groups" and isinstance(value, list):
            out[key] = [
                {**group, "title": text(group.get("title"), words)}
                if isinstance(group, dict)
                else group
                for group in value
            ]
        elif key in ("ui:order", "ui:placeholder", "ui:widget", "ui:mask"):
            out[key] = value
        else:
            out[key] = ui(value, words)
    return out


# ---------------------------------------------------------------- what a catalog must hold


def _schema_texts(node: Any, found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _schema_texts(item, found)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _SCHEMA_TEXTS and isinstance(value, str):
            found.add(value)
        elif key == "x-messages" and isinstance(value, dict):
            found.update(v for v in value.values() if isinstance(v, str))
        elif key == "x-rules" and isinstance(value, list):
            found.update(
                r["message"]
                for r in value
                if isinstance(r, dict) and isinstance(r.get("message"), str)
            )
        elif key == "enum" and isinstance(value, list):
            found.update(v for v in value if isinstance(v, str) and _words(v))
        elif key in ("const", "default", "examples"):
            continue
        else:
            _schema_texts(value, found)


def _ui_texts(node: Any, found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _ui_texts(item, found)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _UI_TEXTS and isinstance(value, str):
            found.add(value)
        elif key == "ui:enumNames" and isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
        elif key == "ui:groups" and isinstance(value, list):
            found.update(
                g["title"] for g in value if isinstance(g, dict) and isinstance(g.get("title"), str)
            )
        else:
            _ui_texts(value, found)


def _words(value: str) -> bool:
    """Whether an option reads as words: ``Ministério da Saúde`` does, while ``GET``, ``2.0``
    or ``nao_pronto`` are codes (their labels come from ``ui:enumNames`` or ``oneOf`` titles)."""
    return any(c.islower() for c in value) and (" " in value or value[:1].isupper())


def _bpmn_texts(bpmn_xml: str | bytes, found: set[str]) -> None:
    raw = bpmn_xml.encode("utf-8") if isinstance(bpmn_xml, str) else bpmn_xml
    root = etree.fromstring(raw, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    for process in root.iter(f"{_BPMN}process"):
        if process.get("name"):
            found.add(process.get("name"))
        found.update(lane.get("name") for lane in process.iter(f"{_BPMN}lane") if lane.get("name"))
        for task in process.iter(f"{_BPMN}userTask"):
            if task.get("name"):
                found.add(task.get("name"))
            doc = task.find(f"{_BPMN}documentation")
            if doc is not None and (doc.text or "").strip():
                found.add(doc.text.strip())
            for prop in task.iter(f"{_SPIFF}property"):
                if prop.get("name") == "stage" and prop.get("value"):
                    found.add(prop.get("value"))


def source_texts(bpmn_xml: str | bytes, files: Mapping[str, Any]) -> set[str]:
    """Every Portuguese text of a process that a user reads, i.e. every key its catalogs need:
    lane names, user task names, instructions and stages, the title and stages of ``process.json``, and
    the texts of each form and its UI hints."""
    found: set[str] = set()
    _bpmn_texts(bpmn_xml, found)
    manifest = files.get("process.json")
    if isinstance(manifest, dict):
        if isinstance(manifest.get("title"), str):
            found.add(manifest["title"])
        stages = manifest.get("stages")
        found.update(s for s in stages or () if isinstance(s, str))
    for name, content in files.items():
        if name.endswith(".schema.json"):
            _schema_texts(content, found)
        elif name.endswith(".ui.json"):
            _ui_texts(content, found)
    return {t for t in found if t.strip()}


def missing(
    bpmn_xml: str | bytes, files: Mapping[str, Any], locales: Iterable[str] = ("en",)
) -> list[str]:
    """Deploy warnings: each locale without a catalog, and each text its catalog lacks."""
    try:
        needed = source_texts(bpmn_xml, files)
    except (etree.XMLSyntaxError, ValueError):
        return []  # the deploy refuses that BPMN for its own reasons
    warnings = []
    for locale in locales:
        words = files.get(file_name(locale))
        if not isinstance(words, dict):
            warnings.append(f"sem catálogo {file_name(locale)}: os textos ficam em português")
            continue
        for key in sorted(needed - set(words)):
            short = key if len(key) <= 80 else key[:77] + "..."
            warnings.append(f"{file_name(locale)}: falta a tradução de “{short}”")
    return warnings
