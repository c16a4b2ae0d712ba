"""A person's own account: password (change, forgotten), second factor (TOTP), and the second
step of signing in when it is on."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext

from engine.accounts import login_guard, passwords, totp
from engine.accounts import queries as account_queries
from engine.accounts import service as accounts
from engine.accounts.models import User
from engine.audit import service as audit
from engine.errors import Invalid, NotFound
from web import security
from web.ui.auth import _pepper as auth_pepper
from web.ui.common import db, safe_next, settings

bp = Blueprint("account", __name__)

# The second step of a sign-in must come this soon after the password, in this many tries.
MFA_SECONDS = 300
MFA_TRIES = 5


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Signed in (with or without an organization: one's own account needs none)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapper


def _errors(exc: Invalid) -> dict[str, str]:
    return {k: _(v) for k, v in exc.errors.items()}


def _page(errors: dict | None = None, totp_setup: dict | None = None, status: int = 200):
    user = g.user
    return render_template("account.html", errors=errors or {}, user=user,
                           has_password=bool(user.password_hash),
                           totp_on=bool(user.totp_secret), totp_setup=totp_setup,
                           totp_required=_totp_required(user)), status  # fmt: skip


def _totp_required(user: User) -> bool:
    return settings().totp_required_for_admins and "admin" in _all_roles(user)


def _all_roles(user: User) -> set[str]:
    return {grant.role for grant in (g.actor.grants if g.get("actor") else ())}


@bp.get("/conta")
@signed_in
def index():
    return _page()


@bp.post("/conta/senha")
@signed_in
def change_password():
    new = request.form.get("password") or ""
    try:
        if new != (request.form.get("password2") or ""):
            raise Invalid({"password2": "As senhas não conferem."})  # noqa: S105 (a message)
        with db().write() as s:
            user = passwords.change_own(s, g.actor, current=request.form.get("current") or "",
                                        new=new)  # fmt: skip
            # Every session ended with the old password; this browser keeps going on a new one.
            sid = login_guard.open_session(s, user, current_app.permanent_session_lifetime)
    except Invalid as exc:
        return _page(_errors(exc), status=422)
    session["sid"] = sid
    flash(_("Senha trocada. As outras sessões foram encerradas e os tokens da API revogados."),
          "success")  # fmt: skip
    return redirect(url_for("account.index"))


# ------------------------------------------------------------------ second factor


@bp.route("/conta/dois-fatores", methods=["GET", "POST"])
@signed_in
def totp_setup():
    """Show a new secret (kept in the session until confirmed), then turn it on with a code."""
    secret = session.get("totp_setup") or totp.new_secret()
    session["totp_setup"] = secret
    setup = {"secret": secret, "uri": totp.provisioning_uri(secret, g.user.email)}
    if request.method == "POST":
        try:
            with db().write() as s:
                user = s.get(User, g.user.id)
                totp.enable(s, g.actor, user, secret, request.form.get("code") or "")
        except Invalid as exc:
            return _page(_errors(exc), totp_setup=setup, status=422)
        session.pop("totp_setup", None)
        flash(_("Verificação em duas etapas ativada."), "success")
        return redirect(url_for("account.index"))
    return _page(totp_setup=setup)


@bp.post("/conta/dois-fatores/desativar")
@signed_in
def totp_disable():
    if _totp_required(g.user):
        flash(_("Nesta instalação administradores precisam da verificação em duas etapas."),
              "warning")  # fmt: skip
        return redirect(url_for("account.index"))
    try:
        with db().write() as s:
            totp.disable(s, g.actor, s.get(User, g.user.id),
                         password=request.form.get("password") or "")  # fmt: skip
    except Invalid as exc:
        return _page(_errors(exc), status=422)
    flash(_("Verificação em duas etapas desativada."), "success")
    return redirect(url_for("account.index"))


@bp.route("/entrar/codigo", methods=["GET", "POST"])
def totp_login():
    """The second step of a password sign-in: the code of the person's authenticator app."""
    pending = session.get("mfa") or {}
    if not pending or time.time() - pending.get("at", 0) > MFA_SECONDS:
        session.pop("mfa", None)
        flash(_("Entre de novo com e-mail e senha."), "warning")
        return redirect(url_for("auth.login"))
    error = ""
    if request.method == "POST":
        pending["tries"] = pending.get("tries", 0) + 1
        with db().read() as s:
            known = s.get(User, pending["uid"])
            email = known.email if known is not None else ""
        # Wrong codes slow the account down like wrong passwords (web/ui/auth.py).
        keys = login_guard.keys_for(email, security.client_address(), auth_pepper())
        with db().write() as s:
            admission = login_guard.admit(s, keys)
        if not admission.admitted:
            session["mfa"] = pending
            error = ngettext("Muitas tentativas; tente novamente em %(num)d segundo.",
                             "Muitas tentativas; tente novamente em %(num)d segundos.",
                             admission.seconds)  # fmt: skip
            return render_template("totp_login.html", error=error), 429
        with db().write() as s:
            user = s.get(User, pending["uid"])
            ok = (
                user is not None
                and user.active
                and totp.verify(s, user, request.form.get("code") or "")
            )
            orgs = account_queries.membership_org_ids(s, user.id) if user else []
            who = accounts.load_actor(s, user) if user else None
            for org in orgs or [None]:
                audit.record(s, who, "auth.login" if ok else "auth.totp_failed", org_id=org,
                             entity_type="user", entity_id=pending["uid"],
                             data={"method": "password+totp", "remote_addr": request.remote_addr})  # fmt: skip
            login_guard.settle(s, keys, ok)
            if ok:
                sid = login_guard.open_session(s, user, current_app.permanent_session_lifetime)
        if ok:
            next_url = safe_next(pending.get("next"), url_for("home.index"))
            session.clear()
            session.permanent = True
            session.update(uid=pending["uid"], sid=sid)
            return redirect(next_url)
        if pending["tries"] >= MFA_TRIES:
            session.pop("mfa", None)
            flash(_("Códigos errados demais; entre de novo com e-mail e senha."), "warning")
            return redirect(url_for("auth.login"))
        session["mfa"] = pending
        error = _("Código incorreto ou já usado.")
    return render_template("totp_login.html", error=error), (401 if error else 200)


