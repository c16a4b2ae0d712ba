"""Daily digests of overdue tasks, and the scheduler's jobs, status and runner."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from click.testing import CliRunner
from sqlalchemy import select

from engine import settings as settings_mod
from engine.notifications import delivery
from engine.reminders import service as reminders
from engine.reminders.models import OVERDUE_DIGEST, Reminder
from engine.scheduler import runner
from engine.scheduler import status as status_mod
from engine.scheduler.models import SchedulerJob
from tests.support.scheduler import add_tasks
from web.cli import scheduler as cli_scheduler

SP = ZoneInfo("America/Sao_Paulo")
WED = datetime(2027, 3, 3, 9, 0, tzinfo=SP)


def _overdue_mix(db, people) -> dict[str, list[str]]:
    org, est = people["org"], people["est"].id
    integrador_id = people["users"]["integrador"].actor.user_id
    past, created = WED - timedelta(days=3), WED - timedelta(days=12)
    common = {"org_id": org, "establishment_id": est, "created_at": created}
    return {
        "gestor": add_tasks(
            db, **common, lane="Gestor", role="gestor", name="Solicitar acesso", due_at=past
        ),
        "assigned": add_tasks(
            db,
            **common,
            lane="Integrador",
            role="integrador",
            name="Desenvolver conector",
            due_at=past,
            assignee_id=integrador_id,
        ),
        "integrador": add_tasks(
            db,
            **common,
            lane="Integrador",
            role="integrador",
            name="Ambientar serviços",
            due_at=past - timedelta(days=1),
        ),
        "datasus": add_tasks(db, **common, due_at=past),  # reminded on its own, not in digests
        "not_due": add_tasks(
            db,
            **common,
            lane="Gestor",
            role="gestor",
            name="Registrar",
            due_at=WED + timedelta(days=2),
        ),
    }


def test_one_digest_per_user_per_business_day(db, people, mail_settings, smtp) -> None:
    tasks = _overdue_mix(db, people)
    with time_machine.travel(WED.replace(hour=6, minute=30), tick=False):
        assert reminders.send_daily_digests(db, mail_settings).sent == 0  # before 07:00
    with time_machine.travel(WED, tick=True):
        assert reminders.send_daily_digests(db, mail_settings).sent == 2
        assert reminders.send_daily_digests(db, mail_settings).sent == 0
        delivery.deliver_due(db, mail_settings)
    assert sorted(r for rcpts, _m in smtp.inbox.messages for r in rcpts) == [
        "gestor@lab.test",
        "integrador@lab.test",
    ]
    integrador = smtp.inbox.to("integrador@lab.test")[0]
    assert integrador["Subject"] == "[Credencia] Você tem 2 tarefas atrasadas"
    text = integrador.get_body(("plain",)).get_content()
    assert text.index("Ambientar serviços") < text.index("Desenvolver conector")  # oldest first
    assert f"https://credencia.test/tarefas/{tasks['assigned'][0]}" in text
    assert (
        smtp.inbox.to("gestor@lab.test")[0]["Subject"] == "[Credencia] Você tem 1 tarefa atrasada"
    )

    with time_machine.travel(WED + timedelta(days=1), tick=False):
        assert reminders.send_daily_digests(db, mail_settings).sent == 2  # a new day
    with time_machine.travel(WED + timedelta(days=3), tick=False):
        assert reminders.send_daily_digests(db, mail_settings).sent == 0  # Saturday
    with db.read() as s:
        days = sorted(
            set(s.scalars(select(Reminder.occurrence).where(Reminder.kind == OVERDUE_DIGEST)))
        )
    assert days == ["2027-03-03", "2027-03-04"]


def test_run_once_records_every_job_and_status_reports_the_backlog(
    db, people, mail_settings, smtp
) -> None:
    _overdue_mix(db, people)
    with time_machine.travel(WED, tick=True):
        results = runner.run_once(mail_settings, db=db)
        assert set(results) == {
            "timers",
            "reminders",
            "certificates",
            "outbox",
            "uploads",
            "analytics",
            "access_log",
            "lgpd",
        }
        assert (
            results["reminders"]["analyses"]["sent"] == 2
            and results["reminders"]["digests"]["sent"] == 2
        )
        assert results["outbox"]["sent"] == 4
        with db.read() as s:
            rows = {r.name: r for r in s.scalars(select(SchedulerJob))}
            st = status_mod.collect(s)
    assert {r.last_result for r in rows.values()} == {"ok"} and all(
        r.runs == 1 for r in rows.values()
    )
    assert rows["outbox"].last_summary["sent"] == 4 and rows["outbox"].last_duration_ms is not None
    assert st.healthy and st.overdue_analyses == 1 and st.overdue_tasks == 3 and st.outbox.sent == 4
    assert len(smtp.inbox) == 4


def test_a_failing_job_is_recorded_as_error(db, mail_settings, monkeypatch) -> None:
    from engine.scheduler import jobs

    def boom(db, settings, owner):
        raise RuntimeError("database on fire")

    job = jobs.Job("timers", 30, boom, "x")
    assert jobs.run_job(db, mail_settings, job, owner="me") == {
        "error": "RuntimeError: database on fire"
    }
    with db.read() as s:
        row = s.get(SchedulerJob, "timers")
        st = status_mod.collect(s)
    assert (row.last_result, row.failures, row.last_owner) == ("error", 1, "me")
    assert "database on fire" in row.last_error and not st.healthy


def test_the_runner_starts_the_jobs_and_stops_on_the_event(db, mail_settings) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(mail_settings, stop), kwargs={"db": db})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        names: set[str] = set()
        while time.monotonic() < deadline and len(names) < 8:
            time.sleep(0.2)
            with db.read() as s:
                names = {
                    r.name for r in s.scalars(select(SchedulerJob).where(SchedulerJob.runs > 0))
                }
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert names == {
        "timers",
        "reminders",
        "certificates",
        "outbox",
        "uploads",
        "analytics",
        "access_log",
        "lgpd",
    }


def test_cli_run_once_and_status(db, mail_settings, monkeypatch) -> None:
    monkeypatch.setattr(settings_mod, "_settings", mail_settings)
    cli = CliRunner()
    res = cli.invoke(cli_scheduler.scheduler, ["run-once", "timers", "outbox"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output)) == {"timers", "outbox"}
    res = cli.invoke(cli_scheduler.scheduler, ["status"])
    assert res.exit_code == 0, res.output
    assert "timers" in res.output and "reminders" in res.output and "nunca executada" in res.output
    assert "0 com falha" in res.output


def test_a_job_without_a_recent_start_is_stalled_and_status_says_so(
    db, mail_settings, monkeypatch
) -> None:
    monkeypatch.setattr(settings_mod, "_settings", mail_settings)
    now = datetime(2027, 3, 3, 12, 0, tzinfo=SP)
    # Three periods and two minutes: 30 s → 3.5 min; one hour → 3 h 2 min.
    assert not status_mod.is_stalled(30, now - timedelta(seconds=210), now)
    assert status_mod.is_stalled(30, now - timedelta(seconds=211), now)
    assert not status_mod.is_stalled(3600, now - timedelta(hours=3), now)
    assert status_mod.is_stalled(3600, None, now)

    runner.run_once(mail_settings, db=db)
    with db.read() as s:
        assert status_mod.collect(s).stalled == []
    with db.write() as s:
        for row in s.scalars(select(SchedulerJob)):
            row.last_started_at = datetime.now(SP) - timedelta(minutes=10)
    with db.read() as s:
        st = status_mod.collect(s)
    # Not reminders nor analytics (5 min), certificates, uploads nor lgpd (1 h).
    assert [j.name for j in st.stalled] == ["timers", "outbox", "access_log"]

    res = CliRunner().invoke(cli_scheduler.scheduler, ["status"])
    assert "sem execução recente de timers, outbox, access_log" in res.output, res.output
    res = CliRunner().invoke(cli_scheduler.scheduler, ["status", "--json"])
    stalled = {j["name"]: j["stalled"] for j in json.loads(res.output)["jobs"]}
    assert stalled == {"timers": True, "reminders": False, "certificates": False, "outbox": True,
                       "uploads": False, "analytics": False, "access_log": True,
                       "lgpd": False}  # fmt: skip


def test_the_scheduler_runs_every_job_and_stops_cleanly(db, mail_settings) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(mail_settings, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        names: set[str] = set()
        while time.monotonic() < deadline and len(names) < 8:
            time.sleep(0.3)
            with db.read() as s:
                names = {
                    r.name for r in s.scalars(select(SchedulerJob).where(SchedulerJob.runs > 0))
                }
    finally:
        stop.set()
        thread.join(60)
    assert names == {
        "timers",
        "reminders",
        "certificates",
        "outbox",
        "uploads",
        "analytics",
        "access_log",
        "lgpd",
    }
    assert not thread.is_alive()
    with db.read() as s:
        owners = {r.last_owner for r in s.scalars(select(SchedulerJob))}
    assert len(owners) == 1 and owners.pop().startswith("scheduler:")
