"""Model checks for a BPMN bundle: problems a modeller can fix, one line each.

Never raises for a file a user may bring: unreadable XML, missing folders, broken JSON and
odd expressions all become problems in the list.
"""

from __future__ import annotations

import ast
import builtins
import json
from pathlib import Path
from typing import Any

from lxml import etree

from engine import forms, i18n
from engine.credentialing import block, vocabulary
from engine.terms import declared as terms

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "spiff": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
_BUILTINS = set(dir(builtins)) | {"True", "False", "None"}


def _q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


def _names(expression: str) -> tuple[set[str], str | None]:
    """Free variable names an expression reads (or an error message)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        return set(), f"expressão inválida ({exc.msg})"
    bound = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound - _BUILTINS, None


def _assigned(script: str) -> set[str]:
    try:
        tree = ast.parse(script)
    except SyntaxError:
        return set()
    return {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def _properties(node: Any) -> dict[str, str]:
    return {p.get("name"): p.get("value") or "" for p in node.iter(_q("spiff:property"))}


def _load_json(path: Path, problems: list[str], label: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{label}: não é um JSON válido ({exc})")
        return None


def check_file(bpmn_path: Path) -> list[str]:
    """Every problem found in one BPMN file and its folder; empty when it is fine."""
    name = bpmn_path.name
    try:
        root = etree.fromstring(
            bpmn_path.read_bytes(),
            parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False),
        )
    except (OSError, etree.XMLSyntaxError, ValueError) as exc:
        return [f"{name}: não é um XML legível ({exc})"]
    processes = root.findall(_q("bpmn:process"))
    if not processes:
        return [f"{name}: nenhum elemento bpmn:process"]
    folder = bpmn_path.with_suffix("")
    problems: list[str] = []
    manifest = _load_json(folder / "process.json", problems, f"{name}: process.json") or {}
    if not isinstance(manifest, dict):
        manifest = {}
    lanes_to_roles = manifest.get("lanes", {})
    problems += [f"{name}: process.json: {p}" for p in vocabulary.manifest_problems(manifest)]
    start_vars = vocabulary.start_variables(manifest)
    user_tasks = {el.get("id") for process in processes for el in process.iter(_q("bpmn:userTask"))}
    problems += [f"{name}: process.json: {p}" for p in block.problems(manifest, user_tasks)]
    problems += [f"{name}: process.json: {p}" for p in _term_problems(manifest, folder)]
    for process in processes:
        problems += _check_process(name, process, folder, lanes_to_roles, start_vars)
    return problems


def _term_problems(manifest: dict, folder: Path) -> list[str]:
    """The declared terms of use against the folder's forms and files (engine/terms/)."""
    if terms.KEY not in manifest:
        return []
    files: dict[str, Any] = dict(terms.read_texts(manifest, folder))
    for path in sorted(folder.glob("*.schema.json")) if folder.is_dir() else ():
        files[path.name] = _load_json(path, [], path.name)  # broken JSON is reported per task
    return terms.problems(manifest, files)


