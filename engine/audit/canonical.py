"""The one JSON text of an event's data: what is hashed is exactly what is stored.

PostgreSQL's JSONB does not keep the text it is given (``1e+20`` comes back as
``100000000000000000000``, ``-0.0`` as ``0``, keys reordered, and it refuses ``\\u0000``), so a
hash over one serialization and a check over the database's would disagree without anyone
tampering. The data is therefore stored as text (``CanonicalJSON``), serialized once by
``canonical_json``; the hash covers that text and verification reads it back byte for byte.

The serialization is Python's ``json.dumps`` with sorted keys, no spaces and UTF-8 kept as is
(the form the chain has always been hashed in, so older events still verify), plus:

- a non-finite number (not JSON) is kept as the string ``"NaN"``, ``"Infinity"`` or
  ``"-Infinity"``;
- a lone surrogate (not encodable in UTF-8) is written as its ``\\uXXXX`` escape;
- keys that are not strings get JSON's own names (``1``, ``true``, ``null``), and values JSON
  cannot represent (dates, decimals) their ``str()``.

Reading it back with ``json.loads`` and serializing again gives the same text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

_SURROGATE = re.compile("[\ud800-\udfff]")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return next(iter(json.loads(json.dumps({key: None}))))  # JSON's own name for it
    return str(key)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE.get(value, "NaN")
    if isinstance(value, dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    text = json.dumps(
        _plain(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )
    return escape_surrogates(text)


def escape_surrogates(text: str) -> str:
    """A lone surrogate only occurs inside a JSON string there: its escape means the same."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class CanonicalText(str):
    """Text already made by ``canonical_json``: bound as it is."""


class CanonicalJSON(TypeDecorator):
    """A JSON value kept as its canonical text on both databases (see the module's doc)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return str(value) if isinstance(value, CanonicalText) else canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)
