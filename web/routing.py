"""Ids in URLs: a path's ``<int:name>`` matches only a positive integer a row can have —
``MAX_ID`` (32 bits, PostgreSQL's ``Integer``), or with ``<int(big=True):name>`` 64 bits (the
audit events' ``BigInteger``) — so a larger number is "not found" like any other id that names
nothing. Without the bound it reached the database: PostgreSQL refuses an ``Integer`` beyond
32 bits ("integer out of range") and SQLite's driver any integer beyond 64 (``OverflowError``),
both a 500. The rules keep their text (the metrics' route label, the authorization matrix);
the API's paths spell their bounds out, ``int(min=1, max=MAX_ID)``, for its OpenAPI document."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

from engine.db import MAX_BIG_ID, MAX_ID


class RowId(IntegerConverter):
    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int = 1,
        max: int | None = None,
        signed: bool = False,
        big: bool = False,
    ) -> None:
        if max is None:
            max = MAX_BIG_ID if big else MAX_ID
        super().__init__(map, fixed_digits, min, max, signed)


def install(app: Any) -> None:
    """Before any blueprint: a rule resolves its converters as it is added."""
    app.url_map.converters["int"] = RowId
