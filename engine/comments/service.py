"""Writing and reading an instance's comments."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.comments.models import Comment
from engine.errors import Invalid
from engine.runtime import instances as runtime_instances

MAX_LENGTH = 4000
# Roles that take part in a process; auditors only read.
PARTICIPANT_ROLES = (
    "admin", "gestor", "integrador", "datasus", "gestor_municipal", "admin_municipal", "admin_instalacao",
)  # fmt: skip


def list_comments(session: Session, actor: Actor, instance_id: int) -> list[Comment]:
    runtime_instances.get_instance(session, actor, instance_id)
    return list(
        session.scalars(
            select(Comment)
            .where(Comment.instance_id == instance_id)
            .order_by(Comment.created_at, Comment.id)
        )
    )


def can_comment(actor: Actor, org_id: int, establishment_id: int | None) -> bool:
    return any(actor.has_role(org_id, role, establishment_id) for role in PARTICIPANT_ROLES)


def add_comment(session: Session, actor: Actor, instance_id: int, body: str) -> Comment:
    instance = runtime_instances.get_instance(session, actor, instance_id)
    if not can_comment(actor, instance.org_id, instance.establishment_id):
        raise actor.deny("Apenas participantes do processo podem comentar.", action="comment.create",
                         org_id=instance.org_id, entity_type="instance", entity_id=instance.id)  # fmt: skip
    text = (body or "").strip()
    if not text:
        raise Invalid({"body": "Escreva o comentário."})
    if len(text) > MAX_LENGTH:
        raise Invalid({"body": f"No máximo {MAX_LENGTH} caracteres."})
    comment = Comment(
        org_id=instance.org_id,
        instance_id=instance.id,
        author_id=actor.user_id,
        author=actor.label,
        body=text,
    )
    session.add(comment)
    session.flush()
    audit.record(session, actor, "comment.created", org_id=instance.org_id, entity_type="instance",
                 entity_id=instance.id, data={"comment": comment.id, "body": text})  # fmt: skip
    return comment
