"""Uploads never attached to a process expire (a scheduler job) and are bounded per user (a
quota at upload); a saved draft keeps its files while it exists."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from engine.audit import service as audit
from engine.audit.models import AuditEvent
from engine.demo import samples
from engine.drafts import service as drafts
from engine.files import service as files
from engine.files.models import StoredFile
from engine.scheduler import jobs
from engine.scheduler.models import SchedulerJob
from tests.support.flows import flow

T0 = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)
QUOTA_MESSAGE = "Limite de envios pendentes atingido"


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, upload_quota_files=3, upload_quota_bytes=10 * 1024 * 1024)


def upload(client, user, content: bytes, name: str):
    return client.post(
        "/api/v1/files",
        headers=user.headers,
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def kept(db) -> set[str]:
    with db.read() as s:
        return set(s.scalars(select(StoredFile.id)))


def expired_events(db) -> list[dict]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent.data)
                .where(AuditEvent.action == "file.expired")
                .order_by(AuditEvent.id)
            )
        )


def test_unattached_uploads_expire_attached_and_drafted_ones_stay(client, world, db, settings):  # noqa: F811
    users = world["users"]
    with time_machine.travel(T0, tick=True):
        f = flow(client, world)
        f.complete("obter_certificado_digital")  # its file is attached to the instance
        certificate = f.ctx["certificate_file"]
        task = f.task("ambientar_servicos")
        lane_user = users[task["lane"]]
        rejected = f.upload(samples.tiny_pdf(), "rejeitado.pdf", task["lane"])
        drafted = f.upload(samples.tiny_png(), "rascunho.png", task["lane"])
        with db.write() as s:
            drafts.save_draft(s, lane_user.actor, task["id"], {"anexos": [{"arquivo": drafted}]})
    assert {certificate, rejected, drafted} <= kept(db)

    with time_machine.travel(T0 + timedelta(hours=47), tick=True):
        assert jobs.uploads_job(db, settings)["deleted"] == 0
    assert {certificate, rejected, drafted} <= kept(db) and expired_events(db) == []

    with time_machine.travel(T0 + timedelta(hours=49), tick=True):
        summary = jobs.run_job(db, settings, jobs.JOBS_BY_NAME["uploads"], owner="test")
        assert summary == {"deleted": 1, "bytes": len(samples.tiny_pdf()), "kept_for_drafts": 1,
                           "organizations": [world["org"]]}  # fmt: skip
        assert jobs.uploads_job(db, settings)["deleted"] == 0  # a second run finds nothing
    assert rejected not in kept(db) and {certificate, drafted} <= kept(db)
    got = client.get(f"/api/v1/files/{rejected}", headers=lane_user.headers)
    assert got.status_code == 404
    assert expired_events(db) == [{"count": 1, "bytes": len(samples.tiny_pdf()), "ttl_hours": 48,
                                   "files": [rejected]}]  # fmt: skip
    with db.read() as s:
        row = s.get(SchedulerJob, "uploads")
        assert row.last_summary["deleted"] == 1 and row.last_owner == "test"
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "file.expired"))
        assert (event.org_id, event.actor, event.entity_type) == (world["org"], "system",
                                                                  "organization")  # fmt: skip
        assert audit.verify(s)[1] is None

    # The draft goes (its task completed elsewhere, or discarded): its file expires too.
    with db.write() as s:
        drafts.discard_drafts(s, task["id"])
    with time_machine.travel(T0 + timedelta(hours=50), tick=True):
        assert jobs.uploads_job(db, settings)["deleted"] == 1
    assert drafted not in kept(db) and certificate in kept(db)
    assert [e["files"] for e in expired_events(db)] == [[rejected], [drafted]]


def test_the_time_to_live_is_a_setting(client, world, db, settings):  # noqa: F811
    with time_machine.travel(T0, tick=True):
        stray = flow(client, world).upload(samples.tiny_pdf(), "x.pdf")
    short = dataclasses.replace(settings, upload_ttl_hours=2)
    with time_machine.travel(T0 + timedelta(hours=1), tick=True):
        assert jobs.uploads_job(db, short)["deleted"] == 0
    with time_machine.travel(T0 + timedelta(hours=3), tick=True):
        assert jobs.uploads_job(db, settings)["deleted"] == 0  # 48 h by default
        assert jobs.uploads_job(db, short)["deleted"] == 1
    assert stray not in kept(db)


def test_a_run_deletes_at_most_its_limit(make, db) -> None:
    org = make.org()
    user = make.user("sesa-pr", "integrador")
    with time_machine.travel(T0, tick=True), db.write() as s:
        for n in range(5):
            files.store(s, user.actor, org, f"{n}.pdf", samples.tiny_pdf(), limit=10**7)
    with time_machine.travel(T0 + timedelta(days=3), tick=True):
        with db.write() as s:
            assert files.expire_unattached(s, ttl_hours=48, limit=3).deleted == 3
        with db.write() as s:
            assert files.expire_unattached(s, ttl_hours=48, limit=3).deleted == 2
    assert kept(db) == set()
    assert [e["count"] for e in expired_events(db)] == [3, 2]


def test_the_upload_quota_is_per_user_and_refused_at_the_field(client, world, db, settings):  # noqa: F811
    integrador, gestor = world["users"]["Integrador"], world["users"]["Gestor"]
    pdf = samples.tiny_pdf()
    with time_machine.travel(T0, tick=True):
        for n in range(3):
            assert upload(client, integrador, pdf, f"{n}.pdf").status_code == 201
        refused = upload(client, integrador, pdf, "3.pdf")
        assert refused.status_code == 422
        assert QUOTA_MESSAGE in refused.json["errors"]["file"]
        assert "3 arquivo(s)" in refused.json["errors"]["file"]
        assert "48 horas" in refused.json["errors"]["file"]
        assert upload(client, gestor, pdf, "outro.pdf").status_code == 201  # per user
    with db.read() as s:
        mine = s.scalars(
            select(StoredFile).where(StoredFile.uploaded_by_id == integrador.actor.user_id)
        )
        assert len(list(mine)) == 3  # nothing kept of the refused upload
    with time_machine.travel(T0 + timedelta(hours=49), tick=True):
        assert jobs.uploads_job(db, settings)["deleted"] == 4
        assert upload(client, integrador, pdf, "3.pdf").status_code == 201


def test_the_quota_counts_bytes_too(client, world, db, settings, app):  # noqa: F811
    integrador = world["users"]["Integrador"]
    png = samples.tiny_png()
    app.extensions["credencia.settings"] = dataclasses.replace(
        settings, upload_quota_bytes=2 * len(png) + 1
    )
    assert upload(client, integrador, png, "a.png").status_code == 201
    assert upload(client, integrador, png, "b.png").status_code == 201
    refused = upload(client, integrador, png, "c.png")
    assert refused.status_code == 422 and QUOTA_MESSAGE in refused.json["errors"]["file"]


def test_attached_uploads_leave_the_quota(client, world, db, settings):  # noqa: F811
    """Completing a form attaches its files: they no longer count against the uploader."""
    f = flow(client, world)
    gestor = world["users"]["Gestor"]
    for n in range(2):
        assert upload(client, gestor, samples.tiny_pdf(), f"{n}.pdf").status_code == 201
    f.complete("obter_certificado_digital")  # the third upload, attached at completion
    assert upload(client, gestor, samples.tiny_pdf(), "2.pdf").status_code == 201
    assert upload(client, gestor, samples.tiny_pdf(), "3.pdf").status_code == 422
