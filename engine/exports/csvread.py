"""Reading the CSV files people bring (spreadsheet exports): UTF-8 with or without a BOM,
``;`` or ``,`` between cells, a header row whose names are matched without case or spaces.
Shared by the establishments' and the credentials' imports."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import NamedTuple

SNIFF_CHARS = 4096  # how much of the start of the file decides the delimiter


def lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their endings, without copying the whole text (as
    ``io.StringIO`` would, at four bytes a character)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start) + 1 or len(text)
        yield text[start:end]
        start = end


def dict_reader(source: str | Iterable[str]) -> csv.DictReader:
    """A ``csv.DictReader`` over the whole text or its lines (with their endings, e.g. a
    text file opened with ``newline=""``): BOM dropped, delimiter the more frequent of ``;``
    and ``,`` in the first lines, field names stripped and lower-cased. Rows are read
    lazily, so a file of any size is read in bounded memory."""
    rest = lines(source) if isinstance(source, str) else iter(source)
    head: list[str] = []  # the lines the delimiter is sniffed from
    size = 0
    for line in rest:
        if not head and line.startswith("\ufeff"):
            line = line[1:]
        head.append(line)
        size += len(line)
        if size >= SNIFF_CHARS:
            break
    sample = "".join(head)[:SNIFF_CHARS]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(chain(head, rest), delimiter=delimiter)
    reader.fieldnames = [h.strip().lower() for h in (reader.fieldnames or [])]
    return reader


class Malformed(NamedTuple):
    """A file the reader could not go on reading, at this line."""

    line: int
    message: str


def numbered(reader: csv.DictReader) -> Iterator[tuple[int, dict[str, str]] | Malformed]:
    """The data rows with their line numbers (the header is line 1); a CSV error (e.g. a
    stray quote swallowing the rest of the file) ends the reading with a ``Malformed``."""
    rows = enumerate(reader, start=2)
    while True:
        try:
            yield next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Malformed(reader.line_num, f"CSV malformado ({exc}); verifique as aspas.")
            return
