"""Numbers no row can have, and digits ``int()`` does not read, in the pages' paths, queries and
fields: "not found" or a message at the field, never a 500. SQLite's driver refuses an integer
beyond 64 bits (``OverflowError``), and ``str.isdigit()`` is true of "²", which ``int()``
refuses (``ValueError``)."""

from __future__ import annotations

import re

import pytest
from werkzeug.datastructures import MultiDict
from werkzeug.routing import AnyConverter, IntegerConverter

from engine.accounts import tokens
from engine.db import MAX_BIG_ID, MAX_ID
from engine.errors import NotFound
from web import forms_render

# Beyond a 32-bit id, beyond a 64-bit one, and beyond anything the driver takes.
BEYOND = (str(MAX_ID + 1), str(MAX_BIG_ID + 1), "9" * 30)


def _id_rules(app) -> list:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if any(isinstance(c, IntegerConverter) for c in rule._converters.values())
    ]


def _path(rule, number: str) -> str:
    def value(match: re.Match) -> str:
        converter = rule._converters[match.group(1)]
        if isinstance(converter, IntegerConverter):
            return number
        if isinstance(converter, AnyConverter):
            return min(converter.items)
        return "x"

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", value, rule.rule)


def test_every_integer_in_a_path_is_bounded_to_an_id(app):
    rules = _id_rules(app)
    paths = {rule.rule for rule in rules}
    # The pages' ids and the API's: a route added without a bound is caught here.
    assert {"/processos/<int:instance_id>", "/api/v1/instances/<int(min=1, max=2147483647):instance_id>"} <= paths  # fmt: skip
    for rule in rules:
        for converter in rule._converters.values():
            if isinstance(converter, IntegerConverter):
                assert converter.min == 1, rule.rule
                assert converter.max in (MAX_ID, MAX_BIG_ID), rule.rule
    events = next(r for r in rules if r.rule.startswith("/auditoria/eventos/"))
    assert events._converters["event_id"].max == MAX_BIG_ID  # audit events' ids are 64-bit


def test_an_id_no_row_can_have_is_not_found_on_every_route(app, world, pages):
    admin = pages(world.users["admin"])
    headers = world.users["admin"].headers
    rules = _id_rules(app)
    assert len(rules) >= 20
    for rule in rules:
        api = rule.rule.startswith("/api/")
        for number in BEYOND:
            path = _path(rule, number)
            if "GET" in rule.methods:
                res = admin.get(path, headers=headers) if api else admin.get(path)
            else:
                res = admin.post(path, {"reason": "x", "body": "x"})
            assert res.status_code == 404, (path, res.status_code)


def test_a_start_naming_a_credential_no_row_can_have_is_refused_at_the_field(world, pages):
    admin = pages(world.users["admin"])
    for value in ("9" * 30, str(MAX_ID + 1), "\u00b2"):
        res = admin.post(
            "/processos/iniciar",
            {"cnes": world.est2.cnes, "process": "credenciamento-rnds", "credential": value},
        )
        assert res.status_code == 302, value
        page = admin.get(res.headers["Location"]).get_data(as_text=True)
        assert "Credencial inválida." in page, value


def test_the_audit_filter_ignores_a_process_number_it_cannot_read(world, pages):
    admin = pages(world.users["admin"])
    res = admin.get("/auditoria?processo=%C2%B2")
    assert res.status_code == 200


def test_revoking_a_token_by_a_number_no_row_can_have_finds_none(db, world):
    with db.write() as s:
        for ref in BEYOND:
            with pytest.raises(NotFound):
                tokens.revoke_ref(s, world.users["admin"].actor, ref)


LIST_SCHEMA = {
    "type": "object",
    "properties": {"telefones": {"type": "array", "items": {"type": "string"}}},
}


def test_a_row_index_int_cannot_read_is_not_a_row():
    form = MultiDict({"telefones.0": "4133330000", "telefones.\u00b2": "x", "telefones.12345": "y"})
    assert forms_render.parse_submission(LIST_SCHEMA, {}, form) == {"telefones": ["4133330000"]}
    data = {"telefones": ["4133330000"]}
    assert forms_render.apply_row_action(LIST_SCHEMA, data, "remove:telefones.\u00b2", {})
    assert data == {"telefones": ["4133330000"]}
    assert forms_render.apply_row_action(LIST_SCHEMA, data, "remove:telefones.0", {})
    assert data == {"telefones": []}


def test_the_apis_task_filter_refuses_an_instance_no_row_can_have(world, client):
    headers = world.users["admin"].headers
    for value, message in (
        ("9" * 20, "Informe um número menor ou igual a 2147483647."),
        ("0", "Informe um número maior ou igual a 1."),
        ("%C2%B2", "Informe um número inteiro."),
    ):
        res = client.get(f"/api/v1/tasks?instance={value}", headers=headers)
        assert res.status_code == 422, value
        assert res.json["errors"] == {"instance": message}
    res = client.get(f"/api/v1/tasks?instance={world.instance_id}", headers=headers)
    assert res.status_code == 200 and res.json["items"]
