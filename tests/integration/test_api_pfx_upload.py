"""Item 15 of issue 14: a .pfx sent through the API with its password in the multipart
field ``password``; only the public certificate is kept, the password goes nowhere."""

from __future__ import annotations

import io
import logging

from sqlalchemy import select

from engine.db import Base
from engine.files.models import StoredFile
from tests.support.pki import CNPJ, PASSWORD, pki


def _upload(client, user, content: bytes, name: str, **fields):
    return client.post(
        "/api/v1/files",
        headers=user.headers,
        data={"file": (io.BytesIO(content), name), **fields},
        content_type="multipart/form-data",
    )


def _everything_stored(db) -> str:
    """Every value of every table, as text: where a leaked password would show."""
    with db.read() as s:
        return "\n".join(
            repr(row) for table in Base.metadata.sorted_tables for row in s.execute(select(table))
        )


def test_item15_pfx_with_its_password_keeps_only_the_certificate(client, world, db, caplog):
    caplog.set_level(logging.DEBUG)
    issued = pki().ecnpj(cnpj=CNPJ)
    res = _upload(client, world["users"]["Gestor"], pki().pfx(issued), "ecnpj.pfx",
                  password=PASSWORD)  # fmt: skip
    assert res.status_code == 201, res.json
    assert res.json["filename"] == "ecnpj.cer"
    with db.read() as s:
        row = s.get(StoredFile, res.json["id"])
        # only the public certificate is kept; its kind says it came with its key (a .pfx)
        assert row.kind == "certificate_with_key" and row.content_type == "application/pkix-cert"
        assert row.content == issued.cert.public_bytes(encoding=_der())
    stored = _everything_stored(db)
    assert PASSWORD not in stored and PASSWORD.encode().hex() not in stored
    assert PASSWORD not in caplog.text


def test_item15_wrong_or_missing_password_is_refused_at_the_password_field(client, world, db):
    pfx = pki().pfx(pki().ecnpj(cnpj=CNPJ))
    user = world["users"]["Gestor"]
    wrong = _upload(client, user, pfx, "ecnpj.pfx", password="senha-errada-123")
    assert wrong.status_code == 422
    assert wrong.json["errors"] == {"password": "Senha do certificado incorreta."}
    missing = _upload(client, user, pfx, "ecnpj.pfx")
    assert missing.status_code == 422
    assert "senha" in missing.json["errors"]["password"]
    assert "senha-errada-123" not in _everything_stored(db)
    with db.read() as s:
        assert s.scalar(select(StoredFile.id)) is None  # nothing was kept


def test_item15_the_password_field_is_documented(client):
    doc = client.get("/api/v1/openapi.json").json
    body = doc["paths"]["/api/v1/files"]["post"]["requestBody"]["content"]
    schema = next(iter(body.values()))["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    password = schema["properties"]["password"]
    assert password.get("writeOnly") is True and password.get("format") == "password"


def _der():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER
