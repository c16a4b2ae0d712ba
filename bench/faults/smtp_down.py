"""Fault run: the SMTP server is down for a while under load, then comes back.

    .venv/bin/python bench/faults/smtp_down.py [--down 40] [--messages-per-second 4]

A fresh database is seeded; gunicorn (2 workers) serves it while client threads complete
tasks through the API; one ``credencia scheduler`` process delivers the outbox to an SMTP
server (aiosmtpd) on a loopback port — which is not listening at first. While it is down,
e-mails keep being written to the outbox (``notifications.enqueue_email``, what reminders
and digests call). After ``--down`` seconds the server starts; the run waits until the
outbox is empty. Checked at the SMTP server: every message arrived, each exactly once (by
its ``X-Credencia-Outbox-Id``), none marked failed, and the ones written during the outage
were retried (attempts ≥ 2) rather than lost. The back-off is shortened for the run
(``CREDENCIA_OUTBOX_BASE_DELAY_SECONDS=2``, max 10 s); the outbox job runs every 15 s as in
production. Everything on 127.0.0.1; the database is dropped and the processes killed at the
end.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import timedelta  # noqa: E402
from email import message_from_bytes, policy  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import func, select  # noqa: E402

from bench.faults.clients import Completer, Record  # noqa: E402
from bench.load import harness  # noqa: E402


class Sink:
    """aiosmtpd handler: counts what arrives, by outbox id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: Counter[int] = Counter()
        self.first_at: float | None = None

    async def handle_DATA(self, server, session, envelope):
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)  # fmt: skip
        with self.lock:
            self.ids[int(parsed["X-Credencia-Outbox-Id"])] += 1
            self.first_at = self.first_at or time.monotonic()
        return "250 Message accepted for delivery"


def _enqueue(db: Any, user_ids: list[int], n: int, mail_from: str) -> list[int]:
    from engine.accounts.models import User
    from engine.db import utcnow
    from engine.notifications import service as notifications
    from engine.notifications.render import render

    ids = []
    with db.write() as s:
        for i in range(n):
            user = s.get(User, user_ids[i % len(user_ids)])
            rendered = render(
                "certificate_expiry",
                user.locale,
                {
                    "user_name": user.name,
                    "establishment": "Estabelecimento",
                    "cnes": "1234567",
                    "not_after": utcnow() + timedelta(days=30),
                    "days_left": 30,
                    "link": "http://127.0.0.1/estabelecimentos/1234567",
                },
            )
            ids.append(
                notifications.enqueue_email(
                    s, user, rendered, kind="fault-run", mail_from=mail_from
                ).id  # fmt: skip
            )
    return ids


def run(*, down: float = 40.0, rate: float = 4.0, wait_up: float = 90.0, log: Any = print) -> bool:
    from aiosmtpd.controller import Controller

    from bench.load.seed import seed
    from engine.accounts.models import User
    from engine.db import Database
    from engine.notifications.models import SENT, OutboxMessage

    info = harness.machine()
    log(f"machine: {harness.describe(info)}")
    work = Path(tempfile.mkdtemp(prefix="credencia-smtp-"))
    url = harness.create_database("credencia_fault_smtp")
    port = harness.free_port()
    web = sched = controller = None
    stop = threading.Event()
    db = Database(url)
    mail_from = "Credencia <noreply@credencia.test>"
    try:
        seeded = seed(url, establishments=300, instances=100, log=log)
        accounts = [a.__dict__ for a in seeded.accounts]
        with db.read() as s:
            user_ids = list(s.scalars(select(User.id).order_by(User.id)))
        smtp_env = {
            "CREDENCIA_SMTP_HOST": "127.0.0.1",
            "CREDENCIA_SMTP_PORT": str(port),
            "CREDENCIA_MAIL_FROM": mail_from,
            "CREDENCIA_OUTBOX_BASE_DELAY_SECONDS": "2",
            "CREDENCIA_OUTBOX_MAX_DELAY_SECONDS": "10",
            "CREDENCIA_OUTBOX_MAX_ATTEMPTS": "50",
            "CREDENCIA_SMTP_TIMEOUT_SECONDS": "5",
        }
        web = harness.WebServer(url, work, workers=2, threads=2, extra_env=smtp_env).start()
        sched = harness.scheduler(url, work, **smtp_env)
        record = Record()
        clients = [Completer(web.base, accounts, record, stop, seed=i) for i in range(4)]
        for c in clients:
            c.start()

        log(f"SMTP down (nothing on 127.0.0.1:{port}) for {down:.0f} s; writing mail meanwhile …")
        ids: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < down:
            ids += _enqueue(db, user_ids, max(1, round(rate)), mail_from)
            time.sleep(1.0)
        with db.read() as s:
            during = Counter(dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()))  # fmt: skip
            tried = s.scalar(select(func.count()).where(OutboxMessage.attempts >= 1))
        log(
            f"  {len(ids)} messages written while down; statuses {dict(during)}; {tried} already tried"
        )

        sink = Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        up = time.monotonic()
        log("SMTP up; writing a few more and waiting for the outbox to empty …")
        ids += _enqueue(db, user_ids, 10, mail_from)
        deadline = up + wait_up
        while time.monotonic() < deadline:
            with db.read() as s:
                unsent = s.scalar(select(func.count()).where(OutboxMessage.status != SENT))
            if unsent == 0:
                break
            time.sleep(1.0)
        emptied = time.monotonic() - up
        stop.set()
        for c in clients:
            c.join(40)
        sched.stop()  # waits for a running job to finish
        web.stop()
        with db.read() as s:
            statuses = Counter(dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()))  # fmt: skip
            attempts = Counter(s.scalars(select(OutboxMessage.attempts)))
        received = sink.ids
        missing = sorted(set(ids) - set(received))
        twice = sorted(i for i, n in received.items() if n > 1)
        unknown = sorted(set(received) - set(ids))
        retried = sum(n for a, n in attempts.items() if a >= 2)
        web_statuses = harness.count_statuses(web.access_log)
        log("")
        log(f"messages written: {len(ids)} ({len(ids) - 10} during the {down:.0f} s outage)")
        log(f"outbox after the run: {dict(statuses)}; attempts per message: {dict(sorted(attempts.items()))}")  # fmt: skip
        log(f"received at the SMTP server: {sum(received.values())} ({len(received)} distinct); "
            f"missing {len(missing)}, received twice {len(twice)}, unknown {len(unknown)}")  # fmt: skip
        first = (sink.first_at - up) if sink.first_at else float("nan")
        log(
            f"first delivery {first:.1f} s after SMTP came back; outbox empty after {emptied:.1f} s"
        )
        log(f"completions during the run: {len(record.acked)}; web status codes {dict(sorted(web_statuses.items()))}")  # fmt: skip
        ok = (
            not missing
            and not twice
            and not unknown
            and statuses == Counter({SENT: len(ids)})
            and retried >= 1
            and not [c for c in web_statuses if c >= 500]
        )
        log(f"{'PASS' if ok else 'FAIL'}: SMTP down under load, then each message delivered once")
        return ok
    finally:
        stop.set()
        for p in (web, sched):
            if p is not None:
                p.stop()
        if controller is not None:
            controller.stop()
        db.dispose()
        harness.drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description="SMTP down under load, then up")
    parser.add_argument("--down", type=float, default=40.0, help="seconds the server is down")
    parser.add_argument("--messages-per-second", type=float, default=4.0)
    args = parser.parse_args()
    return 0 if run(down=args.down, rate=args.messages_per_second) else 1


if __name__ == "__main__":
    sys.exit(main())
