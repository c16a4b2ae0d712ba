"""Interface language: pt-BR by default, English available; dates dd/mm/aaaa in São Paulo time.

The language is the user's choice (the cookie, else their account's), else the request's
``Accept-Language`` (what the API reads), else pt-BR. The pages' English lives in
``web/translations`` as a .po file; its .mo is compiled when missing or older (``make`` does
it too), so no binary is kept in the repository. The words of the processes (task names,
stages, forms) come from each process's own catalog (``engine.i18n``), and the validation
messages from ``engine.forms.localize``: :func:`translate` asks them before the .po.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, format_datetime, get_locale
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from engine import forms
from engine.definitions import queries as definition_queries

log = logging.getLogger(__name__)
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LOCALES = {"pt_BR": "Português", "en": "English"}
DEFAULT_LOCALE = "pt_BR"
COOKIE = "credencia_locale"


def compile_catalogs(force: bool = False) -> list[Path]:
    """Compile every messages.po whose .mo is missing or older; return what was written."""
    written = []
    for po_path in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po:
            catalog = read_po(po, locale=po_path.parent.parent.name)
        try:
            with mo_path.open("wb") as mo:
                write_mo(mo, catalog)
            written.append(mo_path)
        except OSError:
            log.warning("could not write %s; English pages fall back to Portuguese", mo_path)
    return written


# Each interface language's ``Locale``, made once: Flask-Babel parses whatever the selector
# returns on every request (a ``Locale`` is passed through), and ``Locale.parse`` of a name
# looks the locale's data file up on disk each time.
_LOCALE_OBJECTS = {name: Locale.parse(name) for name in LOCALES}
# The name back from the object, without ``str(Locale)`` rebuilding it on every call.
_LOCALE_NAMES = {locale: name for name, locale in _LOCALE_OBJECTS.items()}


def select_locale() -> Locale:
    chosen = request.cookies.get(COOKIE)
    if chosen in LOCALES:
        return _LOCALE_OBJECTS[chosen]
    user = getattr(g, "user", None)
    if user is not None and user.locale in LOCALES:
        return _LOCALE_OBJECTS[user.locale]
    return _LOCALE_OBJECTS[_best_accepted(request.headers.get("Accept-Language", ""))]


@lru_cache(maxsize=256)
def _best_accepted(header: str) -> str:
    """The locale an ``Accept-Language`` value asks for: parsed once per distinct value (a
    client sends the same one on every request)."""
    return parse_accept_header(header, LanguageAccept).best_match(list(LOCALES)) or DEFAULT_LOCALE


def current_locale() -> str:
    locale = get_locale()
    if locale is None:
        return DEFAULT_LOCALE
    return _LOCALE_NAMES.get(locale) or str(locale)


def html_lang() -> str:
    return "pt-BR" if current_locale() == "pt_BR" else "en"


def fmt_date(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        return format_datetime(value, "dd/MM/yyyy")
    return value.strftime("%d/%m/%Y")


def fmt_datetime(value: datetime | None) -> str:
    return format_datetime(value, "dd/MM/yyyy HH:mm") if value else ""


def fmt_size(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return (
            f"{size / 1024:.1f} KB".replace(".", ",")
            if current_locale() == "pt_BR"
            else f"{size / 1024:.1f} KB"
        )
    value = f"{size / (1024 * 1024):.1f} MB"
    return value.replace(".", ",") if current_locale() == "pt_BR" else value


def process_words(session: Session | None = None) -> dict[str, str]:
    """The deployed processes' words in the request's language (one catalog, read once per
    request, in ``session`` when given; empty in Portuguese or when the database cannot be
    read)."""
    if not has_request_context():
        return {}
    words = g.get("_process_words")
    if words is None:
        words = {}
        locale = current_locale()
        if locale != DEFAULT_LOCALE:
            try:
                if session is not None:
                    words = definition_queries.catalog(session, locale)
                else:
                    with current_app.extensions["credencia.db"].read() as own:
                        words = definition_queries.catalog(own, locale)
            except (SQLAlchemyError, KeyError):
                log.warning("process catalogs unreadable; their texts stay in Portuguese")
        g._process_words = words
    return words


def translate(text: str | None) -> str:
    """Translate a Portuguese text that comes from data (a process's task, stage, form text,
    a validation message, an engine message): the process catalogs, then the engine's
    messages, then the pages' catalog."""
    if not text:
        return ""
    if current_locale() == DEFAULT_LOCALE:
        return text
    words = process_words()
    if text in words:
        return words[text]
    localized = forms.localize(text, current_locale(), words)
    return localized if localized != text else _(text)


def setup(app: Flask) -> None:
    compile_catalogs()
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(
        app,
        locale_selector=select_locale,
        timezone_selector=lambda: app.config["BABEL_DEFAULT_TIMEZONE"],
    )

    @app.after_request
    def _language_headers(response):
        # The answer depends on Accept-Language now: caches must keep one per language.
        headers = response.headers
        if "Vary" in headers:
            response.vary.add("Accept-Language")
        else:  # (the usual case: what ``vary.add`` writes, without parsing an empty header)
            headers["Vary"] = "Accept-Language"
        if "Content-Language" not in headers:
            headers["Content-Language"] = html_lang()
        return response

    app.jinja_env.filters.update(
        date=fmt_date, datetime=fmt_datetime, filesize=fmt_size, t=translate
    )
    app.jinja_env.globals.update(
        current_locale=current_locale, html_lang=html_lang, LOCALES=LOCALES
    )
