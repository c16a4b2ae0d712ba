"""Uploads (type by content, 413 before reading the body) and process versions."""

from __future__ import annotations

import io
import shutil

from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.definitions import service as definitions
from engine.definitions.models import ProcessDefinition
from engine.demo import samples
from engine.workflow import spiff
from tests.support.flows import flow


def _upload(client, user, content: bytes, name: str):
    return client.post(
        "/api/v1/files",
        headers=user.headers,
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_upload_detects_type_by_content_and_download_is_attachment(client, make, db):
    import hashlib

    org = make.org()
    user = make.user("sesa-pr", "integrador")
    admin = make.user("sesa-pr", "admin")
    pdf = samples.tiny_pdf()
    res = _upload(client, user, pdf, "evidencia.png")  # the name lies; the content decides
    assert res.status_code == 201
    assert res.json["content_type"] == "application/pdf"
    assert res.json["sha256"] == hashlib.sha256(pdf).hexdigest() and res.json["size"] == len(pdf)
    assert _upload(client, user, samples.tiny_png(), "x.pdf").json["content_type"] == "image/png"
    down = client.get(f"/api/v1/files/{res.json['id']}", headers=admin.headers)
    assert down.status_code == 200 and down.data == pdf
    assert down.headers["Content-Disposition"].startswith("attachment;")
    assert down.headers["X-Content-Type-Options"] == "nosniff"
    other_org = make.org("sms-rj", "SMS Rio")
    assert other_org
    stranger = make.user("sms-rj", "admin")
    assert (
        client.get(f"/api/v1/files/{res.json['id']}", headers=stranger.headers).status_code == 403
    )
    with db.read() as s:
        actions = s.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_id == res.json["id"])
        ).all()
    assert actions == ["file.uploaded", "file.downloaded", "denied.file.read"]
    assert org


def test_upload_over_the_limit_is_413_and_stores_nothing(client, make, app, db):
    from engine.files.models import StoredFile

    make.org()
    user = make.user("sesa-pr", "integrador")
    limit = app.extensions["credencia.settings"].max_upload_bytes
    res = _upload(client, user, b"%PDF-" + b"0" * (limit + 200 * 1024), "grande.pdf")
    assert res.status_code == 413 and "10 MB" in res.json["message"]
    res = _upload(
        client, user, b"%PDF-" + b"0" * (limit + 10), "quase.pdf"
    )  # within the multipart slack
    assert res.status_code == 413
    assert _upload(client, user, b"", "vazio.pdf").status_code == 422
    assert client.post("/api/v1/files", headers=user.headers).status_code == 422
    with db.read() as s:
        assert s.scalars(select(StoredFile.id)).all() == []


def test_413_is_answered_from_the_header_before_the_body_is_read(app, make):
    make.org()
    user = make.user("sesa-pr", "integrador")
    reads = []

    class Body(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            reads.append(len(b))
            b[: len(b)] = b"x" * len(b)
            return len(b)

    environ = {
        "CONTENT_LENGTH": str(2 * 1024**3),
        "CONTENT_TYPE": "multipart/form-data; boundary=x",
        "wsgi.input": Body(),
        "HTTP_AUTHORIZATION": f"Bearer {user.token}",
    }
    res = app.test_client().post("/api/v1/files", environ_overrides=environ)
    assert res.status_code == 413
    assert sum(reads) < 1024 * 1024  # a 2 GB declared body was not read


def test_running_instances_stay_on_their_version(client, make, db, app, tmp_path, settings):
    org = make.org()
    est = make.establishment(org)
    other = make.establishment(org)
    users = {
        "admin": make.user("sesa-pr", "admin"),
        "Gestor": make.user("sesa-pr", "gestor", est.cnes, other.cnes),
        "Integrador": make.user("sesa-pr", "integrador", est.cnes, other.cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
    }
    old = flow(client, {"est": est, "users": users})
    assert old.instance()["version"] == 1
    procs = tmp_path / "processes"
    shutil.copytree(settings.processes_dir, procs)
    bpmn = procs / "credenciamento-rnds.bpmn"
    bpmn.write_text(
        bpmn.read_text(encoding="utf-8").replace(
            'name="Ambientar com serviços"', 'name="Ambientar-se"'
        ),
        encoding="utf-8",
    )
    [(definition, created)] = [
        r for r in definitions.deploy_all(db, procs) if r[0].key == "credenciamento-rnds"
    ]
    assert created and definition.version == 2
    new = flow(client, {"est": other, "users": users})
    assert new.instance()["version"] == 2
    assert {t["name"] for t in new.ready()} == {"Obter certificado digital", "Ambientar-se"}
    old.complete("ambientar_servicos")  # the old instance runs on v1
    assert old.instance()["version"] == 1
    with db.read() as s:
        versions = s.scalars(
            select(ProcessDefinition.version)
            .where(ProcessDefinition.key == "credenciamento-rnds")
            .order_by(ProcessDefinition.version)
        ).all()
    assert versions == [1, 2]
    assert spiff._cache  # parsed specs are cached per version


def test_broken_bpmn_is_refused_with_a_message(db, app, tmp_path):
    import pytest

    bad = tmp_path / "quebrado.bpmn"
    bad.write_text("<nao-e-bpmn", encoding="utf-8")
    with pytest.raises(definitions.DeployError, match="não é um XML BPMN legível"):
        definitions.deploy_all(db, tmp_path)
