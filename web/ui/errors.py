"""The pages' error answers come from ``web.errors`` (one mapping for pages and API); these
names stay importable from here."""

from __future__ import annotations

from web.errors import (
    DB_UNAVAILABLE_MESSAGE,
    RETRY_AFTER_SECONDS,
    database_unavailable,
    database_unavailable_response,
    register,
    render_error,
)

__all__ = [
    "DB_UNAVAILABLE_MESSAGE",
    "RETRY_AFTER_SECONDS",
    "database_unavailable",
    "database_unavailable_response",
    "register",
    "render_error",
]
