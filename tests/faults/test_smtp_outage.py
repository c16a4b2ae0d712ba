"""SMTP down while the scheduler runs and mail keeps being written: nothing is lost, and once
the server is back each message is delivered exactly once (counted at the server).

The real scheduler loop (``engine.scheduler.runner.run`` with its APScheduler) runs in a
thread, with the outbox job every second instead of every 15 s and a 1 s back-off so the
test stays short; the SMTP server is aiosmtpd on a loopback port, absent and then started."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from engine.accounts.models import User
from engine.db import utcnow
from engine.notifications import service as notifications
from engine.notifications.models import PENDING, SENT, OutboxMessage
from engine.notifications.render import render
from engine.scheduler import jobs, runner
from tests.support.mail import SmtpServer, free_port


def _enqueue(db, settings, users, n: int) -> list[int]:
    ids = []
    with db.write() as s:
        for i in range(n):
            user = s.get(User, users[i % len(users)])
            rendered = render(
                "certificate_expiry",
                user.locale,
                {
                    "user_name": user.name,
                    "establishment": "Lab",
                    "cnes": "1234567",
                    "not_after": utcnow() + timedelta(days=30),
                    "days_left": 30,
                    "link": "https://credencia.test/estabelecimentos/1234567",
                },
            )
            ids.append(
                notifications.enqueue_email(
                    s, user, rendered, kind="test", mail_from=settings.mail_from
                ).id
            )
    return ids


def _statuses(db) -> Counter:
    with db.read() as s:
        return Counter(
            dict(
                s.execute(
                    select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                ).all()
            )
        )


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_smtp_down_then_up_under_the_running_scheduler_delivers_each_message_once(
    db, make, settings, monkeypatch
) -> None:
    org = make.org()
    est = make.establishment(org)
    users = [
        make.user("sesa-pr", role, *cnes).actor.user_id
        for role, cnes in (("gestor", [est.cnes]), ("datasus", []), ("admin", []))
    ]
    port = free_port()  # nothing listens there yet: the SMTP server is down
    mail = dataclasses.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout_seconds=5,
        outbox_base_delay_seconds=1,
        outbox_max_delay_seconds=2,
        outbox_max_attempts=100,  # an outage must not turn into failed messages here
        outbox_lease_seconds=30,
        mail_from="Credencia <noreply@credencia.test>",
    )
    fast_outbox = dataclasses.replace(jobs.JOBS_BY_NAME["outbox"], seconds=1)
    monkeypatch.setattr(runner, "JOBS", (fast_outbox,))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(mail, stop), kwargs={"db": db}, daemon=True)
    thread.start()
    server = None
    try:
        ids: list[int] = []
        for _ in range(4):  # mail keeps coming while the server is down
            ids += _enqueue(db, mail, users, 15)
            time.sleep(0.6)
        assert _wait(lambda: _min_attempts(db) >= 2, 20), (
            "the scheduler did not retry during the outage"
        )
        assert _statuses(db) == Counter({PENDING: len(ids)})  # nothing sent, nothing given up
        with db.read() as s:
            errors = set(s.scalars(select(OutboxMessage.last_error)))
        assert all("ConnectionRefusedError" in e for e in errors), errors

        server = SmtpServer(port).start()  # the server is back
        ids += _enqueue(db, mail, users, 10)
        assert _wait(lambda: _statuses(db) == Counter({SENT: len(ids)}), 30), _statuses(db)
        time.sleep(1.5)  # one more outbox run: nothing is sent again
        received = Counter(server.inbox.outbox_ids())
        assert sorted(received) == sorted(ids)
        assert set(received.values()) == {1}, [i for i, n in received.items() if n > 1]
    finally:
        stop.set()
        thread.join(30)
        if server is not None:
            server.stop()
    assert not thread.is_alive()


def _min_attempts(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.min(OutboxMessage.attempts))) or 0
