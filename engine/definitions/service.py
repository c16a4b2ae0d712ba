"""Deploying ``processes/*.bpmn`` with their forms; a changed file becomes a new version."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import forms, i18n
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.credentialing import vocabulary
from engine.definitions.models import ProcessDefinition
from engine.errors import NotFound
from engine.terms import declared as terms
from engine.workflow import spiff

log = logging.getLogger(__name__)
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


class DeployError(Exception):
    pass


@dataclass
class Bundle:
    """A BPMN file with the JSON files of its folder, as read from disk."""

    key: str
    title: str
    bpmn_xml: str
    files: dict[str, Any]  # JSON files parsed; terms of use (engine/terms/) as text
    manifest: dict[str, Any]
    content_hash: str
    source_path: str
    # What the deploy reports without refusing: catalogs that cannot be read, missing texts.
    warnings: list[str] = field(default_factory=list)


def read_bundle(bpmn_path: Path) -> Bundle:
    try:
        raw = bpmn_path.read_bytes()
        root = etree.fromstring(
            raw, parser=etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except (OSError, etree.XMLSyntaxError) as exc:
        raise DeployError(f"{bpmn_path.name}: não é um XML BPMN legível ({exc})") from exc
    processes = root.findall(f"{{{BPMN_NS}}}process")
    executable = [p for p in processes if p.get("isExecutable", "true") == "true"] or processes
    if not executable:
        raise DeployError(f"{bpmn_path.name}: nenhum processo BPMN encontrado")
    process = executable[0]
    key = process.get("id")
    folder = bpmn_path.with_suffix("")
    digest = hashlib.sha256(raw)
    files: dict[str, Any] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            content = path.read_bytes()
            digest.update(path.name.encode() + b"\0" + content)
            try:
                files[path.name] = json.loads(content)
            except json.JSONDecodeError as exc:
                raise DeployError(f"{path}: JSON inválido ({exc})") from exc
    # The translations (``i18n/<locale>.json``) are part of the version, like the forms.
    catalogs, warnings = i18n.read_catalogs(folder)
    for name, catalog in catalogs.items():
        digest.update(name.encode() + b"\0" + json.dumps(catalog, sort_keys=True).encode())
    files.update(catalogs)
    warnings += i18n.missing(raw, files)
    manifest = files.get("process.json", {})
    if isinstance(manifest, dict):
        # The terms of use the process declares travel with the version (engine/terms/).
        for name, text in sorted(terms.read_texts(manifest, folder).items()):
            digest.update(name.encode() + b"\0" + text.encode("utf-8"))
            files[name] = text
    return Bundle(
        key=key,
        title=manifest.get("title") or process.get("name") or key,
        bpmn_xml=raw.decode("utf-8"),
        files=files,
        manifest=manifest,
        content_hash=digest.hexdigest(),
        source_path=str(bpmn_path),
        warnings=warnings,
    )


def form_problems(bundle: Bundle) -> list[str]:
    """Forms named by user tasks that are missing, are not valid form schemas, or that the
    task page cannot draw."""
    root = etree.fromstring(
        bundle.bpmn_xml.encode("utf-8"), parser=etree.XMLParser(resolve_entities=False)
    )
    problems = []
    for prop in root.iter("{http://spiffworkflow.org/bpmn/schema/1.0/core}property"):
        if prop.get("name") != "formJsonSchemaFilename":
            continue
        name = prop.get("value") or ""
        schema = bundle.files.get(name)
        if schema is None:
            problems.append(f"formulário {name} não encontrado")
            continue
        # The UI hints the task page reads (runtime.service._form_files): it must draw the form.
        ui = bundle.files.get(name.replace(".schema.json", ".ui.json"))
        problems += [f"{name}: {p}" for p in forms.check_form(schema, ui)]
    return problems


_checked: dict[str, list[str]] = {}


def _form_problems_cached(bundle: Bundle) -> list[str]:
    if bundle.content_hash not in _checked:
        _checked[bundle.content_hash] = form_problems(bundle)
    return _checked[bundle.content_hash]


def latest(session: Session, key: str) -> ProcessDefinition:
    definition = session.scalar(
        select(ProcessDefinition)
        .where(ProcessDefinition.key == key)
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    )
    if definition is None:
        raise NotFound(f"Processo '{key}' não implantado.")
    return definition


def deploy_bundle(
    session: Session, bundle: Bundle, actor: Actor | None = None
) -> tuple[ProcessDefinition, bool]:
    """Deploy one bundle; returns (definition, created). Unchanged content is not redeployed."""
    current = session.scalar(
        select(ProcessDefinition)
        .where(ProcessDefinition.key == bundle.key)
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    )
    if current is not None and current.content_hash == bundle.content_hash:
        return current, False
    spiff.parse_cached(
        bundle.bpmn_xml, bundle.key, bundle.content_hash, Path(bundle.source_path).name
    )
    # (raises SpecError: refuse what cannot run)
    problems = (
        _form_problems_cached(bundle)
        + [f"process.json: {p}" for p in vocabulary.manifest_problems(bundle.manifest or {})]
        + [f"process.json: {p}" for p in terms.problems(bundle.manifest or {}, bundle.files)]
    )
    if problems:
        raise DeployError(f"{Path(bundle.source_path).name}: " + "; ".join(problems))
    version = (
        session.scalar(
            select(func.max(ProcessDefinition.version)).where(ProcessDefinition.key == bundle.key)
        )
        or 0
    ) + 1
    definition = ProcessDefinition(
        key=bundle.key,
        version=version,
        title=bundle.title,
        content_hash=bundle.content_hash,
        bpmn_xml=bundle.bpmn_xml,
        files=bundle.files,
        manifest=bundle.manifest,
        source_path=Path(bundle.source_path).name,
        deployed_by_id=actor.user_id if actor else None,
    )
    session.add(definition)
    session.flush()
    audit.record(
        session,
        actor,
        "process.deployed",
        org_id=None,
        entity_type="process_definition",
        entity_id=definition.id,
        data={"key": bundle.key, "version": version, "content_hash": bundle.content_hash},
    )
    return definition, True


def deploy_all(
    db: Any, processes_dir: Path, actor: Actor | None = None, warnings: list[str] | None = None
) -> list[tuple[ProcessDefinition, bool]]:
    """Deploy every ``*.bpmn`` of the folder, each in its own transaction. Each bundle's
    warnings (translations missing or unreadable) are logged and added to ``warnings``.

    Several processes starting at once may race to deploy the same version; the loser of the
    unique (key, version) race simply finds the winner's row.
    """
    results = []
    for path in sorted(Path(processes_dir).glob("*.bpmn")):
        bundle = read_bundle(path)
        for warning in bundle.warnings:
            log.warning("%s: %s", path.name, warning)
        if warnings is not None:
            warnings += [f"{path.name}: {w}" for w in bundle.warnings]
        for attempt in range(3):
            try:
                with db.write() as session:
                    results.append(deploy_bundle(session, bundle, actor))
                break
            except IntegrityError:
                if attempt == 2:
                    raise
    return results


def list_definitions(session: Session) -> list[ProcessDefinition]:
    return list(
        session.scalars(
            select(ProcessDefinition).order_by(ProcessDefinition.key, ProcessDefinition.version)
        )
    )
