"""Signing in and out, the language switch and the organization switch."""

from __future__ import annotations

import hashlib

from flask import (
    Blueprint,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext

from engine.access.actor import Actor
from engine.accounts import login_guard
from engine.accounts import queries as account_queries
from engine.accounts import service as accounts
from engine.accounts.members import set_locale
from engine.accounts.models import User
from engine.audit import service as audit
from web.i18n import COOKIE, LOCALES
from web.ui.common import db, login_required, safe_next

bp = Blueprint("auth", __name__)


def _org_ids(s, user_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    return account_queries.membership_org_ids(s, user_id)


def _pepper() -> bytes:
    """The key under which e-mails and addresses are hashed for the attempt counters."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hashlib.sha256(b"credencia-login-guard:" + secret).digest()


def _audit(s, who: Actor, action: str, orgs: list[int], known: User | None, data: dict):  # type: ignore[no-untyped-def]
    for org in orgs or [None]:
        audit.record(
            s, who, action, org_id=org, entity_type="user",
            entity_id=known.id if known else "", data=data,
        )  # fmt: skip


def _who(email: str, known: User | None, data: dict) -> tuple[Actor, dict]:  # type: ignore[type-arg]
    """Who tried, as the audit keeps it: an existing account by its e-mail; anything else
    typed only as a keyed hash (login_guard.typed_identifier)."""
    typed = login_guard.typed_identifier(email, known is not None, _pepper())
    label = email if known is not None else "anonymous"
    return Actor(user_id=None, label=label or "?"), {**typed, **data}


def _audit_locks(s, email: str, kinds: list[str], data: dict) -> None:  # type: ignore[no-untyped-def]
    """A lock of an account goes to its organizations' logs; of an address, to the system's."""
    known = account_queries.user_by_email(s, email)
    who, data = _who(email, known, data)
    policy = login_guard.DEFAULT_POLICY
    for kind in kinds:
        details = {**data, "key": kind, "limit": policy.limit(kind),
                   "minutes": int(policy.lockout.total_seconds() // 60)}  # fmt: skip
        orgs = _org_ids(s, known.id) if known and kind == login_guard.ACCOUNT else []
        _audit(s, who, "auth.login_locked", orgs, known if orgs else None, details)


def _too_many(email: str, next_url: str, minutes: int):  # type: ignore[no-untyped-def]
    message = ngettext(
        "Muitas tentativas; tente de novo em %(num)d minuto.",
        "Muitas tentativas; tente de novo em %(num)d minutos.",
        minutes,
    )
    response = make_response(
        render_template("login.html", error=message, email=email, next=next_url), 429
    )
    response.headers["Retry-After"] = str(minutes * 60)
    return response


@bp.route("/entrar", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    next_url = safe_next(request.values.get("next"), url_for("home.index"))
    if g.get("user") is not None and request.method == "GET":
        return redirect(next_url)
    error, email = "", ""
    if request.method == "POST":
        email = login_guard.normalize_email(request.form.get("email") or "")
        password = request.form.get("password") or ""
        if "\x00" in email or "\x00" in password:
            # PostgreSQL cannot compare text with NUL in it: refused before any lookup.
            message = _("Há caracteres não permitidos no e-mail ou na senha.")
            return render_template("login.html", error=message, email="", next=next_url), 422
        data = {"remote_addr": request.remote_addr}
        keys = login_guard.keys_for(email, request.remote_addr, _pepper())
        # The attempt is charged (or refused) before the password is looked at, and committed
        # at once, so parallel guesses cannot get past the limit.
        with db().write() as s:
            admission = login_guard.admit(s, keys)
            if admission.locked:
                _audit_locks(s, email, admission.locked, data)
        if not admission.admitted:
            # Unknown and known e-mails alike: no password is checked while locked.
            return _too_many(email, next_url, admission.minutes)
        with db().write() as s:
            user = accounts.authenticate(s, email, password)
            locked = login_guard.settle(s, keys, user is not None)
            known = user or account_queries.user_by_email(s, email)
            orgs = _org_ids(s, known.id) if known else []
            action = "auth.login" if user else "auth.login_failed"
            who, details = _who(email, known, data)
            if user is not None:
                who = accounts.load_actor(s, user)
            _audit(s, who, action, orgs, known, details)
            if locked:
                _audit_locks(s, email, locked, data)
            if user is not None:
                sid = login_guard.open_session(s, user, current_app.permanent_session_lifetime)
                login_guard.cleanup(s)
                locale = user.locale
                uid = user.id
        if user is not None:
            # A fresh session at sign-in: nothing set before it (fixation) survives.
            session.clear()
            session.permanent = True
            session.update(uid=uid, sid=sid)
            response = make_response(redirect(next_url))
            if locale in LOCALES and not request.cookies.get(COOKIE):
                response.set_cookie(COOKIE, locale, max_age=365 * 86400, samesite="Lax", httponly=True,
                                    secure=request.is_secure)  # fmt: skip
            return response
        # The same words whether the e-mail is unknown or the password wrong.
        error = _("E-mail ou senha incorretos.")
    status = 401 if error else 200
    return render_template("login.html", error=error, email=email, next=next_url), status


@bp.post("/sair")
def logout():  # type: ignore[no-untyped-def]
    """Ends the server-side session too: a copy of the cookie no longer signs anyone in."""
    sid = session.get("sid")
    if g.get("user") is not None or sid:
        with db().write() as s:
            login_guard.end_session(s, sid)
            if g.get("user") is not None:
                for org in g.actor.org_ids or [None]:
                    audit.record(
                        s, g.actor, "auth.logout", org_id=org, entity_type="user",
                        entity_id=g.user.id,
                    )  # fmt: skip
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/idioma")
def language():  # type: ignore[no-untyped-def]
    locale = request.form.get("locale", "")
    target = safe_next(request.form.get("next"), url_for("home.index"))
    response = make_response(redirect(target))
    if locale in LOCALES:
        response.set_cookie(COOKIE, locale, max_age=365 * 86400, samesite="Lax", httponly=True,
                            secure=request.is_secure)  # fmt: skip
        if g.get("user") is not None:
            with db().write() as s:
                set_locale(s, g.actor, locale)
    return response


@bp.post("/organizacao")
@login_required
def switch_org():  # type: ignore[no-untyped-def]
    try:
        chosen = int(request.form.get("org", ""))
    except ValueError:
        chosen = 0
    if chosen in g.actor.org_ids:
        session["org"] = chosen
    return redirect(url_for("home.index"))
