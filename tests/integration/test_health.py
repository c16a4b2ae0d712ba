"""/healthz says the process answers; /readyz whether this instance can serve, check by check:
the database, its schema at the migrations' head, the processes deployed, a recent scheduler
heartbeat. Each failing check is named with its reason, and the answer is 503."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import text

from engine.db import Database, utcnow
from engine.scheduler.models import SchedulerJob
from web import create_app
from web.cli.db import alembic_config


@pytest.fixture
def stamped(db):
    """The test schema (built from the models) marked as at the migrations' head."""
    from alembic import command

    command.stamp(alembic_config(db.url), "head")
    yield db
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


def beat(db, minutes_ago: float) -> None:
    with db.write() as s:
        job = s.get(SchedulerJob, "timers") or SchedulerJob(name="timers")
        job.last_started_at = utcnow() - timedelta(minutes=minutes_ago)
        s.add(job)


def test_healthz_answers_without_a_session(client):
    res = client.get("/healthz")
    assert res.status_code == 200 and res.json == {"status": "ok"}
    assert "Set-Cookie" not in res.headers


def test_readyz_names_each_failing_check(client, db):
    res = client.get("/readyz")
    assert res.status_code == 503 and res.json["status"] == "not ready"
    checks = res.json["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["migrations"]["ok"] is False
    assert "não foi migrado" in checks["migrations"]["reason"]
    assert checks["processes"]["ok"] is True and checks["processes"]["deployed"] >= 6
    assert checks["scheduler"] == {"ok": False, "reason": "nenhum job do agendador rodou ainda"}


def test_readyz_ready_then_a_stale_scheduler(client, stamped):
    beat(stamped, 1)
    res = client.get("/readyz")
    assert res.status_code == 200, res.json
    assert res.json["status"] == "ready" and res.json["checks"]["migrations"] == {"ok": True}
    assert 50 <= res.json["checks"]["scheduler"]["age_seconds"] <= 600
    beat(stamped, 25)
    res = client.get("/readyz")
    assert res.status_code == 503
    assert res.json["checks"]["scheduler"]["reason"].startswith("último job há 25 min")


def test_readyz_scheduler_check_can_be_off(settings, stamped):
    app = create_app(dataclasses.replace(settings, ready_scheduler_minutes=0), stamped)
    res = app.test_client().get("/readyz")
    assert res.status_code == 200 and res.json["checks"]["scheduler"]["checked"] is False


def test_readyz_when_the_database_is_unreachable(settings, db):
    # Nothing listens on port 9 of loopback: the worker still boots and answers.
    down = Database("postgresql+psycopg://credencia@127.0.0.1:9/nada?connect_timeout=2")
    app = create_app(dataclasses.replace(settings, database_url=down.url), down)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    res = client.get("/readyz")
    assert res.status_code == 503
    checks = res.json["checks"]
    assert checks["database"]["ok"] is False and "OperationalError" in checks["database"]["reason"]
    assert checks["migrations"] == {"ok": False, "reason": "não conferido: banco inacessível"}
    down.dispose()
