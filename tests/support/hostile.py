"""Hostile strings, the checks that they were kept as data and shown escaped, and a helper
that turns task-form data into the fields the task page posts."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import escape

from engine.demo import samples
from web import forms_render

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SQL = "'; DROP TABLE task; --"
CONTROL = "a\x01b\x1bc \u202eevil\u202c fim"  # SOH, ESC, right-to-left override
FORMULA = '=HYPERLINK("http://x.example/","clique")'
# Short enough for every field with a limit of 100 characters.
PAYLOADS = {"script": SCRIPT, "img": IMG, "sql": SQL, "control": CONTROL, "formula": FORMULA}
BIG = ("<script>alert(1)</script>ç" * 4000)[: 100 * 1024]  # 100 KB of markup
NUL = "a\x00b"
# What must never reach a page unescaped.
RAW_MARKUP = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escaped(value: str) -> str:
    return str(escape(value))


def check_page(html: str, where: str = "") -> None:
    """No hostile markup unescaped in an HTML page."""
    for raw in RAW_MARKUP:
        assert raw not in html, f"{where}: unescaped {raw!r}"
    # An attribute broken out of (value="..."><img ...) would show the raw quote + tag.
    assert '"><img' not in html, f"{where}: attribute broken out of"


def shown(html: str, values: Iterable[str]) -> set[str]:
    """Which of the values the page shows (escaped, as Jinja writes them)."""
    return {v for v in values if escaped(v) in html}


def free_text_fields(schema: Mapping[str, Any], ui: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """Top-level fields where a person types free text: (name, schema)."""
    out = []
    for name, sub in (schema.get("properties") or {}).items():
        if _is_free_text(sub, forms_render._ui_for(ui, name)):
            out.append((name, sub))
    return out


def row_text_fields(schema: Mapping[str, Any], ui: Mapping[str, Any]) -> dict[str, list[str]]:
    """Repeating rows' free-text sub-fields: array name -> sub-field names."""
    out: dict[str, list[str]] = {}
    for name, sub in (schema.get("properties") or {}).items():
        items = sub.get("items") or {}
        if sub.get("type") != "array" or items.get("type") != "object" or sub.get("readOnly"):
            continue
        item_ui = forms_render._ui_for(forms_render._ui_for(ui, name), "items")
        subs = [
            k
            for k, s in (items.get("properties") or {}).items()
            if _is_free_text(s, forms_render._ui_for(item_ui, k))
        ]
        if subs:
            out[name] = subs
    return out


def _is_free_text(sub: Mapping[str, Any], ui: Mapping[str, Any]) -> bool:
    return (
        sub.get("type") == "string"
        and not sub.get("readOnly")
        and sub.get("format") in (None, "password")  # a password is typed free text too
        and not sub.get("pattern")
        and "enum" not in sub
        and "const" not in sub
        and forms_render._widget(sub, ui) in ("text", "textarea", "password")
    )


def to_form(schema: Mapping[str, Any], ui: Mapping[str, Any], data: Mapping[str, Any],
            prefix: str = "") -> list[tuple[str, str]]:  # fmt: skip
    """The task page's fields for ``data`` (what a browser would post)."""
    out: list[tuple[str, str]] = []
    for key, sub in (schema.get("properties") or {}).items():
        if sub.get("readOnly") or key not in data:
            continue
        name, value = prefix + key, data[key]
        sub_ui = forms_render._ui_for(ui, key)
        widget = forms_render._widget(sub, sub_ui)
        if widget == "rows":
            out.append((name + ".present", "1"))
            for i, row in enumerate(value or []):
                out += to_form(sub.get("items") or {}, forms_render._ui_for(sub_ui, "items"),
                               row, f"{name}.{i}.")  # fmt: skip
        elif widget in ("files", "list"):
            out.append((name + ".present", "1"))
            out += [(f"{name}.{i}", str(v)) for i, v in enumerate(value or [])]
        elif widget == "checkbox":
            out.append((name + ".present", "1"))
            if value:
                out.append((name, "on"))
        elif isinstance(value, bool):
            out.append((name, forms_render.YES if value else forms_render.NO))
        elif value is not None:
            out.append((name, str(value)))
    return out


ERROR_ID = re.compile(r'id="f-([A-Za-z0-9_-]+)-erro"')


def error_ids(html: str) -> set[str]:
    """Field ids (dots as hyphens) that the page marks with an error."""
    return set(ERROR_ID.findall(html))


def field_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def csv_cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))


def formula_cells(text: str) -> list[str]:
    """Cells a spreadsheet would run as a formula."""
    return [c for row in csv_cells(text) for c in row if c.startswith(FORMULA_STARTS)]


def risky_pdf() -> bytes:
    """A one-page PDF whose catalog runs JavaScript on opening and embeds a file."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 3 0 R /Names << /EmbeddedFiles 4 0 R >> >>",
        b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
        b"<< /S /JavaScript /JS (app.alert(1)) >>",
        b"<< /Names [] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]
    return samples.pdf(objects, header=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
