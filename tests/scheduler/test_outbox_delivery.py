"""The outbox over a real SMTP server: exactly once with racing schedulers, after a crash
between claim and send, and through an SMTP outage; back-off, failure and retry."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import func, select

from engine import settings as settings_mod
from engine.access.actor import SYSTEM
from engine.accounts.models import User
from engine.notifications import delivery
from engine.notifications import service as notifications
from engine.notifications.models import FAILED, PENDING, SENT, Notification, OutboxMessage
from engine.notifications.render import render
from engine.reminders import service as reminders
from engine.reminders.models import Reminder
from engine.scheduler import status as status_mod
from tests.support import workers
from tests.support.mail import SmtpServer, free_port
from tests.support.scheduler import add_tasks
from web.cli import scheduler as cli_scheduler

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2027, 3, 3, 10, 0, tzinfo=SP)  # a Wednesday
FAST = delivery.DeliveryPolicy(
    max_attempts=3, base_delay=30, max_delay=3600, lease_seconds=60, batch=50
)


def _queue(db, settings, users: list[User], n_each: int = 1) -> list[int]:
    ids = []
    with db.write() as s:
        for user in users:
            for i in range(n_each):
                rendered = render(
                    "certificate_expiry",
                    user.locale,
                    {
                        "user_name": user.name,
                        "establishment": "Lab",
                        "cnes": "1234567",
                        "not_after": NOW + timedelta(days=30),
                        "days_left": 30 + i,
                        "link": "https://credencia.test/estabelecimentos/1234567",
                    },
                )
                ids.append(
                    notifications.enqueue_email(
                        s, user, rendered, kind="test", mail_from=settings.mail_from
                    ).id
                )
    return ids


def _users(db, people, *names: str) -> list[User]:
    with db.read() as s:
        return [s.get(User, people["users"][n].actor.user_id) for n in names]


def _statuses(db) -> Counter:
    with db.read() as s:
        return Counter(
            dict(
                s.execute(
                    select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                ).all()
            )
        )


def test_messages_are_sent_once_with_headers_and_marked_sent(
    db, people, mail_settings, smtp
) -> None:
    ids = _queue(db, mail_settings, _users(db, people, "gestor", "datasus"), n_each=2)
    with time_machine.travel(NOW, tick=True):
        result = delivery.deliver_due(db, mail_settings, policy=FAST)
        assert (result.claimed, result.sent) == (4, 4)
        assert delivery.deliver_due(db, mail_settings, policy=FAST).claimed == 0
    assert sorted(smtp.inbox.outbox_ids()) == sorted(ids)
    msg = smtp.inbox.to("gestor@lab.test")[0]
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Message-ID"].startswith("<outbox.")
    assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
    assert _statuses(db) == Counter({SENT: 4})
    with db.read() as s:
        row = s.get(OutboxMessage, ids[0])
        assert row.attempts == 1 and row.sent_at is not None and row.lease_owner is None


def test_a_worker_killed_between_claim_and_send_is_covered_once_its_lease_expires(
    db, people, mail_settings, smtp
) -> None:
    ids = _queue(db, mail_settings, _users(db, people, "gestor", "integrador", "datasus"))
    with time_machine.travel(NOW, tick=False):
        # The dead worker claimed everything, then died without sending.
        assert sorted(delivery.claim(db, "dead-worker", policy=FAST)) == sorted(ids)
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        assert delivery.deliver_due(db, mail_settings, owner="survivor", policy=FAST).claimed == 0
    assert len(smtp.inbox) == 0
    with time_machine.travel(NOW + timedelta(seconds=61), tick=True):
        result = delivery.deliver_due(db, mail_settings, owner="survivor", policy=FAST)
        assert (result.claimed, result.sent) == (3, 3)
        # The dead worker coming back cannot mark anything: its lease passed to the survivor.
        assert delivery.mark_sent(db, ids[0], "dead-worker") is False
        assert delivery.deliver_due(db, mail_settings, policy=FAST).claimed == 0
    assert sorted(smtp.inbox.outbox_ids()) == sorted(ids)  # each exactly once
    with db.read() as s:
        assert [s.get(OutboxMessage, i).attempts for i in ids] == [2, 2, 2]  # the crash counted


def test_a_lease_too_short_to_send_safely_hands_messages_back_unsent(
    db, people, mail_settings, smtp
) -> None:
    _queue(db, mail_settings, _users(db, people, "gestor"))
    short = dataclasses.replace(FAST, lease_seconds=10, smtp_timeout=20)
    with time_machine.travel(NOW, tick=True):
        result = delivery.deliver_due(db, mail_settings, policy=short)
    assert (result.claimed, result.sent, result.released) == (1, 0, 1)
    assert len(smtp.inbox) == 0
    with db.read() as s:
        row = s.scalar(select(OutboxMessage))
        assert (row.status, row.attempts, row.lease_owner) == (PENDING, 0, None)


def test_smtp_down_messages_wait_with_back_off_then_are_delivered_once(
    db, people, mail_settings
) -> None:
    port = free_port()  # nothing listens here yet
    settings = dataclasses.replace(mail_settings, smtp_port=port)
    ids = _queue(db, settings, _users(db, people, "gestor", "datasus"), n_each=3)
    with time_machine.travel(NOW, tick=False):
        down = delivery.deliver_due(db, settings, policy=FAST)
    assert (down.claimed, down.sent, down.retried, down.failed) == (6, 0, 6, 0)
    assert "ConnectionRefusedError" in down.errors[0]
    with db.read() as s:
        rows = list(s.scalars(select(OutboxMessage)))
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows} == {
        (PENDING, 1, NOW + timedelta(seconds=30))
    }
    assert all("ConnectionRefusedError" in r.last_error for r in rows)

    with time_machine.travel(NOW + timedelta(seconds=20), tick=False):  # still backing off
        assert delivery.deliver_due(db, settings, policy=FAST).claimed == 0
    with time_machine.travel(NOW + timedelta(seconds=31), tick=False):  # second attempt: still down
        assert delivery.deliver_due(db, settings, policy=FAST).retried == 6
    with db.read() as s:
        assert {r.next_attempt_at for r in s.scalars(select(OutboxMessage))} == {
            NOW + timedelta(seconds=91)
        }

    server = SmtpServer(port).start()  # the server is back
    try:
        with time_machine.travel(NOW + timedelta(seconds=92), tick=True):
            up = delivery.deliver_due(db, settings, policy=FAST)
            assert (up.claimed, up.sent) == (6, 6)
            assert delivery.deliver_due(db, settings, policy=FAST).claimed == 0
        assert sorted(server.inbox.outbox_ids()) == sorted(ids)
    finally:
        server.stop()
    assert _statuses(db) == Counter({SENT: 6})


def test_after_max_attempts_a_message_fails_shows_in_status_and_can_be_retried(
    db, people, mail_settings, smtp, monkeypatch
) -> None:
    down = dataclasses.replace(mail_settings, smtp_port=free_port())
    (mid,) = _queue(db, down, _users(db, people, "gestor"))
    when = NOW
    for attempt in range(1, 4):
        with time_machine.travel(when, tick=False):
            result = delivery.deliver_due(db, down, policy=FAST)
        assert result.claimed == 1
        when += FAST.backoff(attempt) + timedelta(seconds=1)
    assert result.failed == 1 and _statuses(db) == Counter({FAILED: 1})
    with time_machine.travel(when + timedelta(days=1), tick=False):
        assert delivery.deliver_due(db, down, policy=FAST).claimed == 0  # failed stays failed

    with db.read() as s:
        st = status_mod.collect(s)
    assert st.outbox.failed == 1 and [m.id for m in st.failed_messages] == [mid] and not st.healthy

    monkeypatch.setattr(settings_mod, "_settings", mail_settings)
    runner = CliRunner()
    listed = runner.invoke(cli_scheduler.outbox, ["list", "--failed"])
    assert listed.exit_code == 0 and f"#{mid}\tfailed\t3 tent." in listed.output
    status = runner.invoke(cli_scheduler.scheduler, ["status"])
    assert (
        status.exit_code == 1
        and f"FALHOU #{mid}" in status.output
        and "1 com falha" in status.output
    )
    retried = runner.invoke(cli_scheduler.outbox, ["retry", str(mid)])
    assert retried.exit_code == 0, retried.output
    assert runner.invoke(cli_scheduler.outbox, ["retry", "999999"]).exit_code == 1
    with time_machine.travel(when + timedelta(days=1), tick=True):
        assert delivery.deliver_due(db, mail_settings, policy=FAST).sent == 1
    assert smtp.inbox.outbox_ids() == [mid]
    assert runner.invoke(cli_scheduler.outbox, ["retry", str(mid)]).exit_code == 1  # already sent
    as_json = runner.invoke(cli_scheduler.scheduler, ["status", "--json"])
    assert as_json.exit_code == 0 and '"outbox_failed": 0' in as_json.output


def test_a_recipient_refused_permanently_fails_at_once(db, people, mail_settings, smtp) -> None:
    async def refuse(server, session, envelope, address, rcpt_options):
        if address == "gestor@lab.test":
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp.inbox.handle_RCPT = refuse
    _queue(db, mail_settings, _users(db, people, "gestor", "datasus"))
    with time_machine.travel(NOW, tick=True):
        result = delivery.deliver_due(db, mail_settings, policy=FAST)
    assert (result.sent, result.failed) == (1, 1)
    assert _statuses(db) == Counter({SENT: 1, FAILED: 1})
    assert len(smtp.inbox.to("analista@datasus.test")) == 1


def _due_analyses(db, make, people, n: int) -> None:
    bare = make.establishment(people["org"])  # no gestor: one recipient (the DATASUS user) each
    add_tasks(
        db,
        org_id=people["org"],
        establishment_id=bare.id,
        count=n,
        created_at=NOW - timedelta(days=10),
        due_at=NOW - timedelta(days=2),
    )


def _assert_exactly_once(db, smtp, n: int) -> None:
    received = smtp.inbox.outbox_ids()
    assert len(received) == n and len(set(received)) == n
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Reminder)) == n
        assert s.scalar(select(func.count()).select_from(Notification)) == n
    assert _statuses(db) == Counter({SENT: n})


def test_two_schedulers_in_threads_over_500_due_reminders_send_each_once(
    db, make, people, mail_settings, smtp
) -> None:
    _due_analyses(db, make, people, 500)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait()
            reminders.remind_overdue_analyses(db, mail_settings)
            while delivery.deliver_due(
                db, mail_settings, policy=dataclasses.replace(FAST, batch=25)
            ).claimed:
                pass
        except BaseException as exc:
            errors.append(exc)

    with time_machine.travel(NOW, tick=True):
        threads = [threading.Thread(target=scheduler) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert errors == []
    _assert_exactly_once(db, smtp, 500)


@pytest.mark.postgres_only
def test_two_scheduler_processes_over_500_due_reminders_send_each_once(
    db, make, people, db_url, smtp
) -> None:
    _due_analyses(db, make, people, 500)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=workers.sweep, args=(db_url, smtp.port, NOW.isoformat(), barrier, results)
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    assert all("error" not in o for o in outcomes), outcomes
    assert sum(o["reminded"] for o in outcomes) == 500
    assert sum(o["sent"] for o in outcomes) == 500
    assert all(o["sent"] > 0 for o in outcomes), outcomes  # both really worked
    _assert_exactly_once(db, smtp, 500)


def test_in_app_notifications_are_per_user_and_can_be_marked_read(
    db, make, people, mail_settings
) -> None:
    add_tasks(
        db,
        org_id=people["org"],
        establishment_id=people["est"].id,
        count=2,
        created_at=NOW - timedelta(days=10),
        due_at=NOW - timedelta(days=2),
    )
    with time_machine.travel(NOW, tick=False):
        assert reminders.remind_overdue_analyses(db, mail_settings).sent == 4
    gestor, datasus = people["users"]["gestor"].actor, people["users"]["datasus"].actor
    with db.read() as s:
        mine = notifications.list_for(s, gestor)
        assert len(mine) == 2 and all(
            n.read_at is None and n.link.startswith("/tarefas/") for n in mine
        )
        assert mine[0].title.startswith("Análise atrasada: Avaliar solicitação de acesso")
        assert notifications.list_for(s, datasus)[0].title.startswith("Overdue analysis:")
        assert notifications.unread_count(s, gestor) == 2
        assert notifications.list_for(s, people["users"]["integrador"].actor) == []
        assert notifications.list_for(s, SYSTEM) == []
    with db.write() as s:
        notifications.mark_read(s, gestor, mine[0].id)
    with pytest.raises(Exception, match="não encontrada"), db.write() as s:
        notifications.mark_read(s, datasus, mine[1].id)  # someone else's
    with db.read() as s:
        assert notifications.unread_count(s, gestor) == 1
        assert len(notifications.list_for(s, gestor, unread_only=True)) == 1
    with db.write() as s:
        assert notifications.mark_all_read(s, gestor) == 1
    with db.read() as s:
        assert (
            notifications.unread_count(s, gestor) == 0
            and notifications.unread_count(s, datasus) == 2
        )


def test_a_message_the_server_cannot_take_fails_alone(db, make, people, mail_settings) -> None:
    joao = make.user("sesa-pr", "gestor", people["est"].cnes, email="joão@lab.test")
    with db.read() as s:
        users = [s.get(User, joao.actor.user_id), *_users(db, people, "datasus")]
    _queue(db, mail_settings, users)
    server = SmtpServer(smtputf8=False).start()  # cannot take a non-ASCII address
    try:
        settings = dataclasses.replace(mail_settings, smtp_port=server.port)
        with time_machine.travel(NOW, tick=True):
            result = delivery.deliver_due(db, settings, policy=FAST)
        assert (result.sent, result.failed, result.retried) == (1, 1, 0)
        assert "SMTPNotSupportedError" in result.errors[0]
        assert len(server.inbox.to("analista@datasus.test")) == 1 and len(server.inbox) == 1
    finally:
        server.stop()


def test_one_outbox_run_drains_a_backlog_batch_after_batch_within_its_budget(
    db, people, mail_settings, smtp
) -> None:
    from engine.scheduler import jobs

    settings = dataclasses.replace(mail_settings, outbox_batch=20)
    ids = _queue(db, settings, _users(db, people, "gestor", "datasus"), n_each=25)  # 50 due
    with time_machine.travel(NOW, tick=True):
        # No time left after the first batch: that run sends one batch only.
        first = jobs.outbox_job(db, settings, budget=0)
        assert (first["claimed"], first["sent"], first["batches"]) == (20, 20, 1)
        # A run with time drains the rest (20 + a short batch of 10) and stops there.
        rest = jobs.outbox_job(db, settings)
        assert (rest["claimed"], rest["sent"], rest["batches"]) == (30, 30, 2)
    assert sorted(smtp.inbox.outbox_ids()) == sorted(ids)
    assert _statuses(db) == Counter({SENT: 50})
