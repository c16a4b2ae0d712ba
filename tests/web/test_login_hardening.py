"""Sign-in under attack: limits per account and per address kept in the database, no hint
of which e-mails exist (same answer, one password verification either way), and a session
that logout really ends."""

from __future__ import annotations

import dataclasses
import logging
import re
import statistics
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from engine.accounts import login_guard
from engine.accounts import service as accounts
from engine.accounts.models import LoginAttempt, User, WebSession
from engine.audit.models import AuditEvent
from engine.db import utcnow

SLOWED = re.compile(r"Muitas tentativas; tente novamente em (\d+) segundos?\.")
WRONG_PASSWORD = "errada-errada"
WRONG = "E-mail ou senha incorretos."


def _try(p, email: str, password: str = WRONG_PASSWORD, addr: str = "127.0.0.1", **headers):
    return p.post(
        "/entrar",
        {"email": email, "password": password},
        environ_base={"REMOTE_ADDR": addr},
        headers=headers,
    )


def _actions(db, action: str) -> list[AuditEvent]:
    with db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _rows(db, kind: str) -> list[LoginAttempt]:
    with db.read() as s:
        return list(s.scalars(select(LoginAttempt).where(LoginAttempt.kind == kind)))


def _as_if_later(db, seconds: int) -> None:
    """Move every counter's times back, as if ``seconds`` had passed."""
    with db.write() as s:
        for row in s.scalars(select(LoginAttempt)):
            row.last_attempt_at -= timedelta(seconds=seconds)
            row.window_start -= timedelta(seconds=seconds)
            if row.locked_until is not None:
                row.locked_until -= timedelta(seconds=seconds)


@pytest.mark.parametrize("who", ["known", "unknown"])
def test_five_failures_slow_the_account_down_with_the_same_answer_known_or_not(
    world, db, pages, who
):
    user = world.users["gestor"]
    email = user.email if who == "known" else "ninguem@exemplo.gov.br"
    p = pages()
    for _ in range(5):
        res = _try(p, email)
        assert res.status_code == 401 and WRONG in res.get_data(as_text=True)
    slowed = _try(p, email, user.password if who == "known" else "qualquer")
    assert slowed.status_code == 429
    html = slowed.get_data(as_text=True)
    assert WRONG not in html
    # 30 s from the fifth failure, less the time since.
    assert SLOWED.search(html).group(1) == slowed.headers["Retry-After"]
    assert 20 <= int(slowed.headers["Retry-After"]) <= 30
    # Per account: another account from the same address still signs in.
    assert _try(p, world.users["datasus"].email, world.users["datasus"].password).status_code == 302
    events = _actions(db, "auth.login_throttled")
    assert len(events) == 1 and events[0].data["key"] == "account"
    assert events[0].data["free"] == 5 and events[0].data["max_delay_seconds"] == 300
    # An unknown e-mail is kept only as a keyed hash (what was typed may be a password).
    if who == "known":
        assert events[0].data["email"] == email
    else:
        assert "email" not in events[0].data and len(events[0].data["email_hmac"]) == 64
    # A known account's slowdown goes to its organization's log; an unknown one to the system's.
    assert (events[0].org_id == world.org) if who == "known" else events[0].org_id is None
    assert not _actions(db, "auth.login_locked")


def test_a_stranger_cannot_lock_the_owner_out(world, db, pages):
    """Any number of wrong guesses from anywhere only delays the owner, by at most the cap:
    once the wait is over, the right password gets in (and clears the count)."""
    gestor = world.users["gestor"]
    attacker, owner = pages(), pages()
    for i in range(12):  # a guess at every opening, from many addresses
        assert _try(attacker, gestor.email, addr=f"198.51.100.{i}").status_code == 401
        _as_if_later(db, 300)
    assert _try(attacker, gestor.email, addr="198.51.100.99").status_code == 401
    res = _try(owner, gestor.email, gestor.password, addr="192.0.2.10")
    assert res.status_code == 429 and 290 <= int(res.headers["Retry-After"]) <= 300  # the cap
    _as_if_later(db, 300)
    assert _try(owner, gestor.email, gestor.password, addr="192.0.2.10").status_code == 302
    assert _rows(db, "account") == []  # the success cleared the count


