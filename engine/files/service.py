"""Uploaded files: stored in the database with their SHA-256, type judged by content.

An upload belongs to nobody until a task completion attaches it to a process (or a
certificate registration to an establishment). Unattached uploads are bounded per user (a
quota checked at upload) and expire: the scheduler deletes them after a while, except those a
saved draft refers to.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import column, delete, exists, func, select, table
from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.db import JSONType, utcnow
from engine.errors import Invalid, NotFound, TooLarge
from engine.files.content import EvidenceError, check_evidence
from engine.files.models import StoredFile
from engine.forms.schema import WITH_KEY
from engine.pki import (
    CertificateError,
    looks_like_certificate_file,
    parse_file,
)

CHUNK = 64 * 1024
MB = 1024 * 1024
# The tables that refer to uploads, by name: their packages import this one (drafts through
# the runtime, certificates), so importing their models here would close a circle.
_CERTIFICATE = table("certificate", column("file_id"))
_DRAFT = table("task_draft", column("org_id"), column("data", JSONType))
EXPIRY_BATCH = 500
# At most this many files a run (the rest go in the next runs): the run's audit event lists
# their ids.
EXPIRY_MAX_PER_RUN = 2000


@dataclass(frozen=True)
class UploadQuota:
    """How much a user may have uploaded and not yet attached to a process."""

    files: int
    bytes: int
    ttl_hours: int

    @classmethod
    def from_settings(cls, settings: Any) -> UploadQuota:
        return cls(settings.upload_quota_files, settings.upload_quota_bytes,
                   settings.upload_ttl_hours)  # fmt: skip


def _unattached() -> tuple[Any, ...]:
    """Criteria of an upload attached to no process and no establishment."""
    return StoredFile.instance_id.is_(None), StoredFile.establishment_id.is_(None)


def _check_quota(session: Session, actor: Actor, size: int, quota: UploadQuota) -> None:
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(StoredFile.size), 0)).where(
            StoredFile.uploaded_by_id == actor.user_id, *_unattached()
        )
    ).one()
    if count + 1 <= quota.files and total + size <= quota.bytes:
        return
    held = f"{total / MB:.1f}".replace(".", ",")
    raise Invalid(
        {
            "file": f"Limite de envios pendentes atingido: você tem {count} arquivo(s) "
            f"({held} MB) enviados e ainda não anexados a um formulário concluído, e o limite "
            f"é de {quota.files} arquivos e {quota.bytes // MB} MB. Conclua os formulários "
            "pendentes ou tire anexos dos rascunhos; envios não usados são apagados após "
            f"{quota.ttl_hours} horas."
        }
    )


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
    quota: UploadQuota | None = None,
) -> StoredFile:
    """Keep an upload: evidence (PDF/PNG, checked by content) or a certificate.

    A certificate upload keeps only its public certificate: a .pfx is opened with its
    password here and its private key and password go no further. With ``quota`` (the faces
    users upload through), a user's unattached uploads may not go beyond it.
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
            parsed = parse_file(content, password)
        except CertificateError as exc:
            raise Invalid({"file": exc.message}) from None
        content = parsed.leaf_der  # the key and the password go no further
        content_type, kind = "application/pkix-cert", "certificate"
        if parsed.has_private_key and parsed.key_matches is not False:
            kind = WITH_KEY  # came as .pfx/.p12 with its key: what the PEC's Chaves folder needs
        filename = (Path(filename or "certificado").stem or "certificado") + ".cer"
    else:
        try:
            info = check_evidence(content, max_bytes=limit)
        except EvidenceError as exc:
            if exc.code == "too_large":
                raise TooLarge(exc.message) from None
            raise Invalid({"file": exc.message}) from None
        content_type, kind, flags = info.content_type, info.kind, list(info.flags)
    if quota is not None and actor.user_id is not None:
        _check_quota(session, actor, len(content), quota)
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


@dataclass
class ExpiryResult:
    deleted: int = 0
    bytes: int = 0
    kept_for_drafts: int = 0
    organizations: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strings(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        if len(value) == 36:  # a file id
            found.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _strings(item, found)


def _in_drafts(session: Session, org_id: int) -> set[str]:
    """The file ids the organization's saved drafts refer to (anywhere in their data)."""
    found: set[str] = set()
    stmt = select(_DRAFT.c.data).where(_DRAFT.c.org_id == org_id)
    for data in session.scalars(stmt.execution_options(yield_per=200)):
        _strings(data, found)
    return found


def expire_unattached(
    session: Session, *, ttl_hours: int, now: datetime | None = None,
    limit: int = EXPIRY_MAX_PER_RUN,
) -> ExpiryResult:  # fmt: skip
    """Delete the uploads older than ``ttl_hours`` that no process, establishment,
    certificate or saved draft refers to; one audit event per organization says which.

    Safe to run in several processes at once: the delete checks again that each file is
    still unattached, and only what it deleted is counted and audited."""
    cutoff = (now or utcnow()) - timedelta(hours=ttl_hours)
    expired = (
        StoredFile.created_at < cutoff,
        *_unattached(),
        ~exists().where(_CERTIFICATE.c.file_id == StoredFile.id),
    )
    result = ExpiryResult()
    drafted: dict[int, set[str]] = {}
    gone: dict[int, list[tuple[str, int]]] = {}
    last = ""
    while result.deleted < limit:
        batch = session.execute(
            select(StoredFile.id, StoredFile.org_id)
            .where(*expired, StoredFile.id > last)
            .order_by(StoredFile.id)
            .limit(EXPIRY_BATCH)
        ).all()
        if not batch:
            break
        last = batch[-1][0]
        doomed = []
        for file_id, org_id in batch:
            if org_id not in drafted:
                drafted[org_id] = _in_drafts(session, org_id)
            if file_id in drafted[org_id]:
                result.kept_for_drafts += 1
            else:
                doomed.append(file_id)
        doomed = doomed[: limit - result.deleted]
        if not doomed:
            continue
        deleted = session.execute(
            delete(StoredFile)
            .where(StoredFile.id.in_(doomed), *expired)
            .returning(StoredFile.id, StoredFile.org_id, StoredFile.size)
            .execution_options(synchronize_session=False)
        ).all()
        for file_id, org_id, size in deleted:
            gone.setdefault(org_id, []).append((file_id, size))
            result.deleted += 1
            result.bytes += size
    for org_id in sorted(gone):
        expired_files = sorted(gone[org_id])
        audit.record(
            session,
            None,
            "file.expired",
            org_id=org_id,
            entity_type="organization",
            entity_id=org_id,
            data={
                "count": len(expired_files),
                "bytes": sum(size for _, size in expired_files),
                "ttl_hours": ttl_hours,
                "files": [file_id for file_id, _ in expired_files],
            },
        )
    result.organizations = sorted(gone)
    return result
