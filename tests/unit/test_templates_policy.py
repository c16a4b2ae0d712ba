"""Every page template keeps to the Content-Security-Policy's ``script-src 'self'``: no inline
event handler (``onclick=…``) and no inline script, which the browser would refuse to run —
a button wired that way does nothing (the Análises page's "Imprimir" did). JSON data blocks
(``<script type="application/json">``) are data, not run, and allowed."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I | re.S)
SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)


def test_no_template_has_an_inline_handler_or_script():
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) > 30
    found = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)[:80]}"
        for path in templates
        for pattern in (HANDLER, SCRIPT)
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_check_sees_a_handler_and_a_script():
    assert HANDLER.search('<button type="button" onclick="window.print()">')
    assert HANDLER.search("<a\n  href=x ONMOUSEOVER = 'x'>")
    assert SCRIPT.search("<script>alert(1)</script>")
    assert not SCRIPT.search('<script src="/static/js/app.js" defer></script>')
    assert not SCRIPT.search('<script type="application/json" id="d">{}</script>')
    assert not HANDLER.search('<input name="onde" data-mode="count">')