def test_twenty_failures_slow_the_address_not_other_addresses(world, db, pages):
    p = pages()
    for i in range(20):
        assert _try(p, f"tentativa{i}@exemplo.gov.br", addr="198.51.100.7").status_code == 401
    gestor = world.users["gestor"]
    res = _try(p, gestor.email, gestor.password, addr="198.51.100.7")
    assert res.status_code == 429 and 1 <= int(res.headers["Retry-After"]) <= 5
    assert SLOWED.search(res.get_data(as_text=True))
    assert _try(p, gestor.email, gestor.password, addr="198.51.100.8").status_code == 302
    assert [e.data["key"] for e in _actions(db, "auth.login_throttled")] == ["address"]
    _as_if_later(db, 5)
    assert _try(p, gestor.email, gestor.password, addr="198.51.100.7").status_code == 302


def test_behind_an_undeclared_proxy_the_address_does_not_count(world, db, pages):
    """Everyone behind a proxy arrives from its address: with no trusted proxy configured
    (and X-Forwarded-For present) that address is nobody's, so it is not throttled — on
    today's code 20 failures of different people locked everyone out."""
    p = pages()
    for i in range(25):
        res = _try(
            p, f"pessoa{i}@exemplo.gov.br", addr="10.0.0.1", **{"X-Forwarded-For": f"203.0.113.{i}"}
        )
        assert res.status_code == 401
    gestor = world.users["gestor"]
    res = _try(
        p, gestor.email, gestor.password, addr="10.0.0.1", **{"X-Forwarded-For": "203.0.113.200"}
    )
    assert res.status_code == 302
    assert _rows(db, "address") == []
    assert len(_rows(db, "account")) == 25  # each account is still counted


def test_behind_trusted_proxies_the_reported_client_address_counts(world, db, settings):
    from tests.support.pages import Pages
    from web import create_app

    app = create_app(dataclasses.replace(settings, trusted_proxies=1), db)
    p = Pages(app)
    for i in range(20):
        res = _try(
            p, f"pessoa{i}@exemplo.gov.br", addr="10.0.0.1", **{"X-Forwarded-For": "203.0.113.5"}
        )
        assert res.status_code == 401
    gestor = world.users["gestor"]
    res = _try(
        p, gestor.email, gestor.password, addr="10.0.0.1", **{"X-Forwarded-For": "203.0.113.5"}
    )
    assert res.status_code == 429  # that client is slowed down...
    res = _try(
        p, gestor.email, gestor.password, addr="10.0.0.1", **{"X-Forwarded-For": "203.0.113.6"}
    )
    assert res.status_code == 302  # ...not the others behind the same proxy


