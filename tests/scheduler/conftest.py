"""Fixtures for the scheduler's tests: a real SMTP server (aiosmtpd on loopback), settings
pointing at it, and an organization with the people reminders go to."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from engine import settings as settings_mod
from engine.accounts.models import User
from tests.support.builders import cast
from tests.support.mail import BASE_URL, SmtpServer


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
def people(make, db):
    """An organization with one establishment and one person per role (DATASUS reads English)."""
    roles = ("admin", "gestor", "integrador", "datasus")
    emails = ("admin@sesa.test", "gestor@lab.test", "integrador@lab.test", "analista@datasus.test")
    people = cast(make, roles=roles, emails=dict(zip(roles, emails, strict=True)), others=({},))
    org, est, other, users = people.org, people.est, people.others[0], dict(people.users)
    users["other_gestor"] = make.user("sesa-pr", "gestor", other.cnes, email="gestor@outro.test")
    with db.write() as s:
        s.get(User, users["datasus"].actor.user_id).locale = "en"
    return {"org": org, "est": est, "other": other, "users": users}
