"""Signing in and out, the language switch and the organization switch."""

from __future__ import annotations

import secrets

from flask import Blueprint, g, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from engine.accounts import service as accounts
from engine.accounts.actor import Actor
from engine.accounts.models import Membership, User
from engine.audit import service as audit
from engine.people import set_locale
from web.i18n import COOKIE, LOCALES
from web.ui.common import db, login_required, safe_next

bp = Blueprint("auth", __name__)


def _org_ids(s, user_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(set(s.scalars(select(Membership.org_id).where(Membership.user_id == user_id))))


@bp.route("/entrar", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    next_url = safe_next(request.values.get("next"), url_for("home.index"))
    if g.get("user") is not None and request.method == "GET":
        return redirect(next_url)
    error, email = "", ""
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()[:254]
        password = request.form.get("password") or ""
        with db().write() as s:
            user = accounts.authenticate(s, email, password)
            known = user or s.scalar(select(User).where(User.email == email))
            orgs = _org_ids(s, known.id) if known else []
            data = {"email": email, "remote_addr": request.remote_addr}
            action = "auth.login" if user else "auth.login_failed"
            # Who tried: the account when it exists, else the e-mail as typed.
            who = accounts.load_actor(s, user) if user else Actor(user_id=None, label=email or "?")
            for org in orgs or [None]:
                audit.record(
                    s, who, action, org_id=org, entity_type="user",
                    entity_id=known.id if known else "", data=data,
                )  # fmt: skip

            if user is not None:
                pw = (user.password_hash or "")[-16:]
                locale = user.locale
                uid = user.id
        if user is not None:
            # A fresh session at sign-in: nothing set before it (fixation) survives.
            session.clear()
            session.permanent = True
            session.update(uid=uid, pw=pw, nonce=secrets.token_urlsafe(16))
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
    if g.get("user") is not None:
        with db().write() as s:
            for org in g.actor.org_ids or [None]:
                audit.record(
                    s, g.actor, "auth.logout", org_id=org, entity_type="user", entity_id=g.user.id
                )
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