# ------------------------------------------------------------------ forgotten password


@bp.route("/senha/esqueci", methods=["GET", "POST"])
def forgot():
    if not settings().local_login:
        return render_template("forgot.html", sent=False, disabled=True), 404
    if request.method == "POST":
        email = (request.form.get("email") or "")[:254]
        with db().write() as s:
            passwords.request_reset(s, email, settings(), remote_addr=request.remote_addr)
        # The same answer whether or not the e-mail has an account.
        return render_template("forgot.html", sent=True, disabled=False)
    return render_template("forgot.html", sent=False, disabled=False)


@bp.route("/senha/redefinir/<token>", methods=["GET", "POST"])
def reset(token: str):
    errors: dict[str, str] = {}
    try:
        with db().read() as s:
            passwords.user_of_reset_token(s, token)
    except NotFound:
        return render_template("reset.html", gone=True, errors={}), 404
    if request.method == "POST":
        new = request.form.get("password") or ""
        try:
            if new != (request.form.get("password2") or ""):
                raise Invalid({"password2": "As senhas não conferem."})  # noqa: S105 (a message)
            with db().write() as s:
                passwords.reset(s, token, new)
        except Invalid as exc:
            errors = _errors(exc)
        except NotFound:
            return render_template("reset.html", gone=True, errors={}), 404
        else:
            session.clear()
            flash(_("Senha redefinida. Entre com a nova senha."), "success")
            return redirect(url_for("auth.login"))
    return render_template("reset.html", gone=False, errors=errors), (422 if errors else 200)
