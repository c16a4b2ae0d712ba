"""The task page refuses an upload beyond the user's quota of unattached uploads with a
message at the field; once the old uploads expire, the same upload goes through."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from engine.demo import samples
from engine.runtime.models import Task
from engine.scheduler import jobs
from tests.support.pages import ready_task

T0 = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, upload_quota_files=1)


def test_the_task_page_shows_the_quota_at_the_field(world, db, pages, settings):
    task = ready_task(db, world.instance_id, "obter_certificado_digital")
    certificate = samples.demo_certificate(world.est.cnpj)
    with time_machine.travel(T0, tick=True):
        gestor = pages(world.users["gestor"])
        # A PDF where the certificate goes: stored, then refused by the form (unattached).
        res = gestor.post(f"/tarefas/{task.id}", {
            "action": "submit", "certificado__upload": (io.BytesIO(samples.tiny_pdf()), "c.cer"),
        }, content_type="multipart/form-data")  # fmt: skip
        assert res.status_code == 422
        res = gestor.post(f"/tarefas/{task.id}", {
            "action": "submit", "certificado__upload": (io.BytesIO(certificate), "ecnpj.cer"),
        }, content_type="multipart/form-data")  # fmt: skip
        assert res.status_code == 422
        html = res.get_data(as_text=True)
        assert 'id="f-certificado-erro"' in html
        assert "Limite de envios pendentes atingido" in html and "48 horas" in html
    with time_machine.travel(T0 + timedelta(hours=49), tick=True):
        assert jobs.uploads_job(db, settings)["deleted"] == 1
        gestor = pages(world.users["gestor"])
        res = gestor.post(f"/tarefas/{task.id}", {
            "action": "submit", "certificado__upload": (io.BytesIO(certificate), "ecnpj.cer"),
        }, content_type="multipart/form-data")  # fmt: skip
        assert res.status_code == 302, res.get_data(as_text=True)[:2000]
    with db.read() as s:
        assert s.get(Task, task.id).state == "completed"
