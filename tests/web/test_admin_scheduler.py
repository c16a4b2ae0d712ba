"""Administração › Agendador e e-mails: each job's last run, the backlog, failed messages and
"tentar de novo" (admins only, audited)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.db import utcnow
from engine.notifications.models import FAILED, PENDING, SENT, OutboxMessage
from engine.runtime.models import Task
from engine.scheduler.models import SchedulerJob


def _message(db, org: int, status: str = FAILED, to: str = "gestor@exemplo.gov.br", **kw) -> int:
    with db.write() as s:
        row = OutboxMessage(
            org_id=org, kind="analysis_overdue", to_addr=to, subject=f"Assunto para {to}",
            body_text="corpo", status=status, attempts=kw.pop("attempts", 8),
            next_attempt_at=utcnow(), last_error=kw.pop("last_error", "SMTP 550: caixa inexistente"),
            **kw,
        )  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def _jobs(db, *, result: str = "ok", ago: timedelta = timedelta(seconds=5)) -> None:
    from engine.scheduler.jobs import JOBS

    now = utcnow()
    with db.write() as s:
        for job in JOBS:
            s.add(
                SchedulerJob(
                    name=job.name,
                    last_owner="worker-1@host",
                    last_started_at=now - ago,
                    last_finished_at=now - ago,
                    last_duration_ms=1234 if job.name == "outbox" else 12,
                    last_result=result,
                    last_error="boom: conexão recusada" if result == "error" else "",
                    last_summary={"sent": 3},
                    last_ok_at=now - ago if result == "ok" else None,
                    runs=10,
                    failures=1 if result == "error" else 0,
                )  # fmt: skip
            )


def test_jobs_backlog_and_health(world, db, pages):
    admin = pages(world.users["admin"])
    html = admin.get("/administracao/agendador").get_data(as_text=True)
    assert "Agendador e e-mails" in html and 'aria-current="page"' in html
    # Nothing ever ran: said plainly.
    assert "O agendador parece parado." in html and "nunca" in html
    for label in ("Temporizadores dos processos (BPMN)", "Envio de e-mails",
                  "Vencimento de certificados e renovação"):  # fmt: skip
        assert label in html
    _jobs(db)
    with db.write() as s:
        task = s.scalar(select(Task).where(Task.instance_id == world.instance_id).limit(1))
        task.due_at = utcnow() - timedelta(days=3)
    html = admin.get("/administracao/agendador").get_data(as_text=True)
    assert "Tudo em ordem." in html and "O agendador parece parado." not in html
    assert "worker-1@host" in html and "1,2 s" in html and "sent: 3" in html
    assert "a cada 15 segundos" in html and "a cada 1 hora" in html
    assert "Outras tarefas atrasadas" in html
    assert "<dt>Outras tarefas atrasadas</dt><dd><strong>1</strong>" in html


def test_a_job_error_and_a_stalled_scheduler_are_shown(world, db, pages):
    _jobs(db, result="error")
    html = pages(world.users["admin"]).get("/administracao/agendador").get_data(as_text=True)
    assert "boom: conexão recusada" in html and "Há tarefas do agendador com erro" in html
    with db.write() as s:
        for row in s.scalars(select(SchedulerJob)):
            row.last_started_at = utcnow() - timedelta(hours=5)
    html = pages(world.users["admin"]).get("/administracao/agendador").get_data(as_text=True)
    assert "O agendador parece parado." in html and "credencia scheduler" in html


def test_failed_messages_of_the_org_and_retry(world, db, pages):
    _jobs(db)
    mine = _message(db, world.org)
    waiting = _message(db, world.org, PENDING, to="datasus@exemplo.gov.br", attempts=2)
    theirs = _message(db, world.other_org, to="sigiloso@sp.gov.br")
    sent = _message(db, world.org, SENT, to="ja@exemplo.gov.br")
    admin = pages(world.users["admin"])
    html = admin.get("/administracao/agendador").get_data(as_text=True)
    assert "gestor@exemplo.gov.br" in html and "SMTP 550: caixa inexistente" in html
    assert "datasus@exemplo.gov.br" in html and "Em nova tentativa" in html
    assert "sigiloso@sp.gov.br" not in html and "ja@exemplo.gov.br" not in html
    assert f"/administracao/agendador/mensagens/{mine}/reenviar" in html
    res = admin.post(f"/administracao/agendador/mensagens/{mine}/reenviar")
    assert res.status_code == 302 and res.headers["Location"].endswith(
        "/administracao/agendador#falhas"
    )
    assert "voltou à fila" in admin.get("/administracao/agendador").get_data(as_text=True)
    with db.read() as s:
        row = s.get(OutboxMessage, mine)
        assert (row.status, row.attempts) == (PENDING, 0)
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "outbox.retried"))
    assert event.org_id == world.org and event.entity_id == str(mine)
    assert event.data["previous_status"] == FAILED
    # Another organization's message is not found; a sent one is not sent again.
    assert admin.post(f"/administracao/agendador/mensagens/{theirs}/reenviar").status_code == 404
    res = admin.post(f"/administracao/agendador/mensagens/{sent}/reenviar")
    assert "já tinha sido enviada" in admin.get(res.headers["Location"]).get_data(as_text=True)
    with db.read() as s:
        assert s.get(OutboxMessage, theirs).status == FAILED
        assert s.get(OutboxMessage, sent).status == SENT
    assert waiting


def test_only_admins(world, db, pages):
    mine = _message(db, world.org)
    for role in ("gestor", "datasus", "auditor"):
        p = pages(world.users[role])
        assert p.get("/administracao/agendador").status_code == 403, role
        assert p.post(f"/administracao/agendador/mensagens/{mine}/reenviar").status_code == 403
    with db.read() as s:
        assert s.get(OutboxMessage, mine).status == FAILED
        denied = s.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("denied.%"))
        ).all()
    assert "denied.scheduler.read" in denied and "denied.outbox.retry" in denied
    anonymous = pages()
    assert anonymous.get("/administracao/agendador").status_code == 302


def test_in_english(world, db, pages):
    _jobs(db)
    _message(db, world.org)
    admin = pages(world.users["admin"])
    admin.post("/idioma", {"locale": "en", "next": "/"})
    html = admin.get("/administracao/agendador").get_data(as_text=True)
    assert "Scheduler jobs" in html and "E-mails that failed" in html and "Try again" in html
    assert "every 15 seconds" in html and "every hour" in html
