"""``web.request_guard``'s shortcut: a JSON body is walked string by string only when its bytes
may hold a refused character or nest too deep; every body that could is walked."""

from __future__ import annotations

import json

import pytest

from web.request_guard import MAX_JSON_DEPTH, _may_hold_refusals


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"a": "x\x00y"}).encode(),  # NUL, escaped (a raw one does not parse)
        json.dumps({"a": "\ud800"}).encode(),  # lone surrogates, escaped
        json.dumps({"\udfff": 1}).encode(),
        b'{"a": "\\uDBFF"}',  # in capitals
        '{"a": "x\ud800y"}'.encode("utf-8", "surrogatepass"),  # the bytes that would encode one
        json.dumps({"a": "\ud800"}).encode("utf-16"),  # other encodings the parser reads
        json.dumps({"a": "ok"}).encode("utf-32"),
        json.dumps({"a": [[]] * MAX_JSON_DEPTH}).encode(),  # more brackets than levels allowed
    ],
)
def test_a_body_that_may_hold_a_refusal_is_walked(raw: bytes) -> None:
    assert _may_hold_refusals(raw)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"data": {"cnes": "1234567", "nome": "Posto São José", "filhos": []}}).encode(),
        json.dumps({"a": "é中한"}, ensure_ascii=False).encode(),  # Hangul ends before surrogates
        json.dumps({"a": "é\u00e9"}).encode(),  # other escapes
        json.dumps([[[[]]]] * 10).encode(),
    ],
)
def test_an_ordinary_body_is_not_walked(raw: bytes) -> None:
    assert not _may_hold_refusals(raw)


def test_the_shortcut_never_lets_through_what_the_walk_refuses() -> None:
    """Every character the walk refuses, however the body writes it, is caught."""
    for code in [0, *range(0xD800, 0xE000, 0x3F), 0xDFFF]:
        text = chr(code)
        for raw in (
            json.dumps({"a": text}).encode(),
            json.dumps({"a": text}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        ):
            assert _may_hold_refusals(raw), (hex(code), raw)
