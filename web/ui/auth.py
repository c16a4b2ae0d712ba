"""Signing in and out, the language switch and the organization switch."""

from __future__ import annotations

import hashlib
import time

from flask import (
    Blueprint,
    current_app,
    flash,
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
from engine.accounts import invitations, login_guard, oidc
from engine.accounts import queries as account_queries
from engine.accounts import service as accounts
from engine.accounts.members import set_locale
from engine.accounts.models import User
from engine.audit import service as audit
from engine.errors import Conflict, Invalid, NotFound
from web import security
from web.i18n import COOKIE, LOCALES
from web.ui.common import db, login_required, safe_next, settings

bp = Blueprint("auth", __name__)


def _org_ids(s, user_id: int) -> list[int]:
    return account_queries.membership_org_ids(s, user_id)


def _pepper() -> bytes:
    """The key under which e-mails and addresses are hashed for the attempt counters."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hashlib.sha256(b"credencia-login-guard:" + secret).digest()


def _audit(s, who: Actor, action: str, orgs: list[int], known: User | None, data: dict):
    for org in orgs or [None]:
        audit.record(
            s, who, action, org_id=org, entity_type="user",
            entity_id=known.id if known else "", data=data,
        )  # fmt: skip


def _who(email: str, known: User | None, data: dict) -> tuple[Actor, dict]:
    """Who tried, as the audit keeps it: an existing account by its e-mail; anything else
    typed only as a keyed hash (login_guard.typed_identifier)."""
    typed = login_guard.typed_identifier(email, known is not None, _pepper())
    label = email if known is not None else "anonymous"
    return Actor(user_id=None, label=label or "?"), {**typed, **data}


def _audit_throttled(s, email: str, kinds: list[str], data: dict) -> None:
    """A key starts to be slowed down: an account's goes to its organizations' logs, an
    address's to the system's. Once per streak of failures, not once per attempt."""
    known = account_queries.user_by_email(s, email)
    who, data = _who(email, known, data)
    for kind in kinds:
        backoff = login_guard.DEFAULT_POLICY.of(kind)
        details = {**data, "key": kind, "free": backoff.free,
                   "first_delay_seconds": int(backoff.first.total_seconds()),
                   "max_delay_seconds": int(backoff.cap.total_seconds())}  # fmt: skip
        orgs = _org_ids(s, known.id) if known and kind == login_guard.ACCOUNT else []
        _audit(s, who, "auth.login_throttled", orgs, known if orgs else None, details)


def _too_many(email: str, next_url: str, seconds: int):
    message = ngettext(
        "Muitas tentativas; tente novamente em %(num)d segundo.",
        "Muitas tentativas; tente novamente em %(num)d segundos.",
        seconds,
    )
    response = make_response(_login_page(message, email, next_url, 429))
    response.headers["Retry-After"] = str(seconds)
    return response


@bp.route("/entrar", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"), url_for("home.index"))
    if g.get("user") is not None and request.method == "GET":
        return redirect(next_url)
    error, email = "", ""
    if request.method == "POST" and not settings().local_login:
        with db().write() as s:
            audit.record(s, Actor(user_id=None, label="anonymous"), "denied.auth.local_login",
                         org_id=None, data={"remote_addr": request.remote_addr})  # fmt: skip
        error = _("Nesta instalação a entrada é só pelo provedor de identidade.")
        return _login_page(error, "", next_url, 403)
    if request.method == "POST":
        email = login_guard.normalize_email(request.form.get("email") or "")
        password = request.form.get("password") or ""
        if "\x00" in email or "\x00" in password:
            # PostgreSQL cannot compare text with NUL in it: refused before any lookup.
            message = _("Há caracteres não permitidos no e-mail ou na senha.")
            return _login_page(message, "", next_url, 422)
        data = {"remote_addr": request.remote_addr}
        # The address counts only when it is the client's own (see web.security).
        keys = login_guard.keys_for(email, security.client_address(), _pepper())
        # The attempt is charged (or refused) before the password is looked at, and committed
        # at once, so parallel guesses cannot get past the limit.
        with db().write() as s:
            admission = login_guard.admit(s, keys)
        if not admission.admitted:
            # Unknown and known e-mails alike: no password is checked while slowed down.
            return _too_many(email, next_url, admission.seconds)
        with db().write() as s:
            user = accounts.authenticate(s, email, password)
            second_step = user is not None and bool(user.totp_secret)
            # With a second factor the attempt stays charged until the code is right, so a
            # known password does not buy endless tries at the code.
            login_guard.settle(s, keys, user is not None and not second_step)
            known = user or account_queries.user_by_email(s, email)
            orgs = _org_ids(s, known.id) if known else []
            action = "auth.login" if user and not user.totp_secret else "auth.login_failed"
            if user and user.totp_secret:
                action = "auth.password_ok"
            who, details = _who(email, known, data)
            if user is not None:
                who = accounts.load_actor(s, user)
            _audit(s, who, action, orgs, known, details)
            if user is None and admission.throttled:
                _audit_throttled(s, email, admission.throttled, data)
            if user is not None and not second_step:
                sid = login_guard.open_session(s, user, current_app.permanent_session_lifetime)
            if user is not None:
                login_guard.cleanup(s)
                locale = user.locale
                uid = user.id
        if user is not None and second_step:
            # The password was right; the session opens after the authenticator's code.
            session.clear()
            session["mfa"] = {"uid": uid, "next": next_url, "at": time.time(), "tries": 0}
            return redirect(url_for("account.totp_login"))
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
    return _login_page(error, email, next_url, 401 if error else 200)


def _login_page(error: str, email: str, next_url: str, status: int):
    return render_template("login.html", error=error, email=email, next=next_url,
                           providers=settings().oidc_providers,
                           local_login=settings().local_login), status  # fmt: skip


@bp.post("/sair")
def logout():
    """Ends the server-side session too: a copy of the cookie no longer signs anyone in."""
    sid = session.get("sid")
    signed_with = session.get("oidc") or {}
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
    if signed_with.get("provider"):
        # Signed in through a provider: sign out there too (gov.br requires it).
        try:
            provider = oidc.provider_named(settings().oidc_providers, signed_with["provider"])
        except oidc.SignInRefused:
            provider = None
        back = url_for("auth.login", saiu=1, _external=True)
        target = provider and oidc.logout_url(provider, signed_with.get("id_token", ""), back)
        if target:
            return redirect(target)
    return redirect(url_for("auth.login"))


# ------------------------------------------------------------------ OpenID Connect


def _callback_uri(name: str) -> str:
    return url_for("auth.oidc_callback", name=name, _external=True)


def _refused(name: str, exc: oidc.SignInRefused, status: int = 401):
    with db().write() as s:
        oidc.record_refusal(s, name, exc, remote_addr=request.remote_addr)
    message = _(oidc.MESSAGES[exc.reason], **exc.params)
    return render_template("oidc_refused.html", refusal=message, reason=exc.reason,
                           provider=name), status  # fmt: skip


@bp.get("/entrar/oidc/<name>")
def oidc_start(name: str):
    """Send the browser to the provider, keeping state, nonce and PKCE verifier in the
    (signed, HttpOnly) session cookie until it comes back."""
    next_url = safe_next(request.args.get("next"), url_for("home.index"))
    try:
        provider = oidc.provider_named(settings().oidc_providers, name)
        url, pending = oidc.begin(provider, _callback_uri(name))
    except oidc.SignInRefused as exc:
        return _refused(name[:40], exc, 404 if exc.reason == "unknown_provider" else 502)
    session["oidc_pending"] = {**pending, "next": next_url}
    return redirect(url)


@bp.get("/entrar/oidc/<name>/retorno")
def oidc_callback(name: str):
    # The pending request is used once, whatever the outcome (a replayed answer finds none).
    pending = session.pop("oidc_pending", None)
    args = {k: v for k, v in request.args.items() if isinstance(v, str) and len(v) <= 4096}
    try:
        provider = oidc.provider_named(settings().oidc_providers, name)
        with db().write() as s:
            signed = oidc.finish(s, provider, pending, args, _callback_uri(name),
                                 clock_skew=settings().oidc_clock_skew_seconds)  # fmt: skip
            user = signed.user
            who = accounts.load_actor(s, user)
            _audit(s, who, "auth.login", _org_ids(s, user.id), user,
                   {"method": "oidc", "provider": name, "sub": signed.claims.get("sub", ""),
                    "remote_addr": request.remote_addr})  # fmt: skip
            sid = login_guard.open_session(s, user, current_app.permanent_session_lifetime)
            uid, locale = user.id, user.locale
    except oidc.SignInRefused as exc:
        statuses = {"unavailable": 502, "unknown_provider": 404}
        return _refused(name[:40], exc, statuses.get(exc.reason, 401))
    session.clear()
    session.permanent = True
    session.update(uid=uid, sid=sid, oidc={"provider": name, "id_token": signed.id_token})
    response = make_response(redirect((pending or {}).get("next") or url_for("home.index")))
    if locale in LOCALES and not request.cookies.get(COOKIE):
        response.set_cookie(COOKIE, locale, max_age=365 * 86400, samesite="Lax", httponly=True,
                            secure=request.is_secure)  # fmt: skip
    return response


@bp.post("/idioma")
def language():
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
def switch_org():
    try:
        chosen = int(request.form.get("org", ""))
    except ValueError:
        chosen = 0
    if chosen in g.actor.org_ids:
        session["org"] = chosen
    return redirect(url_for("home.index"))


# ------------------------------------------------------------------ invitations


@bp.route("/convites/<token>", methods=["GET", "POST"])
def invitation(token: str):
    """Accept an invitation: signed in with the invited account, or (no account yet) by
    choosing a password. Only the holder of the e-mailed link gets here."""
    user = g.get("user")
    errors: dict[str, str] = {}
    try:
        with db().read() as s:
            opened = invitations.open_link(s, token)
    except NotFound:
        return render_template("invitation.html", opened=None, errors={}, name=""), 404
    if request.method == "POST":
        try:
            with db().write() as s:
                if opened.has_account:
                    if user is None:
                        return redirect(url_for("auth.login", next=request.path))
                    invitations.accept(s, user.id, token)
                else:
                    invitations.accept_new(s, token, name=request.form.get("name", ""),
                                           password=_new_password())  # fmt: skip
        except Invalid as exc:
            errors = {k: _(v) for k, v in exc.errors.items()}
        except (Conflict, NotFound) as exc:
            flash(_(exc.message), "warning")
            return redirect(url_for("home.index" if user else "auth.login"))
        else:
            session["org"] = opened.invitation.org_id
            if opened.has_account:
                flash(_("Convite aceito: agora você faz parte de %(org)s.",
                        org=opened.organization.name), "success")  # fmt: skip
                return redirect(url_for("home.index"))
            flash(_("Conta criada. Entre com o seu e-mail e a senha que escolheu."), "success")
            return redirect(url_for("auth.login"))
    status = 422 if errors else 200
    return render_template("invitation.html", opened=opened, errors=errors,
                           name=request.form.get("name", opened.invitation.name)), status  # fmt: skip


def _new_password() -> str:
    password = request.form.get("password") or ""
    if password != (request.form.get("password2") or ""):
        raise Invalid({"password2": "As senhas não conferem."})  # noqa: S105 (a message)
    return password
