"""Process versions side by side, and migrating running instances between them (admins)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from engine.definitions import queries as definition_queries
from engine.definitions.models import ProcessDefinition
from engine.identifiers import is_digits
from engine.runtime import migration
from engine.runtime import queries as instance_queries
from web.ui.common import actor, db, login_required, org_id

bp = Blueprint("versions", __name__, url_prefix="/administracao/processos")
PLAN_LIMIT = 50  # plans load each workflow; show the first ones, migrate in bulk the rest


def _versions(session, key: str) -> list[ProcessDefinition]:
    rows = definition_queries.versions(session, key)
    if not rows:
        abort(404)
    return rows


def _version_arg(name: str, default: int) -> int:
    raw = request.values.get(name, "")
    return int(raw) if is_digits(raw) and len(raw) < 10 else default


@bp.get("/<key>/versoes")
@login_required
def compare(key: str):
    with db().read() as s:  # a denial raised in a database scope is audited
        actor().require_role(org_id(), "admin", "process.compare")
        versions = _versions(s, key)
        by_number = {d.version: d for d in versions}
        newest = versions[-1].version
        left = by_number.get(
            _version_arg("de", versions[-2].version if len(versions) > 1 else newest)
        )
        right = by_number.get(_version_arg("para", newest))
        if left is None or right is None:
            abort(404)
        counts = instance_queries.instance_counts(
            s, actor(), org_id(), process_key=key, running_only=True
        )
        ids = instance_queries.running_instance_ids(s, actor(), org_id(), left.id, limit=PLAN_LIMIT)
        plans = (
            [migration.plan(s, actor(), i, right.version) for i in ids]
            if left.id != right.id
            else []
        )
    return render_template(
        "admin/versions.html",
        key=key,
        versions=versions,
        left=left,
        right=right,
        counts=counts,
        plans=plans,
        more=max(counts.get(left.id, 0) - len(ids), 0),
    )


@bp.post("/<key>/migrar")
@login_required
def migrate(key: str):
    with db().read() as s:
        actor().require_role(org_id(), "admin", "instance.migrate")
        versions = _versions(s, key)
    numbers = {d.version for d in versions}
    to_version = _version_arg("para", 0)
    from_version = _version_arg("de", 0)
    if to_version not in numbers or from_version not in numbers:
        abort(404)
    chosen = [int(i) for i in request.form.getlist("instancia") if is_digits(i) and len(i) < 10]
    if request.form.get("todas") != "1" and not chosen:
        flash(_("Escolha as instâncias a migrar, ou migre todas."), "warning")
        return redirect(url_for("versions.compare", key=key, de=from_version, para=to_version))
    results = migration.migrate_many(
        db(), actor(), key, to_version, from_version=from_version,
        instance_ids=None if request.form.get("todas") == "1" else chosen, org_id=org_id(),
    )  # fmt: skip
    done = sum(1 for _i, ok, _r in results if ok)
    flash(_("%(done)s instância(s) migrada(s); %(refused)s recusada(s).", done=done, refused=len(results) - done),
          "success" if done == len(results) else "warning")  # fmt: skip
    for instance_id, ok, reason in results:
        if not ok:
            flash(_("Instância %(id)s: %(reason)s", id=instance_id, reason=reason), "danger")
    return redirect(url_for("versions.compare", key=key, de=from_version, para=to_version))
