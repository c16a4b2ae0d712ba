"""Uploaded files: stored in the database with their SHA-256, type judged by content."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.certificates.inspect import (
    CertificateError,
    looks_like_certificate_file,
    public_der_from_upload,
)
from engine.errors import Invalid, NotFound, TooLarge
from engine.files.content import EvidenceError, check_evidence
from engine.files.models import StoredFile

CHUNK = 64 * 1024


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
    session: Session,
    actor: Actor,
    org_id: int,
    filename: str,
    content: bytes,
    *,
    limit: int,
    password: str | None = None,
) -> StoredFile:
    """Keep an upload: evidence (PDF/PNG, checked by content) or a certificate.

    A certificate upload keeps only its public certificate: a .pfx is opened with its
    password here and its private key and password go no further.
    """
    if not actor.is_member(org_id) or (
        not actor.is_system and actor.roles_in(org_id) <= {"auditor"}
    ):
        raise actor.deny(
            "Você não pode enviar arquivos nesta organização.", action="file.upload", org_id=org_id
        )
    if len(content) > limit:
        raise TooLarge(f"Arquivo maior que o limite de {limit // (1024 * 1024)} MB.")
    if not content:
        raise Invalid({"file": "Arquivo vazio."})
    flags: list[str] = []
    if looks_like_certificate_file(content):
        try:
            content = public_der_from_upload(content, password)
        except CertificateError as exc:
            raise Invalid({"file": exc.message}) from None
        content_type, kind = "application/pkix-cert", "certificate"
        filename = (Path(filename or "certificado").stem or "certificado") + ".cer"
    else:
        try:
            info = check_evidence(content, max_bytes=limit)
        except EvidenceError as exc:
            if exc.code == "too_large":
                raise TooLarge(exc.message) from None
            raise Invalid({"file": exc.message}) from None
        content_type, kind, flags = info.content_type, info.kind, list(info.flags)
    safe_name = "".join(
        ch for ch in (filename or "arquivo") if ch.isprintable() and ch not in "/\\"
    )[:255]
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
        flags=flags,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "file.uploaded",
        org_id=org_id,
        entity_type="file",
        entity_id=row.id,
        data={
            "filename": row.filename,
            "sha256": row.sha256,
            "size": row.size,
            "content_type": content_type,
            "flags": flags,
        },
    )
    return row


def get_meta(session: Session, org_id: int, file_id: str) -> StoredFile | None:
    return session.scalar(
        select(StoredFile).where(StoredFile.id == file_id, StoredFile.org_id == org_id)
    )


def get_meta_many(session: Session, org_id: int, file_ids: Iterable[str]) -> list[StoredFile]:
    """The organization's files among ``file_ids``, in one query; unknown ids are left out."""
    wanted = list(dict.fromkeys(str(file_id) for file_id in file_ids))
    if not wanted:
        return []
    stmt = select(StoredFile).where(StoredFile.id.in_(wanted), StoredFile.org_id == org_id)
    return list(session.scalars(stmt))


def get(session: Session, actor: Actor, file_id: str) -> StoredFile:
    row = session.get(StoredFile, file_id)
    if row is None:
        raise NotFound("Arquivo não encontrado.")
    allowed = actor.user_id is not None and row.uploaded_by_id == actor.user_id
    allowed = allowed or (
        row.establishment_id is not None
        and actor.can_see_establishment(row.org_id, row.establishment_id)
    )
    allowed = allowed or (
        actor.visible_establishments(row.org_id) is None and actor.is_member(row.org_id)
    )
    if not allowed:
        raise actor.deny(
            "Sem acesso a este arquivo.",
            action="file.read",
            org_id=row.org_id,
            entity_type="file",
            entity_id=file_id,
        )
    return row


def record_download(session: Session, actor: Actor, row: StoredFile) -> None:
    audit.record(
        session,
        actor,
        "file.downloaded",
        org_id=row.org_id,
        entity_type="file",
        entity_id=row.id,
        data={"filename": row.filename, "sha256": row.sha256},
    )
