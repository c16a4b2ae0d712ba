"""What an instance's diagram shows: completed and active elements and the flows taken."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.definitions.models import ProcessDefinition
from engine.runtime.instances import get_instance
from engine.runtime.state import load_workflow, loaded_spec
from engine.workflow import spiff

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


@dataclass
class Picture:
    bpmn_xml: str
    completed: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    flows: list[str] = field(default_factory=list)


def _flows(bpmn_xml: str) -> list[tuple[str, str, str]]:
    root = etree.fromstring(
        bpmn_xml.encode("utf-8"), parser=etree.XMLParser(resolve_entities=False, no_network=True)
    )
    return [
        (f.get("id"), f.get("sourceRef"), f.get("targetRef"))
        for f in root.iter(f"{{{BPMN_NS}}}sequenceFlow")
        if f.get("id")
    ]


def picture(session: Session, actor: Actor, instance_id: int) -> Picture:
    instance = get_instance(session, actor, instance_id)
    definition = session.get(ProcessDefinition, instance.definition_id)
    workflow, _loaded = load_workflow(session, instance)
    completed, active = spiff.element_states(workflow)
    reached = completed | active
    flows = [
        fid for fid, src, dst in _flows(definition.bpmn_xml) if src in completed and dst in reached
    ]
    return Picture(definition.bpmn_xml, sorted(completed), sorted(active), flows)


def element_names(bpmn_xml: str) -> dict[str, str]:
    root = etree.fromstring(
        bpmn_xml.encode("utf-8"), parser=etree.XMLParser(resolve_entities=False, no_network=True)
    )
    return {el.get("id"): el.get("name") for el in root.iter() if el.get("id") and el.get("name")}


def documentation(session: Session, actor: Actor, instance_id: int, element_id: str) -> str:
    """The BPMN documentation of one element (the step's instructions)."""
    instance = get_instance(session, actor, instance_id)
    spec = spiff.task_spec(loaded_spec(session, instance), element_id)
    return (getattr(spec, "documentation", None) or "").strip() if spec is not None else ""
