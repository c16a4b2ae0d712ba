"""Input that no face can store or parse safely is refused before any view, alike for pages
and API (and before authentication: it costs nothing to refuse).

- NUL characters (PostgreSQL text cannot hold them) and lone UTF-16 surrogates such as
  ``"\\ud800"`` in a JSON string (they cannot be encoded as UTF-8): 422, at the field.
- A JSON body that does not parse, or nests deeper than ``MAX_JSON_DEPTH``: 400 (a very deep
  one would otherwise exhaust the parser's recursion).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest

from engine.errors import Invalid
from web.errors import HTTPProblem

MAX_JSON_DEPTH = 64
MAX_REPORTED = 20  # field errors listed for one request
FORM_MIMETYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

NUL_MESSAGE = "Caracteres de controle NUL não são aceitos."
SURROGATE_MESSAGE = "Caractere Unicode inválido (substituto isolado, como \\ud800)."
_NUL_SUMMARY = "Há caracteres não permitidos (NUL) no que foi enviado."
_SURROGATE_SUMMARY = "Há caracteres não permitidos (Unicode inválido) no que foi enviado."
_BAD = re.compile("[\x00\ud800-\udfff]")


def register(app: Flask) -> None:
    app.before_request(check_request)


def refusal(text: str) -> str | None:
    """Why ``text`` cannot be accepted, or None."""
    found = _BAD.search(text)
    if found is None:
        return None
    return NUL_MESSAGE if "\x00" in text else SURROGATE_MESSAGE


def printable(text: str) -> str:
    """``text`` with the refused characters written as escapes (safe to echo back)."""
    return _BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def check_request() -> None:
    errors: dict[str, str] = {}
    for field, text in _texts():
        if not isinstance(text, str):
            continue
        reason = refusal(text)
        if reason is not None:
            errors.setdefault(printable(str(field)), reason)
            if len(errors) >= MAX_REPORTED:
                break
    if errors:
        nul = NUL_MESSAGE in errors.values()
        raise Invalid(errors, _NUL_SUMMARY if nul else _SURROGATE_SUMMARY)


def _texts() -> Iterator[tuple[str, str]]:
    """Every piece of text the request carries, with the field it came in."""
    yield "path", request.path
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            yield name, value
    for name, value in request.args.items(multi=True):
        yield name, name
        yield name, value
    if request.mimetype in FORM_MIMETYPES:
        for name, value in request.form.items(multi=True):
            yield name, name
            yield name, value
    if request.is_json and (raw := request.get_data(cache=True)):
        body = _json_body()
        if _may_hold_refusals(raw):
            yield from _json_texts(body)


# In a UTF-8 JSON text that parses, a NUL can only be written as an escape (``\u0000``: the
# parser refuses a raw one), and a lone surrogate as an escape (``\ud800``…) or as the three
# bytes that would encode it (``\xed\xa0\x80``…, which the parser reads as the surrogate).
# An escaped backslash before "u0000", or a surrogate pair, matches too: that only costs the
# full walk. (A body in UTF-16 or UTF-32, which the parser also reads, has NUL bytes: walked.)
_REFUSABLE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])|\xed[\xa0-\xbf]")


def _may_hold_refusals(raw: bytes) -> bool:
    """Whether a parsed JSON body must be walked: it may hold a refused character, or nest
    deeper than ``MAX_JSON_DEPTH`` (it cannot when it has no more brackets than that: those
    inside strings only make the count larger). Most bodies are neither, and a walk of a
    form's every string was a tenth of a small request's own work."""
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH or b"\x00" in raw:
        return True
    return _REFUSABLE.search(raw) is not None


def _json_body() -> Any:
    try:
        return request.get_json()
    except RecursionError:
        raise _too_deep() from None
    except BadRequest:
        raise HTTPProblem(
            400,
            "O corpo da requisição não é um JSON válido.",
            errors={"body": "Envie um JSON válido (UTF-8)."},
        ) from None


def _too_deep() -> HTTPProblem:
    return HTTPProblem(
        400,
        "O JSON enviado tem níveis demais.",
        errors={"body": f"Use no máximo {MAX_JSON_DEPTH} níveis de objetos e listas."},
    )


def _json_texts(body: Any) -> Iterator[tuple[str, str]]:
    """The strings of a parsed JSON value (keys too) with their dotted paths, the same paths
    the form validation reports (``filhos.1.cnes``); iterative, so depth costs no stack."""
    stack: list[tuple[str, Any, int]] = [("", body, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(value, str):
            yield path or "body", value
        elif isinstance(value, dict):
            for key, child in value.items():
                yield path or "body", key
                stack.append((f"{path}.{key}" if path else key, child, depth + 1))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                stack.append((f"{path}.{index}" if path else str(index), child, depth + 1))
