"""The ``credential`` block of a process.json, read (docs/adding-a-process.md §8).

Pure functions over the manifest and a task's data: what a start takes from the credential,
which updates a completed task makes, and what is wrong in a block (the deploy check,
engine/definitions/check.py). The service (engine/credentials/service.py) applies them to
the record. The credential's statuses are declared here, where processes name them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EM_SOLICITACAO = "em_solicitacao"
HOMOLOGACAO = "homologacao"
EM_ANALISE_PRODUCAO = "em_analise_producao"
PRODUCAO = "producao"
SUSPENSA = "suspensa"
ENCERRADA = "encerrada"
STATUSES = (EM_SOLICITACAO, HOMOLOGACAO, EM_ANALISE_PRODUCAO, PRODUCAO, SUSPENSA, ENCERRADA)

KINDS = ("request", "change", "withdrawal", "transfer", "renewal")
KIND_LABELS = {
    "request": "Credenciamento",
    "change": "Alteração",
    "withdrawal": "Encerramento",
    "transfer": "Transferência de titularidade",
    "renewal": "Renovação de certificado",
}
# The credential fields a block may name, and whether each holds a list.
FIELDS = {
    "id": False,
    "status": False,
    "requester_id": False,
    "request_numbers": True,
    "operations": True,
    "ip_start": False,
    "ip_end": False,
    "system_name": False,
    "system_version": False,
    "children": True,
    "gestor_name": False,
    "gestor_cpf": False,
    "gestor_email": False,
    "organization": False,
    "certificate_sha256": False,
    "is_pec": False,
    "ended_on": False,
    "end_reason": False,
    "homologation_on": False,
    "production_on": False,
}
# Fields a start may read but no update may write.
READ_ONLY = {"id"}


def block_of(manifest: Mapping[str, Any] | None) -> dict[str, Any] | None:
    block = (manifest or {}).get("credential")
    return block if isinstance(block, dict) else None


def kind_of(manifest: Mapping[str, Any] | None) -> str:
    block = block_of(manifest)
    return str(block.get("kind", "")) if block else ""


def creates(manifest: Mapping[str, Any] | None) -> bool:
    """Whether the process brings a credential into being (a credenciamento)."""
    block = block_of(manifest)
    return bool(block and block.get("kind") == "request")


def works_on_one(manifest: Mapping[str, Any] | None) -> bool:
    """Whether the process starts on a credential the organization already holds."""
    block = block_of(manifest)
    return bool(block and block.get("kind") != "request")


def source_fields(source: Any) -> str | None:
    """The form field a source reads (where a refusal of its value is shown)."""
    if isinstance(source, str):
        return source
    if isinstance(source, dict) and isinstance(source.get("field"), str):
        return source["field"]
    return None


def source_value(source: Any, data: Mapping[str, Any]) -> Any:
    if isinstance(source, str):
        return data.get(source)
    if isinstance(source, dict):
        if "value" in source:
            return source["value"]
        if "field" in source:
            items = data.get(source["field"])
            if not isinstance(items, list):
                return None
            key = source.get("item")
            return [item.get(key) for item in items if isinstance(item, dict) and item.get(key)]
    return None


def _matches(when: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    for name, wanted in when.items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if data.get(name) not in allowed:
            return False
    return True


@dataclass(frozen=True)
class Change:
    """One credential field a completed task changes."""

    field: str
    value: Any
    source: str | None  # the form field it came from, if any
    append: bool = False


def changes(block: Mapping[str, Any], task_id: str, data: Mapping[str, Any]) -> list[Change]:
    """What the completed user task ``task_id`` changes, given the task's data after
    completion (its form and everything before it); empty sources change nothing."""
    out: list[Change] = []
    for update in block.get("updates", []):
        if update.get("on_task") != task_id or not _matches(update.get("when", {}), data):
            continue
        for name, source in update.get("set", {}).items():
            value = source_value(source, data)
            if value not in (None, ""):
                out.append(Change(name, copy.deepcopy(value), source_fields(source)))
        for name, source in update.get("append", {}).items():
            value = source_value(source, data)
            if value not in (None, ""):
                out.append(Change(name, copy.deepcopy(value), source_fields(source), True))
    return out


def start_variables(block: Mapping[str, Any]) -> list[str]:
    names = list(block.get("start", {}))
    names += list(block.get("start_choices", {}))
    return names


def choice(block: Mapping[str, Any], name: str, value: Any, roles: set[str]) -> str | None:
    """The value of a start choice the person starting gives (None: not theirs to give).
    Without a value, the first one their roles allow."""
    options = block.get("start_choices", {}).get(name, {})
    if value not in (None, ""):
        allowed = options.get(value)
        return str(value) if allowed is not None and roles & set(allowed) else None
    for option, allowed in options.items():
        if roles & set(allowed):
            return str(option)
    return None


def problems(manifest: Mapping[str, Any], user_tasks: set[str] | None = None) -> list[str]:
    """What is wrong in a process.json's credential block, one line each."""
    if "credential" not in manifest:
        return []
    block = manifest["credential"]
    if not isinstance(block, dict):
        return ['"credential" deve ser um objeto']
    out: list[str] = []
    if block.get("kind") not in KINDS:
        out.append(f'"credential.kind" deve ser um de: {", ".join(KINDS)}')
    for status in block.get("requires_status", []):
        if status not in STATUSES:
            out.append(f"\"credential.requires_status\": situação desconhecida '{status}'")
    for variable, name in block.get("start", {}).items():
        if name not in FIELDS:
            out.append(f"\"credential.start\": '{variable}' lê o campo desconhecido '{name}'")
    for variable, options in block.get("start_choices", {}).items():
        if not isinstance(options, dict) or not options:
            out.append(f"\"credential.start_choices\": '{variable}' deve listar as opções")
    for task, field in block.get("assign", {}).items():
        if not isinstance(field, str):
            out.append(f"\"credential.assign\": '{task}' deve nomear um campo")
        elif user_tasks is not None and task not in user_tasks:
            out.append(f"\"credential.assign\": '{task}' não é uma tarefa do processo")
    for i, update in enumerate(block.get("updates", [])):
        where = f'"credential.updates"[{i}]'
        if not isinstance(update, dict) or not isinstance(update.get("on_task"), str):
            out.append(f'{where}: falta "on_task"')
            continue
        if user_tasks is not None and update["on_task"] not in user_tasks:
            out.append(f"{where}: '{update['on_task']}' não é uma tarefa do processo")
        for part in ("set", "append"):
            for name in update.get(part, {}):
                if name not in FIELDS or name in READ_ONLY:
                    out.append(f"{where}.{part}: campo da credencial desconhecido '{name}'")
                elif part == "append" and not FIELDS[name]:
                    out.append(f"{where}.append: '{name}' não é uma lista")
        status = update.get("set", {}).get("status")
        if isinstance(status, dict) and status.get("value") not in STATUSES:
            out.append(f"{where}.set.status: situação desconhecida")
    return out
