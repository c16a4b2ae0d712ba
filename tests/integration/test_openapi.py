"""The OpenAPI document is valid OpenAPI 3.1 and says what the API does: the same routes and
methods as Flask's URL map, the same path parameters (names and types) as the URL rules, query
parameters the handlers really read and check, and real answers (status, media type, body,
headers) that match what is documented for them."""

from __future__ import annotations

import io
import re
from typing import Any

import jsonschema
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from werkzeug.routing import IntegerConverter, UnicodeConverter

from engine.credentials import service as credentials
from engine.demo import samples
from tests.support.builders import LANE_ROLES, cast
from tests.support.flows import flow
from web.api.contract import document
from web.errors import PROBLEM_JSON

API = "/api/v1/"


def _template(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([a-z_]+)>", r"{\1}", rule)


def _api_rules(app) -> list[Any]:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API) and not rule.rule.endswith("/openapi.json")
    ]


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def test_document_is_valid_openapi_3_1(client) -> None:
    res = client.get("/api/v1/openapi.json")
    assert res.status_code == 200 and res.mimetype == "application/json"
    doc = res.json
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc == document()


def test_routes_and_methods_are_exactly_the_documented_operations(app) -> None:
    routed = {
        (method, _template(rule.rule))
        for rule in _api_rules(app)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routed == set(_operations(document()))


def test_path_parameters_are_the_url_rules_arguments_with_their_types(app) -> None:
    ops = _operations(document())
    for rule in _api_rules(app):
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = ops[(method, _template(rule.rule))]
            documented = {p["name"]: p for p in op["parameters"] if p["in"] == "path"}
            assert set(documented) == set(rule.arguments), (method, rule.rule)
            for name, converter in rule._converters.items():
                param = documented[name]
                assert param["required"] is True
                schema = param["schema"]
                if isinstance(converter, IntegerConverter):
                    assert schema["type"] == "integer", (rule.rule, name)
                    assert schema["minimum"] == converter.min == 1
                    assert schema["maximum"] == converter.max == 2**31 - 1
                else:
                    assert isinstance(converter, UnicodeConverter)
                    assert schema == {"type": "string"}, (rule.rule, name)


def test_every_operation_documents_its_errors_as_problem_details() -> None:
    for (method, path), op in _operations(document()).items():
        responses = op["responses"]
        for status in ("401", "422", "503"):
            assert status in responses, (method, path, status)
        for status, answer in responses.items():
            content = answer.get("content", {})
            if int(status) >= 400:
                assert list(content) == [PROBLEM_JSON], (method, path, status)
                assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
            elif path != "/api/v1/files/{file_id}":
                assert list(content) == ["application/json"], (method, path, status)
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
        if "201" in responses:
            assert "Location" in responses["201"]["headers"], (method, path)
        if "requestBody" in op and "application/json" in op["requestBody"]["content"]:
            assert "400" in responses, (method, path)


def _query_params(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in op.get("parameters", []) if p["in"] == "query"}


def test_documented_query_parameters_are_read_and_checked_by_the_handlers(client, make, db) -> None:
    """Each documented integer or enum query parameter is checked by its handler (a wrong
    value is a 422 at that parameter), and a right one is accepted."""
    org = make.org()
    est = make.establishment(org)
    admin = make.user("sesa-pr", "admin")
    res = client.post("/api/v1/instances", headers=admin.headers, json={
        "process": "credenciamento-rnds", "establishment": est.cnes, "portfolio": "RIRA"})  # fmt: skip
    assert res.status_code == 201
    [credential] = _credentials(db, admin, org, est.cnes, ("RIRA",))
    concrete = {
        "instance_id": str(res.json["id"]),
        "cnes": est.cnes,
        "credential_id": str(credential),
    }
    checked = 0
    for (method, path), op in _operations(document()).items():
        if method != "GET":
            continue
        url = re.sub(r"\{([a-z_]+)\}", lambda m: concrete.get(m.group(1), "x"), path)
        # Required parameters (the analytics' process) take their documented example.
        required = [
            f"{p['name']}={p['schema']['examples'][0]}"
            for p in op.get("parameters", [])
            if p["in"] == "query" and p.get("required") and p["schema"].get("examples")
        ]
        if required:
            url += "?" + "&".join(required)
        join = "&" if required else "?"
        for name, schema in _query_params(op).items():
            if schema.get("type") == "integer":
                bad, good = "nao-e-numero", str(max(schema.get("minimum", 0), 1))
            elif "enum" in schema:
                bad, good = "nenhum-destes", schema["enum"][0]
            else:
                continue
            refused = client.get(f"{url}{join}{name}={bad}", headers=admin.headers)
            assert refused.status_code == 422, (path, name, refused.status_code)
            assert refused.mimetype == PROBLEM_JSON and name in refused.json["errors"], (path, name)
            accepted = client.get(f"{url}{join}{name}={good}", headers=admin.headers)
            assert accepted.status_code in (200, 409), (path, name, accepted.json)
            checked += 1
    # The parameters the hand-written document had lost: limit/offset on /instances, limit
    # on /tasks; the migration plan's version.
    assert checked >= 10


def _credentials(db, admin, org: int, cnes: str, portfolios: tuple[str, ...]) -> list[int]:
    """Production credentials of ``cnes``, one per portfolio (as a CSV import brings them)."""
    with db.write() as s:
        return [
            credentials.register(s, admin.actor, org_id=org, establishment_cnes=cnes,
                                 portfolio_code=code, status="producao", requester_id=f"7000{i}").id
            for i, code in enumerate(portfolios)
        ]  # fmt: skip


def test_limit_and_offset_page_every_paged_list(client, make, db) -> None:
    org = make.org()
    for _ in range(3):
        est = make.establishment(org)
    admin = make.user("sesa-pr", "admin")
    for portfolio in ("RIRA", "REL"):
        res = client.post("/api/v1/instances", headers=admin.headers, json={
            "process": "credenciamento-rnds", "establishment": est.cnes, "portfolio": portfolio})  # fmt: skip
        assert res.status_code == 201
    _credentials(db, admin, org, est.cnes, ("RIRA", "REL"))
    paged = [
        path
        for (method, path), op in _operations(document()).items()
        if method == "GET" and {"limit", "offset"} <= set(_query_params(op))
    ]
    assert sorted(paged) == [
        "/api/v1/credentials",
        "/api/v1/establishments",
        "/api/v1/instances",
        "/api/v1/tasks",
    ]
    for path in paged:
        everything = client.get(path, headers=admin.headers).json
        assert everything["total"] == len(everything["items"]) >= 2 and everything["next"] is None
        seen = []
        url: str | None = f"{path}?limit=1"
        while url:
            page = client.get(url, headers=admin.headers).json
            assert len(page["items"]) == 1 and page["total"] == everything["total"]
            seen.extend(page["items"])
            url = page["next"]
        assert seen == everything["items"], path


class Recorder:
    def __init__(self, client):
        self.client = client
        self.seen: list[tuple[str, str, Any]] = []

    def open(self, method: str, url: str, **kwargs):
        res = self.client.open(url, method=method, **kwargs)
        self.seen.append((method.upper(), url.split("?")[0], res))
        return res

    def get(self, url: str, **kw):
        return self.open("GET", url, **kw)

    def post(self, url: str, **kw):
        return self.open("POST", url, **kw)


def _operation_for(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    for template, ops in doc["paths"].items():
        pattern = re.sub(r"\{[a-z_]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path) and method.lower() in ops:
            return ops[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


def test_real_answers_match_what_is_documented(client, make, db) -> None:
    """Status, media type, body and headers of real answers, success and failure alike."""
    people = cast(make, roles=LANE_ROLES)
    est, users = people.est, people.lanes
    rec = Recorder(client)
    f = flow(rec, {"est": est, "users": users})
    admin, gestor = users["admin"].headers, users["Gestor"].headers
    rec.get("/api/v1/me", headers=admin)
    rec.get("/api/v1/establishments?limit=1", headers=admin)
    rec.get(f"/api/v1/establishments/{est.cnes}", headers=admin)
    rec.get(f"/api/v1/establishments/{est.cnes}/certificates", headers=admin)
    rec.get("/api/v1/establishments/0000000", headers=admin)
    rec.post("/api/v1/establishments", json={"cnes": "1"}, headers=admin)
    rec.post("/api/v1/establishments", data="{", content_type="application/json", headers=admin)
    rec.get("/api/v1/portfolios", headers=admin)
    rec.get("/api/v1/processes", headers=admin)
    rec.get("/api/v1/instances?limit=1", headers=admin)
    instance = rec.get(f"/api/v1/instances/{f.instance_id}", headers=admin)
    rec.get(f"/api/v1/instances/{f.instance_id}/migration?version=1", headers=admin)
    rec.post(f"/api/v1/instances/{f.instance_id}/migrate", json={"version": 1}, headers=admin)
    task = f.task("obter_certificado_digital")
    rec.get(f"/api/v1/tasks/{task['id']}", headers=gestor)
    rec.post(f"/api/v1/tasks/{task['id']}/claim", headers=gestor)
    rec.post(f"/api/v1/tasks/{task['id']}/claim", headers=users["Integrador"].headers)
    rec.post(f"/api/v1/tasks/{task['id']}/release", headers=gestor)
    rec.post(f"/api/v1/tasks/{task['id']}/assign", json={"assignee": users["Gestor"].email},
             headers=admin)  # fmt: skip
    rec.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, headers=gestor)
    upload = rec.post("/api/v1/files", headers=gestor, content_type="multipart/form-data",
                      data={"file": (io.BytesIO(samples.tiny_pdf()), "a.pdf")})  # fmt: skip
    rec.get(f"/api/v1/files/{upload.json['id']}", headers=gestor)
    f.complete("obter_certificado_digital")
    f.complete("ambientar_servicos")
    rec.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, headers=gestor)
    rec.get(f"/api/v1/instances/{f.instance_id}/history", headers=admin)
    [credential] = _credentials(db, users["admin"], people.org, est.cnes, ("REL",))
    stranger = make.user("sesa-pr", "gestor", make.establishment(people.org).cnes)
    rec.get("/api/v1/credentials?status=producao&limit=1", headers=admin)
    rec.get(f"/api/v1/credentials/{credential}", headers=gestor)
    rec.get(f"/api/v1/credentials/{credential}", headers=stranger.headers)
    rec.get("/api/v1/credentials?expiring_within_days=-1", headers=admin)
    rec.get("/api/v1/credentials/999999", headers=admin)
    rec.post("/api/v1/instances", json={"process": "alteracao-credencial",
             "credential": credential}, headers=gestor)  # fmt: skip
    rec.get("/api/v1/tasks/nao-existe", headers=admin)
    rec.get("/api/v1/tasks?state=todas", headers=admin)
    rec.get("/api/v1/tasks", headers={"Authorization": "Bearer x"})
    rec.get("/api/v1/instances/abc", headers=admin)
    rec.post(f"/api/v1/instances/{f.instance_id}/cancel", json={"reason": "teste"},
             headers={**admin, "If-Match": '"outra"'})  # fmt: skip
    assert instance.headers["ETag"]
    fresh = rec.get(f"/api/v1/instances/{f.instance_id}", headers=admin)
    rec.post(f"/api/v1/instances/{f.instance_id}/cancel", json={"reason": "teste"},
             headers={**admin, "If-Match": fresh.headers["ETag"]})  # fmt: skip
    doc = document()
    statuses = set()
    for method, path, res in rec.seen:
        op = _operation_for(doc, method, path)
        answer = op["responses"].get(str(res.status_code))
        where = (method, path, res.status_code)
        assert answer is not None, f"{where}: undocumented status"
        statuses.add(res.status_code)
        content = answer.get("content", {})
        media = res.mimetype if res.mimetype in content else "*/*"
        assert media in content, (where, res.mimetype, list(content))
        schema = content[media].get("schema", {})
        if "$ref" in schema:
            jsonschema.Draft202012Validator({"components": doc["components"], **schema}).validate(
                res.json
            )
        for header in answer.get("headers", {}):
            assert res.headers.get(header), (where, header)
        if res.mimetype == PROBLEM_JSON:
            body = res.json
            assert body["status"] == res.status_code and body["detail"] == body["message"]
            assert body["type"].startswith("urn:credencia:problem:") and body["title"]
    assert statuses >= {200, 201, 400, 401, 403, 404, 409, 412, 422}
