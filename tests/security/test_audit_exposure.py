"""What an outsider can put into the permanent audit log, and what the log and the API give
away (issue 12 items 4 and 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from engine.audit import failures
from engine.audit import verify as verification
from engine.audit.models import AuditEvent, AuthFailureCount
from tests.support.security import PageClient


def _events(db, action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    with db.read() as s:
        return list(s.scalars(stmt))


def _counted(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.coalesce(func.sum(AuthFailureCount.failures), 0)))


# ------------------------------------------------------------------ bad API tokens


def test_a_hundred_bad_token_calls_add_a_bounded_number_of_events(client, db, make):
    make.org()
    before = len(_events(db))
    for i in range(100):
        headers = {"Authorization": f"Bearer cred_adivinhado{i}"} if i % 2 else {}
        res = client.get(
            "/api/v1/tasks", headers=headers, environ_base={"REMOTE_ADDR": f"203.0.113.{i % 7}"}
        )
        assert res.status_code == 401
    summaries = _events(db, failures.ACTION)
    # At most one event a minute (the calls may straddle a minute), and nothing else.
    assert len(_events(db)) - before == len(summaries) <= 1
    assert _counted(db) + sum(e.data["failures"] for e in summaries) == 100


def test_closed_minutes_are_summed_up_in_one_event(db):
    t0 = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    addresses = [failures.address_key("segredo", f"198.51.100.{i}") for i in range(3)]

    def note(at: datetime, address: str, reason: str = "token inválido ou revogado"):
        with db.write() as s:
            return failures.note(s, address_hash=address, reason=reason, now=at)

    for i in range(49):
        assert note(t0 + timedelta(seconds=i), addresses[i % 3]) is None
    assert note(t0 + timedelta(seconds=54), addresses[0], "sem token") is None
    assert _counted(db) == 50
    first = note(t0 + timedelta(seconds=56), addresses[1])  # 10:01:01, a new minute
    assert first is not None and first.action == failures.ACTION and first.org_id is None
    assert first.data["failures"] == 50 and first.data["addresses"] == 3
    assert first.data["reasons"] == {"sem token": 1, "token inválido ou revogado": 49}
    assert first.data["from"].startswith("2026-03-01T10:00")
    assert first.data["busiest"][0] == {"address": addresses[0], "failures": 18}
    assert _counted(db) == 1  # the open minute stays counted
    assert note(t0 + timedelta(seconds=80), addresses[2]) is None
    later = note(t0 + timedelta(minutes=5), addresses[2])
    assert later is not None and later.data["failures"] == 2 and later.data["addresses"] == 2
    assert len(_events(db, failures.ACTION)) == 2
    with db.read() as s:
        assert verification.verify(s).ok
    # Neither the counters nor the events name an address in the clear.
    assert "198.51.100" not in str([e.data for e in _events(db)])


# ------------------------------------------------------------------ organization slugs


def test_an_unknown_organization_and_a_foreign_one_answer_alike(client, make):
    make.org("sesa-pr", "Secretaria da Saúde do Paraná")
    make.org("sesa-sp", "Secretaria da Saúde de São Paulo")
    admin = make.user("sesa-pr", "admin")
    answers = {}
    for slug in ("sesa-sp", "nao-existe"):
        for path in ("/api/v1/establishments", "/api/v1/instances"):
            res = client.get(f"{path}?org={slug}", headers=admin.headers)
            answers[(slug, path)] = (res.status_code, res.get_data(as_text=True))
    for path in ("/api/v1/establishments", "/api/v1/instances"):
        assert answers[("sesa-sp", path)] == answers[("nao-existe", path)]
        assert answers[("sesa-sp", path)][0] == 403
        assert "nao-existe" not in answers[("nao-existe", path)][1]


# ------------------------------------------------------------------ sign-in


def test_a_failed_sign_in_keeps_no_unknown_identifier_as_typed(app, db, make):
    """A password pasted into the e-mail field must not stay in the undeletable chain."""
    make.org()
    gestor = make.user("sesa-pr", "gestor")
    visitor = PageClient(app)

    def _login(email: str):
        return visitor.post("/entrar", {"email": email, "password": "errada"},
                            environ_base={"REMOTE_ADDR": "192.0.2.9"})  # fmt: skip

    pasted = "Minha-Senha-Secreta-2026"
    for _ in range(5):  # the fifth slows the typed "account" down: that event too
        assert _login(pasted).status_code == 401
    assert _login(gestor.email).status_code == 401
    failed = _events(db, "auth.login_failed")
    unknown, known = failed[:-1], failed[-1]
    assert len(unknown) == 5 and {e.actor for e in unknown} == {"anonymous"}
    hashes = {e.data["email_hmac"] for e in unknown}
    assert len(hashes) == 1 and len(hashes.pop()) == 64  # the same text, the same hash
    assert all("email" not in e.data for e in unknown)
    locks = _events(db, "auth.login_throttled")
    assert locks and all("email" not in e.data and e.actor == "anonymous" for e in locks)
    # A known account's failure still names it.
    assert known.data["email"] == gestor.email and known.actor == gestor.email
    # Nowhere in the log, in any column, in any case.
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_event")).all()
    assert pasted.lower() not in str(rows).lower()


# ------------------------------------------------------------------ the audit page


def test_the_audit_page_verifies_incrementally_with_a_button(csrf_app, db, make, monkeypatch):
    from engine.access.actor import SYSTEM
    from engine.audit import log as auditlog
    from engine.audit import service as audit

    org = make.org()
    auditor, gestor = make.user("sesa-pr", "auditor"), make.user("sesa-pr", "gestor")

    def append(n: int) -> list[int]:
        with db.write() as s:
            rows = [audit.record(s, SYSTEM, "test.event", org_id=org, data={"i": i})
                    for i in range(n)]  # fmt: skip
        return [row.id for row in rows]

    first = append(8)
    page = PageClient(csrf_app, auditor)  # signing in appends to the chain too
    html = page.get("/auditoria").get_data(as_text=True)
    assert "Cadeia de hashes íntegra" in html and 'action="/auditoria/verificar"' in html
    # An edit before the checkpoint: a look at the page does not walk the chain again.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'x' WHERE id = :id"), {"id": first[2]})
    assert "Cadeia de hashes íntegra" in page.get("/auditoria").get_data(as_text=True)
    # Many new events: the page says so and leaves them to the button.
    monkeypatch.setattr(auditlog, "AUTO_VERIFY", 5)
    new = append(12)
    html = page.get("/auditoria").get_data(as_text=True)
    assert "ainda não verificado" in html and "QUEBRADA" not in html
    # The button needs the CSRF token and a reading role.
    assert page.client.post("/auditoria/verificar").status_code == 400
    assert PageClient(csrf_app, gestor).post("/auditoria/verificar").status_code == 403
    assert page.post("/auditoria/verificar").status_code == 302
    html = page.get("/auditoria").get_data(as_text=True)
    assert "Cadeia de hashes íntegra" in html and "ainda não verificado" not in html
    assert auditor.email in html  # who verified, and when
    # An edit after the checkpoint is found by the next verification (the one before it is
    # left to a full run: `credencia audit verify --full`).
    later = append(2)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'x' WHERE id = :id"), {"id": later[0]})
    page.post("/auditoria/verificar")
    html = page.get("/auditoria").get_data(as_text=True)
    assert "QUEBRADA" in html and f"evento {later[0]} (seq" in html
    assert f"evento {first[2]} (seq" not in html
    assert len(new) == 12
