"""A server's master does once what each worker's first requests would (web/warm.py): after
``warm``, no page reads or compiles a template, no due date loads the holidays package, and
both languages' catalogs are loaded."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import holidays
import pytest
from flask_babel import get_babel

from engine import sla
from web.warm import TEMPLATE_SUFFIXES, warm

# Warming is the same whatever the database: one of them is enough.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _refuse(*args, **kwargs):
    raise AssertionError("read after warming")


def test_after_warming_every_template_comes_from_the_cache(app, client, monkeypatch) -> None:
    env = app.jinja_env
    env.cache.clear()
    done = warm(app)
    names = [n for n in env.list_templates() if n.endswith(TEMPLATE_SUFFIXES)]
    assert done["templates"] == len(names) >= 40
    monkeypatch.setattr(env.loader, "get_source", _refuse)
    for name in names:
        env.get_template(name)  # compiled already: the loader is not asked
    page = client.get("/entrar")
    assert page.status_code == 200 and 'name="email"' in page.text


def test_without_warming_a_page_reads_its_templates(app, client, monkeypatch) -> None:
    """The check above can fail: a cold environment asks the loader."""
    app.jinja_env.cache.clear()
    monkeypatch.setattr(app.jinja_env.loader, "get_source", _refuse)
    with pytest.raises(AssertionError, match="read after warming"):
        app.jinja_env.get_template("login.html")


def test_after_warming_a_due_date_does_not_load_the_holidays(app, monkeypatch) -> None:
    sla.national_holidays.cache_clear()
    zone = ZoneInfo("America/Sao_Paulo")  # the years are Brasília's, as the due dates' days are
    now = datetime.now(zone)
    assert warm(app)["holiday_years"] == 2
    monkeypatch.setattr(holidays, "country_holidays", _refuse)
    # Three business days from now, and from the end of the year (into the next one).
    assert sla.add_business_days(now, 3) > now
    year_end = datetime(now.year, 12, 30, 12, tzinfo=zone)
    assert sla.add_business_days(year_end, 5).year == now.year + 1
    sla.national_holidays.cache_clear()
    with pytest.raises(AssertionError, match="read after warming"):
        sla.add_business_days(now, 3)


def test_after_warming_both_languages_catalogs_are_loaded(app) -> None:
    with app.app_context():  # (Flask-Babel makes the app's domain on first use, in a context)
        domain = get_babel(app).instance.domain_instance
    domain.cache.clear()
    assert warm(app)["locales"] == 2
    loaded = {locale for locale, _domain in domain.cache}
    assert loaded == {"pt_BR", "en"}