def test_production_refuses_requests_through_an_undeclared_proxy(settings, db, monkeypatch, caplog):
    from engine import secrets as secret_store
    from web import create_app, security

    monkeypatch.setenv("CREDENCIA_SECRET_KEY", secret_store.generate_key())
    monkeypatch.setattr(security, "_last_logged", 0.0)
    production = dataclasses.replace(settings, environment="production")
    client = create_app(production, db).test_client()
    assert client.get("/entrar").status_code == 200  # a direct request is served
    with caplog.at_level(logging.ERROR, logger="web.security"):
        res = client.get("/entrar", headers={"X-Forwarded-For": "203.0.113.9"})
    assert res.status_code == 400
    assert "CREDENCIA_TRUSTED_PROXIES" in res.get_data(as_text=True)
    assert any("CREDENCIA_TRUSTED_PROXIES" in r.getMessage() for r in caplog.records)
    api = client.get("/api/v1/me", headers={"Forwarded": "for=203.0.113.9"})
    assert api.status_code == 400 and "CREDENCIA_TRUSTED_PROXIES" in api.json["message"]
    declared = create_app(dataclasses.replace(production, trusted_proxies=1), db).test_client()
    assert declared.get("/entrar", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    # Outside production the request is served (the address is just not trusted).
    relaxed = create_app(settings, db).test_client()
    assert relaxed.get("/entrar", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200


def test_ipv6_addresses_count_by_their_64_prefix():
    a = login_guard.normalize_address("2001:db8:1:2::1")
    assert a == login_guard.normalize_address("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert login_guard.normalize_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert login_guard.normalize_address("203.0.113.4") == "203.0.113.4"


def test_a_success_clears_the_accounts_count(world, db, pages):
    gestor = world.users["gestor"]
    p = pages()
    for _ in range(4):
        assert _try(p, gestor.email).status_code == 401
    assert _try(p, gestor.email, gestor.password).status_code == 302
    p = pages()
    for _ in range(4):
        assert _try(p, gestor.email).status_code == 401  # not locked: the count started over


def test_the_delay_ends_after_its_time(world, db, pages):
    gestor = world.users["gestor"]
    p = pages()
    for _ in range(6):
        _try(p, gestor.email)
    assert _try(p, gestor.email, gestor.password).status_code == 429
    _as_if_later(db, 30)
    assert _try(p, gestor.email, gestor.password).status_code == 302


def test_delays_double_up_to_the_cap_and_the_count_is_forgotten(db):
    keys = login_guard.keys_for("alvo@exemplo.gov.br", None, b"pepper")
    assert keys.address is None and keys.pairs() == [("account", keys.account)]
    t = utcnow()
    waits = []
    for _ in range(12):
        with db.write() as s:
            assert login_guard.admit(s, keys, now=t).admitted
        with db.read() as s:
            until = s.get(LoginAttempt, ("account", keys.account)).locked_until
        wait = int((until - t).total_seconds()) if until else 0
        waits.append(wait)
        if wait:  # a second early is refused, unchecked and uncharged
            with db.write() as s:
                early = login_guard.admit(s, keys, now=t + timedelta(seconds=wait - 1))
            assert not early.admitted and early.seconds == 1
        t += timedelta(seconds=wait)
    assert waits == [0, 0, 0, 0, 30, 60, 120, 240, 300, 300, 300, 300]
    later = t + login_guard.DEFAULT_POLICY.forget_after
    with db.write() as s:
        assert login_guard.admit(s, keys, now=later).admitted
        assert s.get(LoginAttempt, ("account", keys.account)).attempts == 1


def test_counters_store_no_email_nor_address(world, db, pages):
    gestor = world.users["gestor"]
    p = pages()
    _try(p, gestor.email, addr="192.0.2.44")
    _try(p, gestor.email, gestor.password, addr="192.0.2.44")
    with db.read() as s:
        rows = s.execute(text("SELECT * FROM login_attempt")).all()
        sessions = s.execute(text("SELECT * FROM web_session")).all()
    assert rows and sessions
    dump = repr(rows) + repr(sessions)
    assert gestor.email not in dump and "192.0.2.44" not in dump
    assert "gestor" not in dump.lower()


def test_both_paths_verify_one_password_hash(world, db, pages, monkeypatch):
    """No user enumeration by timing: an unknown e-mail costs one argon2 verification (of a
    dummy hash), exactly as a wrong password does; a locked key costs none, for both."""

    class Counting:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def verify(self, stored, password):
            self.calls += 1
            return self.inner.verify(stored, password)

    counter = Counting(accounts._hasher)
    monkeypatch.setattr(accounts, "_hasher", counter)
    p = pages()
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    calls: dict[str, list[int]] = {"known": [], "unknown": []}
    for _ in range(4):
        for who, email in (("known", world.users["gestor"].email), ("unknown", "x@y.gov.br")):
            before = counter.calls
            start = time.perf_counter()
            assert _try(p, email).status_code == 401
            timings[who].append(time.perf_counter() - start)
            calls[who].append(counter.calls - before)
    assert calls == {"known": [1] * 4, "unknown": [1] * 4}
    known, unknown = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    # Loose on purpose: both are dominated by the same argon2 verification.
    assert 0.4 < known / unknown < 2.5, (known, unknown)
    for email in (world.users["gestor"].email, "x@y.gov.br"):
        _try(p, email)
        before = counter.calls
        assert _try(p, email).status_code == 429
        assert counter.calls == before


def test_a_copied_cookie_stops_working_at_logout(world, db, pages, app):
    p = pages(world.users["gestor"])
    value = p.client.get_cookie("credencia_session").value
    thief = app.test_client()
    thief.set_cookie("credencia_session", value)
    assert thief.get("/").status_code == 200  # the copy works while the session is open
    assert p.post("/sair").status_code == 302
    res = thief.get("/")
    assert res.status_code == 302 and res.headers["Location"].startswith("/entrar")
    with db.read() as s:
        assert s.scalar(select(WebSession)) is None


def test_session_cookie_carries_no_password_material(world, db, pages, app):
    p = pages(world.users["gestor"])
    value = p.client.get_cookie("credencia_session").value
    data = app.session_interface.get_signing_serializer(app).loads(value)
    assert set(data) <= {"uid", "sid", "_permanent", "csrf_token", "_flashes", "org"}
    with db.read() as s:
        row = s.scalar(select(WebSession))
        user = s.get(User, row.user_id)
    assert row.id != data["sid"] and len(row.id) == 64  # only the id's hash is stored
    assert user.password_hash[-16:] not in value


def test_a_new_password_ends_open_sessions(world, db, pages):
    p = pages(world.users["gestor"])
    assert p.get("/").status_code == 200
    with db.write() as s:
        user = s.scalar(select(User).where(User.email == world.users["gestor"].email))
        user.password_hash = accounts.hash_password("uma-senha-nova-123")
    assert p.get("/").status_code == 302


def test_parallel_guesses_get_exactly_the_limit(db):
    """Twelve guesses at once at one account: five are let through, seven are refused."""
    keys = login_guard.keys_for("alvo@exemplo.gov.br", "203.0.113.9", b"pepper")
    barrier = threading.Barrier(12)
    results: list[bool] = []
    lock = threading.Lock()

    def guess() -> None:
        barrier.wait()
        with db.write() as s:
            admitted = login_guard.admit(s, keys).admitted
        with lock:
            results.append(admitted)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [False] * 7 + [True] * 5


def test_a_small_policy_settle_and_cleanup(db):
    backoff = login_guard.Backoff(free=2, first=timedelta(minutes=1), cap=timedelta(minutes=4))
    policy = login_guard.Policy(account=backoff)
    keys = login_guard.keys_for("a@b.gov.br", "192.0.2.1", b"k")
    t0 = utcnow()
    for i in range(2):
        with db.write() as s:
            admission = login_guard.admit(s, keys, policy=policy, now=t0 + timedelta(seconds=i))
        assert admission.admitted
        with db.write() as s:
            login_guard.settle(s, keys, False, policy=policy, now=t0 + timedelta(seconds=i))
    assert admission.throttled == ["account"]
    with db.write() as s:
        refused = login_guard.admit(s, keys, policy=policy, now=t0 + timedelta(seconds=31))
    assert not refused.admitted and refused.seconds == 30
    with db.write() as s:
        assert login_guard.admit(s, keys, policy=policy, now=t0 + timedelta(minutes=2)).admitted
        login_guard.settle(s, keys, True, policy=policy, now=t0 + timedelta(minutes=2))
    with db.read() as s:
        assert s.get(LoginAttempt, ("account", keys.account)) is None  # a success forgets it
        assert s.get(LoginAttempt, ("address", keys.address)).attempts == 2
    with db.write() as s:
        assert login_guard.cleanup(s, policy=policy, now=t0 + timedelta(hours=1)) == 1
    with db.read() as s:
        assert s.scalar(select(LoginAttempt)) is None


def test_nul_characters_are_refused_before_any_lookup(world, db, pages):
    p = pages()
    for data in ({"email": "a\x00b@x.gov.br", "password": "x"},
                 {"email": world.users["gestor"].email, "password": "a\x00b"}):  # fmt: skip
        res = p.post("/entrar", data)
        assert res.status_code == 422 and "caracteres não permitidos" in res.get_data(as_text=True)
    with db.read() as s:
        assert s.scalar(select(LoginAttempt)) is None
