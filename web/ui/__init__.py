"""The pages: one blueprint per area, the helpers they share, and error pages."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from web.ui import (
        account,
        admin,
        analytics,
        audit,
        auth,
        children,
        credential_import,
        credentials,
        dashboard,
        errors,
        establishments,
        home,
        instances,
        lgpd,
        notifications,
        tasks,
        versions,
    )

    for module in (
        auth, account, home, tasks, dashboard, establishments, instances, audit, admin, notifications,
        versions, credential_import, credentials, children, analytics, lgpd,
    ):  # fmt: skip
        app.register_blueprint(module.bp)
    errors.register(app)
    from web.ui import common

    common.register(app)
