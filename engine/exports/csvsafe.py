"""CSV cells that spreadsheet programs will not run as formulas (CSV/formula injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A text cell starting like a formula gets a leading apostrophe (OWASP's advice)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """Wraps a ``csv.writer``: every row written through it is neutralized."""

    def __init__(self, writer: Any):
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([cell(v) for v in row])


def spreadsheet_lines(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text for spreadsheet programs, one chunk per row (streamed by the web face): cells
    separated by ``;``, CRLF line ends, formula-safe cells, and a BOM first so the programs
    read the file as UTF-8."""
    buffer = io.StringIO()
    writer = SafeWriter(csv.writer(buffer, delimiter=";", lineterminator="\r\n"))

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(header)
    yield "\ufeff" + flush()
    for row in rows:
        writer.writerow(row)
        yield flush()
