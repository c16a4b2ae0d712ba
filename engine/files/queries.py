"""Read models of stored files for the pages (metadata only, never the content)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.files.models import StoredFile
from engine.runtime.models import ProcessInstance


class FileRow(NamedTuple):
    id: str
    filename: str
    size: int
    sha256: str
    content_type: str
    flags: list[str]


def instance_files(session: Session, actor: Actor, instance: ProcessInstance) -> list[StoredFile]:
    """The files uploaded to an instance, oldest first."""
    actor.require_visible(instance.org_id, instance.establishment_id, "Sem acesso a este processo.",
                          action="instance.read", entity_type="instance",
                          entity_id=instance.id)  # fmt: skip
    return list(
        session.scalars(
            select(StoredFile)
            .where(StoredFile.instance_id == instance.id)
            .order_by(StoredFile.created_at)
        )
    )


def file_rows(session: Session, actor: Actor, org_id: int, ids: Iterable[str]) -> list[FileRow]:
    """Name, size, hash, type and flags of the organization's files among ``ids``."""
    if not actor.is_member(org_id):
        raise actor.deny("Sem acesso a esta organização.", action="file.read", org_id=org_id)
    rows = session.execute(
        select(
            StoredFile.id,
            StoredFile.filename,
            StoredFile.size,
            StoredFile.sha256,
            StoredFile.content_type,
            StoredFile.flags,
        ).where(StoredFile.id.in_(list(ids)), StoredFile.org_id == org_id)
    ).all()
    return [FileRow(*r) for r in rows]
