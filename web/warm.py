"""What a worker would otherwise do on its first requests, done once in gunicorn's master before
it forks (``credencia serve``): every forked worker starts with it done, and shares its memory.

Without it each new worker — after a start, a reload, a worker replaced after a crash or after
``max_requests`` — made its first users wait for work that is the same in every process:
Jinja compiling each page's template on its first render (40–100 ms for a page that extends
the base and imports the macros), the ``holidays`` package loading its countries on the first
due date (~90 ms), Flask-Babel reading each language's catalog and Babel its locale data on the
first page in that language. Measured on a fresh worker (docs/PERFORMANCE.md, "First requests
of a new worker").

Nothing here touches the database, the request log or the metrics: it compiles, loads and
caches what the process keeps anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import force_locale, format_datetime, get_translations

from engine import sla
from web import i18n

# The files under the templates folders that are Jinja templates (the rest would be assets).
TEMPLATE_SUFFIXES = (".html", ".txt", ".xml")


def warm(app: Flask) -> dict[str, int]:
    """Do it; what was done, counted (for the log and the tests)."""
    return {
        "templates": _templates(app),
        "holiday_years": _holidays(app),
        "locales": _locales(app),
    }


def _templates(app: Flask) -> int:
    """Compile every template into the environment's cache, where a render looks first (a
    template that does not compile fails here, at start, instead of on its page)."""
    env = app.jinja_env
    names = [n for n in env.list_templates() if n.endswith(TEMPLATE_SUFFIXES)]
    for name in names:
        env.get_template(name)
    return len(names)


def _holidays(app: Flask) -> int:
    """The national holidays of the years a due date counted now falls in."""
    # (the settings' time zone, which the app always sets)
    year = datetime.now(ZoneInfo(app.config["BABEL_DEFAULT_TIMEZONE"])).year
    years = (year, year + 1)  # (a due date counted in December lands in January)
    for each in years:
        sla.national_holidays(each)
    return len(years)


def _locales(app: Flask) -> int:
    """Each language's catalog (Flask-Babel keeps it per app) and Babel's data for it."""
    sample = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with app.test_request_context("/"):
        for name in i18n.LOCALES:
            with force_locale(name):
                get_translations()
                format_datetime(sample, "dd/MM/yyyy HH:mm")
    return len(i18n.LOCALES)
