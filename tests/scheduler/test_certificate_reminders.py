"""Certificate expiry: reminders at the configured days before not_after (the current one
only, after downtime), the expired flag, and the renewal hook — each once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from engine.audit.models import AuditEvent
from engine.certificates.models import Certificate
from engine.credentials import renewal
from engine.credentials import service as credentials
from engine.credentials.models import Credential
from engine.files.models import StoredFile
from engine.notifications import delivery
from engine.reminders import service as reminders
from engine.reminders.models import CERTIFICATE_EXPIRED, CERTIFICATE_EXPIRY, Reminder

SP = ZoneInfo("America/Sao_Paulo")
NOT_AFTER = datetime(2027, 5, 1, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo


def _certificate(db, org_id: int, est_id: int, *, not_after: datetime, current: bool = True) -> int:
    with db.write() as s:
        file = StoredFile(
            id=str(uuid.uuid4()),
            org_id=org_id,
            filename="ecnpj.cer",
            content_type="application/pkix-cert",
            kind="certificate",
            size=3,
            sha256="0" * 64,
            content=b"der",
        )
        s.add(file)
        s.flush()
        cert = Certificate(
            org_id=org_id,
            establishment_id=est_id,
            file_id=file.id,
            subject="CN=Lab",
            issuer="CN=AC",
            serial=uuid.uuid4().hex,
            sha256=uuid.uuid4().hex + uuid.uuid4().hex,
            not_before=not_after - timedelta(days=365),
            not_after=not_after,
            cert_type="A1",
            icp_brasil=True,
            client_auth=True,
            is_current=current,
            details={},
        )
        s.add(cert)
        s.flush()
        return cert.id


def _at(*args: int) -> datetime:
    return datetime(*args, 10, 0, tzinfo=SP)


@pytest.fixture
def hooks(monkeypatch):
    """Records the renewal starts (the renewal process itself is tested elsewhere) and the
    certificates whose expiry was audited."""
    calls: dict[str, list[int]] = {"renewal": [], "expired": []}
    monkeypatch.setattr(
        renewal, "start_renewal", lambda session, cert: calls["renewal"].append(cert.id)
    )
    audit_record = reminders.audit.record

    def record(session, actor, action, **kw):
        if action == "certificate.expired":
            calls["expired"].append(kw["data"]["certificate_id"])
        return audit_record(session, actor, action, **kw)

    monkeypatch.setattr(reminders.audit, "record", record)
    return calls


def test_certificate_reminders_thresholds_catch_up_expiry_and_hooks(
    db, people, mail_settings, smtp, hooks
) -> None:
    org, est = people["org"], people["est"]
    cert_id = _certificate(db, org, est.id, not_after=NOT_AFTER)
    _certificate(
        db, org, people["other"].id, not_after=NOT_AFTER, current=False
    )  # replaced: ignored

    def run(day: datetime) -> int:
        with time_machine.travel(day, tick=True):
            return reminders.remind_certificates(db, mail_settings).sent

    assert run(_at(2027, 3, 1)) == 0  # 61 days left
    assert run(_at(2027, 3, 2)) == 2  # 60 days: gestor and integrador
    assert run(_at(2027, 3, 2)) == 0
    assert run(_at(2027, 3, 20)) == 0  # 42 days: the 60-day reminder was already sent
    assert hooks == {"renewal": [], "expired": []}
    # Down from 60 to 11 days left: one reminder for the current threshold (15), not 30 and 15.
    assert run(_at(2027, 4, 20)) == 2
    assert hooks["renewal"] == [cert_id]
    assert run(_at(2027, 4, 21)) == 0
    assert run(_at(2027, 4, 30)) == 2  # 1 day
    assert run(_at(2027, 5, 2)) == 2  # expired
    assert run(_at(2027, 5, 3)) == 0
    assert hooks == {"renewal": [cert_id], "expired": [cert_id]}

    with db.read() as s:
        keys = sorted(
            s.execute(
                select(Reminder.kind, Reminder.occurrence)
                .where(Reminder.user_id.is_not(None))
                .distinct()
            ).all()
        )
        assert keys == [
            (CERTIFICATE_EXPIRED, "expired"),
            (CERTIFICATE_EXPIRY, "d1"),
            (CERTIFICATE_EXPIRY, "d15"),
            (CERTIFICATE_EXPIRY, "d60"),
        ]
        assert reminders.expired_certificate_establishments(s, org, now=_at(2027, 5, 2)) == {est.id}
        assert reminders.expired_certificate_establishments(s, org, now=_at(2027, 4, 30)) == set()
        audited = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "certificate.expired")
        )
        assert audited == 1

    with time_machine.travel(_at(2027, 5, 3), tick=True):
        assert delivery.deliver_due(db, mail_settings).sent == 8
    gestor = [m["Subject"] for m in smtp.inbox.to("gestor@lab.test")]
    assert gestor == [
        f"[Credencia] Certificado digital vence em 60 dias — CNES {est.cnes}",
        f"[Credencia] Certificado digital vence em 11 dias — CNES {est.cnes}",
        f"[Credencia] Certificado digital vence em 1 dia — CNES {est.cnes}",
        f"[Credencia] Certificado digital vencido — CNES {est.cnes}",
    ]
    body = smtp.inbox.to("integrador@lab.test")[-1].get_body(("plain",)).get_content()
    assert (
        "venceu em 01/05/2027" in body
        and f"https://credencia.test/estabelecimentos/{est.cnes}" in body
    )
    assert smtp.inbox.to("gestor@outro.test") == [] and smtp.inbox.to("analista@datasus.test") == []


def test_the_renewal_hook_is_retried_when_it_fails(db, people, mail_settings, monkeypatch) -> None:
    calls: list[int] = []

    def flaky(session, cert):
        calls.append(cert.id)
        if len(calls) == 1:
            raise RuntimeError("renewal process not deployed yet")

    monkeypatch.setattr(renewal, "start_renewal", flaky)
    _certificate(db, people["org"], people["est"].id, not_after=NOT_AFTER)
    with time_machine.travel(_at(2027, 4, 20), tick=True):
        first = reminders.remind_certificates(db, mail_settings)
        assert (first.sent, first.failed) == (0, 1)  # rolled back with the reminders
        second = reminders.remind_certificates(db, mail_settings)
        assert (second.sent, second.failed) == (2, 0)
        assert reminders.remind_certificates(db, mail_settings).sent == 0
    assert len(calls) == 2


def test_a_withdrawn_establishment_stops_hearing_of_its_certificate(
    db, people, mail_settings, hooks
) -> None:
    """Once every credential of the establishment has ended, its certificate is no longer
    reminded of; while one is open (or before any exists), it is."""
    org, est, admin = people["org"], people["est"], people["users"]["admin"].actor
    _certificate(db, org, est.id, not_after=NOT_AFTER)
    with db.write() as s:
        credential = credentials.register(
            s, admin, org_id=org, establishment_cnes=est.cnes, portfolio_code="RIRA",
            status="producao", requester_id="40111",
        )  # fmt: skip
        credential_id = credential.id

    def run(day: datetime) -> int:
        with time_machine.travel(day, tick=True):
            return reminders.remind_certificates(db, mail_settings).sent

    assert run(_at(2027, 3, 2)) == 2  # open credential: 60 days left, gestor and integrador
    with db.write() as s:
        s.get(Credential, credential_id).status = "encerrada"
    assert run(_at(2027, 4, 20)) == 0  # withdrawn: nothing, no renewal started
    assert hooks["renewal"] == []
