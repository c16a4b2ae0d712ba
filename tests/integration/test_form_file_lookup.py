"""The files of a form are looked up in one query, with the answers of one query per file."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.actor import SYSTEM
from engine.accounts import service as accounts
from engine.db import Database
from engine.files import service as files
from engine.files.models import StoredFile
from engine.forms import FileInfo, FormContext, FormInvalid, validate_form
from engine.forms.messages import FILE_NOT_FOUND
from tests.support.sql import statements

FORM = {
    "type": "object",
    "properties": {
        "certificado": {"type": "string", "format": "file", "x-accept": ["certificate"]},
        "validador": {"type": "string", "format": "file", "x-accept": ["application/pdf"]},
        "evidencias": {
            "type": "array",
            "items": {
                "type": "string",
                "format": "file",
                "x-accept": ["application/pdf", "image/png"],
            },
        },
        "observacao": {"type": "string"},
    },
}


def _stored(session: Session, org_id: int, content_type: str, kind: str) -> str:
    content = uuid.uuid4().bytes
    row = StoredFile(
        id=str(uuid.uuid4()),
        org_id=org_id,
        filename="arquivo",
        content_type=content_type,
        kind=kind,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        flags=[],
    )
    session.add(row)
    session.flush()
    return row.id


@pytest.fixture
def stored(db: Database) -> dict[str, str]:
    with db.write() as s:
        org = accounts.create_org(s, SYSTEM, "sesa-pr", "Secretaria da Saúde do Paraná").id
        other = accounts.create_org(s, SYSTEM, "sms-rj", "SMS Rio").id
        return {
            "org": org,
            "cert": _stored(s, org, "application/pkix-cert", "certificate"),
            "pdf": _stored(s, org, "application/pdf", "pdf"),
            "png": _stored(s, org, "image/png", "png"),
            "elsewhere": _stored(s, other, "application/pdf", "pdf"),
        }


def _context(session: Session, org_id: int, *, together: bool) -> FormContext:
    """The lookups as the task service makes them: only the organization's files."""

    def info(row: StoredFile) -> FileInfo:
        return FileInfo(id=row.id, content_type=row.content_type, kind=row.kind)

    def lookup_file(file_id: str) -> FileInfo | None:
        row = files.get_meta(session, org_id, file_id)
        return info(row) if row else None

    def lookup_files(file_ids: list[str]) -> dict[str, FileInfo]:
        return {row.id: info(row) for row in files.get_meta_many(session, org_id, file_ids)}

    return FormContext(lookup_file=lookup_file, lookup_files=lookup_files if together else None)


def file_queries(db: Database):
    """The statements on stored_file sent meanwhile (SQLite's BEGIN is not one of them)."""
    return statements(db, lambda sql: "stored_file" in sql)


def _outcome(db: Database, org_id: int, submitted: dict, *, together: bool):
    with db.read() as s, file_queries(db) as seen:
        try:
            result = validate_form(FORM, submitted, _context(s, org_id, together=together))
        except FormInvalid as exc:
            result = exc.errors
    return result, seen


def test_a_valid_form_with_several_files_takes_one_query(db, stored):
    submitted = {
        "certificado": stored["cert"],
        "validador": stored["pdf"],
        "evidencias": [stored["pdf"], stored["png"]],
        "observacao": "ok",
    }
    result, queries = _outcome(db, stored["org"], submitted, together=True)
    assert result == submitted
    assert len(queries) == 1 and queries[0].startswith("SELECT")
    one_by_one, queries = _outcome(db, stored["org"], submitted, together=False)
    assert one_by_one == result and len(queries) == 3


def test_unknown_foreign_and_wrong_files_give_the_same_errors_in_one_query(db, stored):
    submitted = {
        "certificado": stored["pdf"],  # not a certificate
        "validador": stored["elsewhere"],  # of another organization
        "evidencias": [stored["png"], str(uuid.uuid4()), stored["cert"], "não é um id"],
    }
    errors, queries = _outcome(db, stored["org"], submitted, together=True)
    assert errors == {
        "certificado": (
            "Tipo de arquivo não aceito. Envie: certificado digital (.cer, .crt, .pem, .pfx, .p12)."
        ),
        "validador": FILE_NOT_FOUND,
        "evidencias.1": FILE_NOT_FOUND,
        "evidencias.2": "Tipo de arquivo não aceito. Envie: PDF ou PNG.",
        "evidencias.3": FILE_NOT_FOUND,
    }
    assert len(queries) == 1
    one_by_one, queries = _outcome(db, stored["org"], submitted, together=False)
    assert one_by_one == errors and len(queries) == 5


def test_get_meta_many_keeps_to_the_organization(db, stored):
    with db.read() as s, file_queries(db) as seen:
        assert files.get_meta_many(s, stored["org"], []) == []
        assert seen == []
        ids = [stored["pdf"], stored["elsewhere"], stored["pdf"], "nao-existe", stored["png"]]
        rows = files.get_meta_many(s, stored["org"], ids)
        assert sorted(r.id for r in rows) == sorted([stored["pdf"], stored["png"]])
        assert len(seen) == 1
        # the rows are the session's own: reading one again by key asks nothing more
        assert s.get(StoredFile, stored["pdf"]) is next(r for r in rows if r.id == stored["pdf"])
        assert len(seen) == 1
        assert s.scalar(select(StoredFile.content).where(StoredFile.id == stored["pdf"]))
