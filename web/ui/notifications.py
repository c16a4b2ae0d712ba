"""Notificações: the signed-in person's in-app notifications, newest first; mark as read."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from engine.notifications import service as notifications
from web.ui.common import actor, db, int_arg, login_required, safe_next

bp = Blueprint("notifications", __name__, url_prefix="/notificacoes")
PAGE = 30
ICONS = {
    "analysis_overdue": "fa-hourglass-half",
    "overdue_digest": "fa-tasks",
    "certificate_expiry": "fa-certificate",
    "certificate_expired": "fa-exclamation-triangle",
}


@bp.get("")
@login_required
def index():
    before = int_arg("antes") or None
    unread_only = request.args.get("ver") == "nao-lidas"
    with db().read() as s:
        rows = notifications.list_for(
            s, actor(), unread_only=unread_only, limit=PAGE + 1, before_id=before
        )
        unread = notifications.unread_count(s, actor())
    org_names = {o.id: o.name for o in g.get("orgs", [])}
    return render_template(
        "notifications.html",
        rows=rows[:PAGE],
        older=rows[PAGE - 1].id if len(rows) > PAGE else None,
        paged=before is not None,
        unread=unread,
        unread_only=unread_only,
        icons=ICONS,
        org_names=org_names if len(org_names) > 1 else {},
        link_of=lambda row: safe_next(row.link, ""),
    )


@bp.post("/<int:notification_id>/lida")
@login_required
def mark_read(notification_id: int):
    """Mark one as read; with ``abrir`` go on to what it is about (the task, the establishment)."""
    with db().write() as s:
        row = notifications.mark_read(s, actor(), notification_id)
        link = row.link
    target = safe_next(link, "") if request.form.get("abrir") else ""
    if not target:
        flash(_("Notificação marcada como lida."), "success")
    return redirect(target or safe_next(request.form.get("next"), url_for(".index")))


@bp.post("/lidas")
@login_required
def mark_all_read():
    with db().write() as s:
        count = notifications.mark_all_read(s, actor())
    if count:
        flash(
            ngettext(
                "%(num)d notificação marcada como lida.",
                "%(num)d notificações marcadas como lidas.",
                count,
            ),
            "success",
        )
    else:
        flash(_("Não havia notificações por ler."), "info")
    return redirect(safe_next(request.form.get("next"), url_for(".index")))
