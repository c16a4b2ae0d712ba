"""Uploaded files: stored in the database with their SHA-256, type judged by content."""

from __future__ import annotations

import hashlib
import uuid
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts.actor import Actor
from engine.audit import service as audit
from engine.errors import Invalid, NotFound, TooLarge
from engine.files.models import StoredFile

CHUNK = 64 * 1024


def detect_type(head: bytes) -> tuple[str, str]:
    """(content type, kind) from the first bytes of a file, never from its name."""
    if head.startswith(b"%PDF-"):
        return "application/pdf", "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if head.lstrip().startswith(b"-----BEGIN CERTIFICATE-----") or head.lstrip().startswith(b"-----BEGIN PKCS7"):
        return "application/x-pem-file", "certificate"
    # DER: SEQUENCE with a long-form length; X.509 certificates and PKCS#12 both start so.
    if len(head) > 4 and head[0] == 0x30 and head[1] in (0x82, 0x83, 0x84):
        return "application/pkix-cert", "certificate"
    return "application/octet-stream", "other"


def read_limited(stream: BinaryIO, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a longer stream is refused without reading it all."""
    parts, total = [], 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"Arquivo maior que o limite de {limit // (1024 * 1024)} MB.")
        parts.append(chunk)
    return b"".join(parts)


def store(
    session: Session, actor: Actor, org_id: int, filename: str, content: bytes, *, limit: int
) -> StoredFile:
    if not actor.is_member(org_id):
        raise actor.deny("Sem acesso a esta organização.", action="file.upload", org_id=org_id)
    if len(content) > limit:
        raise TooLarge(f"Arquivo maior que o limite de {limit // (1024 * 1024)} MB.")
    if not content:
        raise Invalid({"file": "Arquivo vazio."})
    content_type, kind = detect_type(content[:64])
    safe_name = "".join(ch for ch in (filename or "arquivo") if ch.isprintable() and ch not in "/\\")[:255]
    row = StoredFile(
        id=str(uuid.uuid4()),
        org_id=org_id,
        uploaded_by_id=actor.user_id,
        filename=safe_name or "arquivo",
        content_type=content_type,
        kind=kind,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
    )
    session.add(row)
    session.flush()
    audit.record(session, actor, "file.uploaded", org_id=org_id, entity_type="file", entity_id=row.id,
                 data={"filename": row.filename, "sha256": row.sha256, "size": row.size,
                       "content_type": content_type})  # fmt: skip
    return row


def get_meta(session: Session, org_id: int, file_id: str) -> StoredFile | None:
    return session.scalar(select(StoredFile).where(StoredFile.id == file_id, StoredFile.org_id == org_id))


def get(session: Session, actor: Actor, file_id: str) -> StoredFile:
    row = session.get(StoredFile, file_id)
    if row is None:
        raise NotFound("Arquivo não encontrado.")
    allowed = actor.user_id is not None and row.uploaded_by_id == actor.user_id
    allowed = allowed or (row.establishment_id is not None and actor.can_see_establishment(row.org_id, row.establishment_id))
    allowed = allowed or (actor.visible_establishments(row.org_id) is None and actor.is_member(row.org_id))
    if not allowed:
        raise actor.deny("Sem acesso a este arquivo.", action="file.read", org_id=row.org_id,
                         entity_type="file", entity_id=file_id)  # fmt: skip
    return row


def record_download(session: Session, actor: Actor, row: StoredFile) -> None:
    audit.record(session, actor, "file.downloaded", org_id=row.org_id, entity_type="file",
                 entity_id=row.id, data={"filename": row.filename, "sha256": row.sha256})  # fmt: skip