def _check_process(
    name: str, process: Any, folder: Path, lanes_to_roles: dict, start_vars: set[str]
) -> list[str]:
    problems: list[str] = []
    lane_of: dict[str, str] = {}
    for lane in process.iter(_q("bpmn:lane")):
        lane_name = lane.get("name") or lane.get("id")
        if lane_name not in lanes_to_roles:
            problems.append(
                f"{name}: raia '{lane_name}' sem papel mapeado em process.json (\"lanes\")"
            )
        for ref in lane.findall(_q("bpmn:flowNodeRef")):
            lane_of[(ref.text or "").strip()] = lane_name

    nodes = {
        el.get("id"): el for el in process if el.get("id") and el.tag != _q("bpmn:sequenceFlow")
    }
    flows = [el for el in process.iter(_q("bpmn:sequenceFlow"))]
    preds: dict[str, set[str]] = {}
    for flow in flows:
        preds.setdefault(flow.get("targetRef"), set()).add(flow.get("sourceRef"))

    produced: dict[str, set[str]] = {}
    for node_id, node in nodes.items():
        label = f"{name}: {node.get('name') or node_id} ({node_id})"
        vars_here: set[str] = set()
        for script in node.iter(_q("spiff:preScript"), _q("spiff:postScript"), _q("bpmn:script")):
            vars_here |= _assigned(script.text or "")
        if node.tag == _q("bpmn:userTask"):
            props = _properties(node)
            if node_id not in lane_of:
                problems.append(f"{label}: tarefa de usuário fora de qualquer raia")
            if not props.get("stage"):
                problems.append(f"{label}: sem a propriedade 'stage'")
            form = props.get("formJsonSchemaFilename")
            ui = props.get("formUiSchemaFilename")
            ui_hints = _load_json(folder / ui, problems, f"{label}: {ui}") if ui else None
            if ui and not (folder / ui).exists():
                problems.append(f"{label}: UI {ui} não existe em {folder.name}/")
            if not form:
                problems.append(f"{label}: sem formulário (formJsonSchemaFilename)")
            else:
                schema = _load_json(folder / form, problems, f"{label}: {form}")
                if schema is None and not (folder / form).exists():
                    problems.append(f"{label}: formulário {form} não existe em {folder.name}/")
                elif schema is not None:
                    # The schema's own problems, and what the task page cannot draw.
                    found = forms.check_form(schema, ui_hints)
                    problems += [f"{label}: {form}: {p}" for p in found]
                    if not found:
                        vars_here |= {f.name for f in forms.form_view(schema).fields}
                    elif isinstance(schema, dict):
                        vars_here |= set(schema.get("properties", {}) or {})
        produced[node_id] = vars_here
        if node.tag == _q("bpmn:exclusiveGateway"):
            outgoing = [f for f in flows if f.get("sourceRef") == node_id]
            if len(outgoing) > 1 and not node.get("default"):
                problems.append(f"{label}: gateway exclusivo sem fluxo padrão (default)")

    def upstream(node_id: str) -> set[str]:
        seen: set[str] = set()
        stack = list(preds.get(node_id, ()))
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(preds.get(current, ()))
        return seen

    for flow in flows:
        condition = flow.find(_q("bpmn:conditionExpression"))
        if condition is None or not (condition.text or "").strip():
            continue
        read, error = _names(condition.text or "")
        source = flow.get("sourceRef")
        label = f"{name}: condição do fluxo {flow.get('id')}"
        if error:
            problems.append(f"{label}: {error}")
            continue
        available = set(start_vars)
        for node_id in upstream(source) | {source}:
            available |= produced.get(node_id, set())
        for var in sorted(read - available):
            problems.append(
                f"{label}: usa a variável '{var}', que nenhum formulário anterior produz"
            )
    return problems


def catalog_warnings(bpmn_path: Path) -> list[str]:
    """What the deploy reports without refusing: unreadable catalogs, untranslated texts."""
    folder = bpmn_path.with_suffix("")
    files: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            files[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # check_file reports it
    catalogs, warnings = i18n.read_catalogs(folder)
    files.update(catalogs)
    if bpmn_path.is_file():
        warnings += i18n.missing(bpmn_path.read_bytes(), files)
    return [f"{bpmn_path.name}: {w}" for w in warnings]


def check_paths(paths: list[Path], warnings: list[str] | None = None) -> list[str]:
    """Every problem of the BPMN files (or folders of them); their warnings, which do not
    stop a deploy, go to ``warnings`` when given."""
    problems: list[str] = []
    for path in paths:
        files = sorted(path.glob("*.bpmn")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            problems.append(f"{path}: nenhum arquivo .bpmn")
        for file in files:
            try:
                problems += check_file(file)
                if warnings is not None:
                    warnings += catalog_warnings(file)
            except Exception as exc:  # a checker must report, never crash, on any input
                problems.append(
                    f"{file.name}: não foi possível verificar ({type(exc).__name__}: {exc})"
                )
    return problems
