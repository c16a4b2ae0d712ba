"""Interface language: pt-BR by default, English available; dates dd/mm/aaaa in São Paulo time.

The English catalog lives in ``web/translations`` as a .po file; its .mo is compiled when
missing or older (``make`` does it too), so no binary is kept in the repository.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, request
from flask_babel import Babel, format_datetime, get_locale
from flask_babel import gettext as _

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


def select_locale() -> str:
    chosen = request.cookies.get(COOKIE)
    if chosen in LOCALES:
        return chosen
    user = getattr(g, "user", None)
    if user is not None and user.locale in LOCALES:
        return user.locale
    return DEFAULT_LOCALE


def current_locale() -> str:
    locale = get_locale()
    return str(locale) if locale else DEFAULT_LOCALE


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


def translate(text: str | None) -> str:
    """Translate a Portuguese text that comes from data (stage, task, engine message)."""
    return _(text) if text else ""


def setup(app: Flask) -> None:
    compile_catalogs()
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(
        app,
        locale_selector=select_locale,
        timezone_selector=lambda: app.config["BABEL_DEFAULT_TIMEZONE"],
    )
    app.jinja_env.filters.update(
        date=fmt_date, datetime=fmt_datetime, filesize=fmt_size, t=translate
    )
    app.jinja_env.globals.update(
        current_locale=current_locale, html_lang=html_lang, LOCALES=LOCALES
    )
