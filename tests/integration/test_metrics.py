"""/metrics: off without a token, refused with a wrong one; counts requests by route (never by
raw path), instance starts and task completions; reads open and overdue tasks, the outbox,
the scheduler's last successes, the audit verification age and expiring certificates from the
database. The multiprocess sum over gunicorn's workers: tests/integration/test_serve_signals.py."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine.db import utcnow
from engine.runtime.models import READY, Task
from engine.scheduler.models import SchedulerJob
from tests.support.flows import flow
from web import create_app

TOKEN = "segredo-das-metricas"


@pytest.fixture
def scrape(settings, db):
    app = create_app(dataclasses.replace(settings, metrics_token=TOKEN), db)
    client = app.test_client()

    def read() -> dict[str, float]:
        res = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200 and res.mimetype == "text/plain"
        out = {}
        for line in res.get_data(as_text=True).splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    read.client = client  # type: ignore[attr-defined]
    return read


def test_off_without_a_token_and_refused_with_a_wrong_one(client, settings, db):
    assert client.get("/metrics").status_code == 404
    app = create_app(dataclasses.replace(settings, metrics_token=TOKEN), db)
    res = app.test_client().get("/metrics", headers={"Authorization": "Bearer outro"})
    assert res.status_code == 401 and res.headers["WWW-Authenticate"].startswith("Bearer")
    assert app.test_client().get("/metrics").status_code == 401


def test_requests_are_counted_by_route(scrape):
    key = 'credencia_http_requests_total{method="GET",route="/processos/<int:instance_id>",status="302"}'
    before = scrape().get(key, 0)
    for instance_id in (1, 2, 3):  # three paths, one route (not signed in: redirected)
        scrape.client.get(f"/processos/{instance_id}")
    after = scrape()
    assert after[key] == before + 3
    assert not any(re.search(r'route="/processos/\d', name) for name in after)
    duration = 'credencia_http_request_duration_seconds_count{method="GET",route="/processos/<int:instance_id>"}'
    assert after[duration] >= 3


def test_starts_completions_and_the_database_gauges(scrape, client, world, db):
    started = 'credencia_instance_starts_total{process="credenciamento-rnds"}'
    completed = 'credencia_task_completions_total{process="credenciamento-rnds"}'
    before = scrape()
    f = flow(client, world)
    f.complete("obter_certificado_digital")
    after = scrape()
    assert after[started] == before.get(started, 0) + 1
    assert after[completed] == before.get(completed, 0) + 1
    with db.read() as s:
        ready = list(s.scalars(select(Task).where(Task.state == READY)))
    lanes = {t.lane for t in ready}
    assert sum(after[f'credencia_tasks_open{{lane="{lane}"}}'] for lane in lanes) == len(ready)
    assert all(after[f'credencia_tasks_overdue{{lane="{lane}"}}'] == 0 for lane in lanes)
    with db.write() as s:
        s.execute(
            update(Task).where(Task.id == ready[0].id).values(due_at=utcnow() - timedelta(days=1))
        )
        s.add(SchedulerJob(name="timers", last_ok_at=utcnow() - timedelta(minutes=3)))
    later = scrape()
    assert later[f'credencia_tasks_overdue{{lane="{ready[0].lane}"}}'] == 1
    last_ok = later['credencia_scheduler_last_success_timestamp_seconds{job="timers"}']
    assert abs(last_ok - (utcnow() - timedelta(minutes=3)).timestamp()) < 5
    assert later["credencia_audit_verification_age_seconds"] == -1  # never verified
    assert later['credencia_outbox_messages{status="pending"}'] >= 0
    # the certificate uploaded by the flow is current and far from expiry
    assert later["credencia_certificates_expiring"] == 0
