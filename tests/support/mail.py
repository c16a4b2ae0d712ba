"""A local SMTP server that keeps what it receives, for the mail and scheduler tests."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

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

    async def handle_DATA(self, server, session, envelope):
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
