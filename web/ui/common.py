"""What every page needs: the signed-in user and actor, the database, menu data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (
    Flask,
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

from engine import identifiers
from engine.access.actor import Actor
from engine.accounts import login_guard
from engine.accounts import queries as account_queries
from engine.accounts import service as accounts
from engine.accounts.models import Organization, User
from engine.audit import log as auditlog
from engine.dashboard import queries as dashboard
from engine.db import Database
from engine.errors import NotFound
from engine.notifications import service as notifications
from engine.runtime import inbox as inbox_mod
from engine.settings import Settings

ROLE_LABELS = {
    "admin": "Administrador",
    "gestor": "Gestor",
    "integrador": "Integrador",
    "datasus": "DATASUS",
    "auditor": "Auditor",
}


def db() -> Database:
    return current_app.extensions["credencia.db"]


def settings() -> Settings:
    return current_app.extensions["credencia.settings"]


def load_user() -> None:
    """Put the signed-in user, their actor and current organization on ``g`` (or None)."""
    g.user, g.actor, g.org = None, None, None
    uid = session.get("uid")
    if not uid:
        return
    with db().read() as s:
        user = s.get(User, uid)
        # The session must still be open server-side: signing out (or a new password) ends it,
        # so a copied cookie stops working.
        if (
            user is None
            or not user.active
            or not login_guard.session_valid(s, session.get("sid"), user)
        ):
            session.clear()
            return
        actor = accounts.load_actor(s, user)
        org_ids = actor.org_ids
        org = None
        if org_ids:
            chosen = session.get("org")
            org = s.get(Organization, chosen if chosen in org_ids else org_ids[0])
        g.orgs = account_queries.organizations(s, actor)
    g.user, g.actor, g.org = user, actor, org


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("auth.login", next=target))
        if (
            settings().totp_required_for_admins
            and not g.user.totp_secret
            # Signed in through a provider: the provider authenticated (TOTP is for passwords).
            and not session.get("oidc")
            and any(grant.role == "admin" for grant in g.actor.grants)
        ):
            flash(_("Administradores precisam ativar a verificação em duas etapas."), "warning")
            return redirect(url_for("account.totp_setup"))
        if g.get("org") is None:
            with db().write():  # audited like every other denial
                raise actor().deny(
                    "Você não pertence a nenhuma organização.", action="org.access", org_id=None
                )
        return view(*args, **kwargs)

    return wrapper


def actor() -> Actor:
    return g.actor


def org_id() -> int:
    return g.org.id


def same_org(entity_org_id: int | None) -> None:
    """Another organization's ids are simply not found here."""
    if entity_org_id is None or entity_org_id != org_id():
        raise NotFound(_("Não encontrado."))


def found_here(s: Any, model: type, key: int | str, missing: str) -> Any:
    """The row of ``model`` under ``key`` if it is the signed-in organization's; NotFound with
    ``missing`` when there is none, and as ``same_org`` for another organization's. Text keys
    are UUIDs: a longer one is not looked up."""
    row = s.get(model, key) if not isinstance(key, str) or len(key) <= 36 else None
    if row is None:
        raise NotFound(missing)
    same_org(row.org_id)
    return row


def has_role(role: str, establishment_id: int | None = None) -> bool:
    a = g.get("actor")
    return bool(a and g.get("org") and a.has_role(g.org.id, role, establishment_id))


def is_reviewer() -> bool:
    """Who judges what others upload (and is warned about risky files): DATASUS, admins,
    auditors."""
    return bool(roles() & {"datasus", "admin", "auditor"})


def roles() -> set[str]:
    a = g.get("actor")
    return a.roles_in(g.org.id) if a and g.get("org") else set()


def safe_next(target: str | None, default: str) -> str:
    """Only same-site paths are followed after login or an action."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def int_arg(name: str, default: int = 0, maximum: int = 10**9) -> int:
    try:
        value = int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default
    return max(0, min(value, maximum))


def text_arg(name: str, size: int) -> str:
    """A query argument stripped and cut to ``size`` characters ("" when absent)."""
    return request.args.get(name, "").strip()[:size]


def date_arg(name: str) -> date | None:
    """A query argument read as a date, ISO (2026-12-04) or Brazilian (04/12/2026); None when
    absent or not a date."""
    raw = request.args.get(name, "").strip()
    for parse in (date.fromisoformat, lambda v: date(int(v[6:10]), int(v[3:5]), int(v[0:2]))):
        try:
            return parse(raw)
        except (ValueError, IndexError):
            continue
    return None


def render_list(template: str, filters: Any, total: int, size: int, **values: Any) -> str:
    """A filtered list page, the page asked for (``pagina``) with ``total``, ``page`` and
    ``pages`` (at least one) for its pager."""
    page = page_arg()
    pages = max(1, (total + size - 1) // size)
    return render_template(template, filters=filters, total=total, page=page, pages=pages, **values)


def page_arg() -> int:
    """The list page asked for, from 1."""
    return int_arg("pagina", 1) or 1


def url_with(**changes: Any) -> str:
    """The current URL with some query arguments changed (filters, pages)."""
    args = {k: v for k, v in request.args.items()}
    for key, value in changes.items():
        if value in (None, ""):
            args.pop(key, None)
        else:
            args[key] = value
    query = urlencode(args)
    return request.path + ("?" + query if query else "")


def _menu() -> dict[str, Any]:
    if g.get("user") is None or g.get("org") is None:
        return {}
    cached = g.get("_menu")
    if cached is not None:
        return cached
    with db().read() as s:
        counts = inbox_mod.counts(s, g.actor, g.org.id)
        unread = notifications.unread_count(s, g.actor)
    menu = {
        "counts": counts,
        "unread": unread,
        "can_dashboard": dashboard.can_view(g.actor, g.org.id),
        "can_audit": auditlog.can_read(g.actor, g.org.id),
        "is_admin": has_role("admin"),
    }
    g._menu = menu
    return menu


def _formatted(fmt: Callable[[str], str]) -> Callable[[str | None], str]:
    """A template filter showing an identifier formatted, or as it is when it does not parse."""

    def show(value: str | None) -> str:
        if not value:
            return ""
        try:
            return fmt(value)
        except ValueError:
            return value

    return show


def register(app: Flask) -> None:
    from web.ui.labels import action_label, entity_label, flag_label, status_label

    app.before_request(load_user)
    app.jinja_env.filters["cnpj"] = _formatted(identifiers.format_cnpj)
    app.jinja_env.filters["cpf"] = _formatted(identifiers.format_cpf)
    app.jinja_env.globals.update(
        action_label=action_label, status_label=status_label, flag_label=flag_label,
        entity_label=entity_label, url_with=url_with, is_reviewer=is_reviewer,
    )  # fmt: skip

    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {
            "menu": _menu(),
            "current_user": g.get("user"),
            "current_org": g.get("org"),
            "user_orgs": g.get("orgs", []),
            "user_roles": sorted(roles()),
            "ROLE_LABELS": ROLE_LABELS,
            "url_with": url_with,
        }


def deny(message: str, *, action: str, **details: Any) -> None:
    """Refuse with 403 and record the denial in the audit log (as the engine does)."""
    with db().write():
        raise g.actor.deny(message, action=action, org_id=org_id(), **details)


def start_answers(form) -> dict[str, bool]:
    """What a start form answered for the process's start data: "Possui conta gov.br?"
    (sim/não); nothing when the form does not ask."""
    answer = form.get("possui_conta_govbr")
    return {} if answer is None else {"possui_conta_govbr": answer == "sim"}
