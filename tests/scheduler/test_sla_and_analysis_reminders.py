"""Due dates in business days, stored on the task, and the overdue-analysis reminders they
drive — walked through the real credentialing process with the clock moved by time-machine."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from engine import sla
from engine.access.actor import SYSTEM
from engine.audit.models import AuditEvent
from engine.notifications import delivery
from engine.notifications.models import Notification, OutboxMessage
from engine.reminders import service as reminders
from engine.reminders.models import ANALYSIS_OVERDUE, Reminder
from engine.runtime import instances as runtime_instances
from engine.runtime.models import Task
from tests.support.builders import Flow
from tests.support.mail import BASE_URL
from tests.support.scheduler import deploy_fixture

SP = ZoneInfo("America/Sao_Paulo")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SP)


@pytest.mark.parametrize(
    ("created", "days", "due"),
    [
        # 25 December is a holiday: Thu 24 → Mon 28, Tue 29, Wed 30.
        (local(2026, 12, 24, 10), 3, local(2026, 12, 30, 23, 59, 59)),
        # Consciência Negra (Fri 20 Nov, national since 2024) and the weekend are skipped.
        (local(2026, 11, 19, 10), 3, local(2026, 11, 25, 23, 59, 59)),
        # 23:30 on Thursday in São Paulo is already Friday in UTC: the local day counts.
        (local(2026, 11, 19, 23, 30), 1, local(2026, 11, 23, 23, 59, 59)),
        # New Year's Day and a weekend.
        (local(2026, 12, 31, 9), 1, local(2027, 1, 4, 23, 59, 59)),
        (local(2026, 12, 28, 9), 5, local(2027, 1, 5, 23, 59, 59)),
    ],
)
def test_add_business_days_skips_weekends_and_national_holidays(created, days, due) -> None:
    assert sla.add_business_days(created.astimezone(ZoneInfo("UTC")), days) == due


def test_analysis_occurrence_counts_whole_sla_periods_of_business_days() -> None:
    created, due = local(2026, 12, 24, 10), local(2026, 12, 30, 23, 59, 59)
    tz = "America/Sao_Paulo"
    assert reminders.sla_business_days(created, due, tz) == 3

    def occ(*when: int) -> int:
        return reminders.analysis_occurrence(created, due, local(*when), tz)

    assert occ(2026, 12, 31, 0, 0, 1) == 0  # the first reminder, right after the due day
    assert occ(2027, 1, 5, 23) == 0  # Thu 31, (Fri 1 holiday), Mon 4, Tue 5: period 0
    assert occ(2027, 1, 6, 0, 5) == 1  # three business days after the due date
    assert occ(2027, 1, 8, 12) == 1
    assert occ(2027, 1, 9, 12) == 2  # Wed 6, Thu 7, Fri 8 have passed (sent on Monday)
    assert occ(2027, 2, 26, 12) == 13


def test_the_due_date_is_computed_at_task_creation_and_stored(db, make) -> None:
    """Created on Thursday 2026-11-19 (evening, already Friday in UTC): Friday 20 is
    Consciência Negra, so the 3 business days are Mon 23, Tue 24 and Wed 25."""
    deploy_fixture(db)
    org = make.org()
    est = make.establishment(org)
    with time_machine.travel(local(2026, 11, 19, 22, 30), tick=False), db.write() as s:
        instance = runtime_instances.start_instance(
            s, SYSTEM, org_id=org, process_key="prazo-teste", establishment_cnes=est.cnes
        )
    with db.read() as s:
        task = s.scalar(select(Task).where(Task.instance_id == instance.id))
    assert task.element_id == "analisar"
    assert task.due_at == local(2026, 11, 25, 23, 59, 59)
    assert task.created_at == local(2026, 11, 19, 22, 30)
    # Read back later (another day, another clock), the stored date is the same.
    with time_machine.travel(local(2027, 6, 1, 12), tick=False), db.read() as s:
        assert s.get(Task, task.id).due_at == local(2026, 11, 25, 23, 59, 59)


def _walk_to_analysis(client, people) -> Flow:
    u = people["users"]
    users = {
        "admin": u["admin"],
        "Gestor": u["gestor"],
        "Integrador": u["integrador"],
        "DATASUS": u["datasus"],
    }
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "credenciamento-rnds",
            "establishment": people["est"].cnes,
            "portfolio": "RIRA",
        },
        headers=u["admin"].headers,
    )
    assert res.status_code == 201, res.json
    ops = client.get("/api/v1/portfolios", headers=u["admin"].headers).json["items"]
    flow = Flow(
        client, users, res.json["id"], people["est"], next(p for p in ops if p["code"] == "RIRA")
    )
    for element in (
        "obter_certificado_digital",
        "criar_conta_govbr",
        "ambientar_servicos",
        "solicitar_acesso_homologacao",
    ):
        flow.complete(element)
    return flow


def _deliver(db, settings) -> delivery.DeliveryResult:
    result = delivery.deliver_due(db, settings, owner="test")
    assert result.errors == []
    return result


def test_analysis_due_date_is_stored_and_overdue_reminders_go_once_per_sla_period(
    client, db, people, mail_settings, smtp
) -> None:
    with time_machine.travel(local(2026, 12, 24, 10), tick=True):
        flow = _walk_to_analysis(client, people)
        analysis = flow.task("avaliar_solicitacao_acesso")
    with db.read() as s:
        task = s.get(Task, analysis["id"])
        assert task.lane == "DATASUS"
        assert task.due_at == local(2026, 12, 30, 23, 59, 59)
        assert task.created_at.astimezone(SP).date().isoformat() == "2026-12-24"
    assert analysis["due_at"] == "2026-12-31T02:59:59+00:00"  # what the API shows, in UTC

    # On the due day itself nothing is overdue yet.
    with time_machine.travel(local(2026, 12, 30, 18), tick=False):
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 0

    # The next morning: the establishment's gestor and the organization's DATASUS user.
    with time_machine.travel(local(2026, 12, 31, 8), tick=False):
        first = reminders.remind_overdue_analyses(db, mail_settings)
        assert first.sent == 2
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 0  # run again: nothing
        assert _deliver(db, mail_settings).sent == 2
    gestor = smtp.inbox.to("gestor@lab.test")
    analyst = smtp.inbox.to("analista@datasus.test")
    assert len(smtp.inbox) == 2 and len(gestor) == 1 and len(analyst) == 1
    assert smtp.inbox.to("gestor@outro.test") == [] and smtp.inbox.to("integrador@lab.test") == []
    pt, en = gestor[0], analyst[0]
    cnes = people["est"].cnes
    assert (
        pt["Subject"]
        == f"[Credencia] Análise do DATASUS atrasada: Avaliar solicitação de acesso — CNES {cnes}"
    )
    assert pt["Content-Language"] == "pt-BR" and pt["From"] == "Credencia <noreply@credencia.test>"
    text = pt.get_body(("plain",)).get_content()
    html = pt.get_body(("html",)).get_content()
    link = f"{BASE_URL}/tarefas/{analysis['id']}"
    assert "venceu em 30/12/2026" in text and link in text
    assert f'href="{link}"' in html and "<strong>30/12/2026</strong>" in html
    # The task's name in the reader's language too, from the process's catalog.
    assert en["Subject"].startswith("[Credencia] Overdue DATASUS analysis: Review access request")
    assert 'The task "Review access request"' in en.get_body(("plain",)).get_content()
    assert en["Content-Language"] == "en"
    assert "was due on 2026-12-30" in en.get_body(("plain",)).get_content()
    assert link in en.get_body(("plain",)).get_content()

    # Still period 0 on Tue 5 Jan (Fri 1 Jan is a holiday); period 1 on Wed 6 Jan.
    with time_machine.travel(local(2027, 1, 5, 12), tick=False):
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 0
    with time_machine.travel(local(2027, 1, 6, 9), tick=False):
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 2
        _deliver(db, mail_settings)
    assert len(smtp.inbox) == 4
    assert "2º lembrete" in smtp.inbox.to("gestor@lab.test")[1].get_body(("plain",)).get_content()

    # Reminders wait for a business day: nothing on Saturday 9 Jan, period 2 on Monday 11.
    with time_machine.travel(local(2027, 1, 9, 9), tick=False):
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 0
    with time_machine.travel(local(2027, 1, 11, 9), tick=False):
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 2
        _deliver(db, mail_settings)
    assert len(smtp.inbox) == 6

    # The scheduler was down for weeks: one catch-up reminder for the current period, no burst.
    with time_machine.travel(local(2027, 2, 26, 9), tick=False):
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 2
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 0
        _deliver(db, mail_settings)
    assert len(smtp.inbox) == 8
    with db.read() as s:
        occurrences = sorted(
            s.scalars(
                select(Reminder.occurrence).where(Reminder.kind == ANALYSIS_OVERDUE).distinct()
            ),
            key=int,
        )
        assert occurrences == ["0", "1", "2", "13"]
        assert s.scalar(select(func.count()).select_from(Notification)) == 8
        assert (
            s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status != "sent")
            )
            == 0
        )
        audited = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "reminder.analysis_overdue")
        )
        assert audited == 4

    # Once analysed, the task is no longer reminded.
    with time_machine.travel(local(2027, 3, 1, 9), tick=True):
        flow.complete("avaliar_solicitacao_acesso")
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 0
