"""Fixtures for the scheduler's tests: a real SMTP server (aiosmtpd on loopback), settings
pointing at it, and an organization with the people reminders go to."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from engine import settings as settings_mod
from engine.accounts.models import User

BASE_URL = "https://credencia.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """What the SMTP server received: one parsed message per (message, recipient)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        parsed = message_from_bytes(
            envelope.original_content or envelope.content, policy=policy.default
        )
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def __len__(self) -> int:
        return len(self.messages)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]

    def outbox_ids(self) -> list[int]:
        return [int(m["X-Credencia-Outbox-Id"]) for _r, m in self.messages]


class SmtpServer:
    def __init__(self, port: int | None = None, *, smtputf8: bool = True):
        self.port = port or free_port()
        self.inbox = Inbox()
        self.smtputf8 = smtputf8
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=self.smtputf8
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings: settings_mod.Settings, smtp: SmtpServer) -> settings_mod.Settings:
    return dataclasses.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        base_url=BASE_URL,
        mail_from="Credencia <noreply@credencia.test>",
    )


@pytest.fixture
def people(make, db):  # type: ignore[no-untyped-def]
    """An organization with one establishment and one person per role (DATASUS reads English)."""
    org = make.org()
    est = make.establishment(org)
    other = make.establishment(org)
    users = {
        "admin": make.user("sesa-pr", "admin", email="admin@sesa.test"),
        "gestor": make.user("sesa-pr", "gestor", est.cnes, email="gestor@lab.test"),
        "integrador": make.user("sesa-pr", "integrador", est.cnes, email="integrador@lab.test"),
        "datasus": make.user("sesa-pr", "datasus", email="analista@datasus.test"),
        "other_gestor": make.user("sesa-pr", "gestor", other.cnes, email="gestor@outro.test"),
    }
    with db.write() as s:
        s.get(User, users["datasus"].actor.user_id).locale = "en"
    return {"org": org, "est": est, "other": other, "users": users}
