"""The interface's English catalog is complete: every text the pages and views mark for
translation (``_('…')`` in ``web/``, extracted as ``pybabel extract -F web/babel.cfg`` does)
has an English translation, so an English page shows no Portuguese of ours. Without this,
a new text stays Portuguese in English until someone happens to see it."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "web" / "translations" / "en" / "LC_MESSAGES" / "messages.po"


def _marked() -> dict[tuple[str, str | None], str]:
    """Each marked text (its msgid, its context) and where it is first marked."""
    with open(ROOT / "web" / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[tuple[str, str | None], str] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault((msgid, context), f"{filename}:{lineno}")
    return found


def test_every_marked_text_has_an_english_translation():
    marked = _marked()
    assert len(marked) > 500  # the extraction found the templates and the views
    with open(CATALOG, "rb") as fh:
        catalog = read_po(fh)
    untranslated = []
    for (msgid, context), where in sorted(marked.items(), key=lambda item: item[1]):
        entry = catalog.get(msgid, context=context)
        strings = entry.string if entry is not None else None
        if not strings or (isinstance(strings, tuple) and not all(strings)):
            untranslated.append(f"{where}: {msgid!r}")
    assert untranslated == [], "add these to web/translations/en/LC_MESSAGES/messages.po"
