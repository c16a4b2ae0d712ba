"""Recording an acceptance (inside a task's completion) and reading an instance's acceptances."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.db import insert_now
from engine.definitions.models import ProcessDefinition
from engine.terms.declared import Term, digest
from engine.terms.models import TermAcceptance

ACCEPTED = "term.accepted"


def accept(
    session: Session,
    actor: Actor,
    *,
    org_id: int,
    instance_id: int,
    task_id: str,
    definition_id: int,
    term: Term,
) -> TermAcceptance:
    """Record that the actor accepted this version of the term, and audit it (actor, term,
    version and the text's SHA-256). The caller's transaction is the task's completion."""
    row = TermAcceptance(
        org_id=org_id,
        instance_id=instance_id,
        task_id=task_id,
        definition_id=definition_id,
        field=term.field,
        term_id=term.id,
        title=term.title,
        version=term.version,
        file=term.file,
        sha256=term.sha256,
        accepted_by_id=actor.user_id,
        accepted_by=actor.label,
    )
    insert_now(session, row)
    audit.record(
        session,
        actor,
        ACCEPTED,
        org_id=org_id,
        entity_type="instance",
        entity_id=instance_id,
        data={
            "task": task_id,
            "field": term.field,
            "term": term.id,
            "version": term.version,
            "file": term.file,
            "sha256": term.sha256,
            "definition": definition_id,
        },
    )
    return row


@dataclass
class Accepted:
    """An acceptance with the text that was accepted (None if its version was removed)."""

    row: TermAcceptance
    term: Term | None


def for_instance(session: Session, actor: Actor, instance_id: int, org_id: int,
                 establishment_id: int | None) -> list[Accepted]:  # fmt: skip
    """An instance's acceptances, oldest first, each with the text of the version accepted
    (read from the deployed definition it was accepted on)."""
    if not actor.can_see_establishment(org_id, establishment_id):
        raise actor.deny(
            "Sem acesso a este processo.",
            action="term.read",
            org_id=org_id,
            entity_type="instance",
            entity_id=instance_id,
        )
    rows = list(
        session.scalars(
            select(TermAcceptance)
            .where(TermAcceptance.instance_id == instance_id)
            .order_by(TermAcceptance.accepted_at, TermAcceptance.id)
        )
    )
    definitions = {
        d.id: d
        for d in session.scalars(
            select(ProcessDefinition).where(
                ProcessDefinition.id.in_({r.definition_id for r in rows})
            )
        )
    } if rows else {}  # fmt: skip
    out = []
    for row in rows:
        definition = definitions.get(row.definition_id)
        text = (definition.files or {}).get(row.file) if definition is not None else None
        # Only the very text that was accepted: the same file with the same digest.
        ok = isinstance(text, str) and digest(text) == row.sha256
        term = Term(row.field, row.term_id, row.title, row.version, row.file, text) if ok else None
        out.append(Accepted(row, term))
    return out
