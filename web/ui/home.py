"""Início: the inbox (my tasks and the unclaimed tasks of my lanes), and the health check."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request

from engine.definitions import queries as definition_queries
from engine.drafts import service as drafts
from engine.establishments import service as establishments
from engine.runtime import inbox as inbox_mod
from web.ui.common import actor, db, login_required, org_id

bp = Blueprint("home", __name__)


@bp.get("/")
@login_required
def index():
    filters = inbox_mod.InboxFilters(
        establishment=request.args.get("estabelecimento", "").strip(),
        process=request.args.get("processo", "").strip(),
        lane=request.args.get("raia", "").strip(),
        overdue=request.args.get("atrasadas") == "1",
        scope=request.args.get("ver", "")
        if request.args.get("ver") in ("mine", "available")
        else "",
    )
    with db().read() as s:
        rows = inbox_mod.inbox(s, actor(), org_id(), filters)
        lanes = inbox_mod.lanes(s, actor(), org_id())
        processes = definition_queries.process_titles(s)
        ests = establishments.list_establishments(s, actor(), org_id(), limit=1000)
        with_draft = drafts.has_draft(s, actor(), [r.task.id for r in rows])
    return render_template(
        "inbox.html",
        rows=rows,
        filters=filters,
        lanes=lanes,
        processes=processes,
        establishments=ests,
        with_draft=with_draft,
        user_id=g.user.id,
    )
