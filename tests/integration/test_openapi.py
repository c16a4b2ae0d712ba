"""The OpenAPI document is valid, covers every API route, and matches real responses."""

from __future__ import annotations

import re

import jsonschema
from openapi_spec_validator import validate

from tests.support.builders import LANE_ROLES, cast
from tests.support.flows import flow
from web.api.openapi import document


def test_document_is_valid_openapi(client) -> None:  # type: ignore[no-untyped-def]
    doc = client.get("/api/v1/openapi.json").json
    validate(doc)
    assert doc == document()


def test_every_api_route_is_documented(app) -> None:  # type: ignore[no-untyped-def]
    doc = document()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule.endswith("openapi.json"):
            continue
        template = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", "{x}", rule.rule)
        documented = {re.sub(r"\{[a-z_]+\}", "{x}", p): p for p in doc["paths"]}
        assert template in documented, f"{rule.rule} is not in the OpenAPI document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][documented[template]], (
                f"{method} {rule.rule} undocumented"
            )


class Recorder:
    def __init__(self, client):  # type: ignore[no-untyped-def]
        self.client = client
        self.seen: list[tuple[str, str, int, object]] = []

    def open(self, method: str, url: str, **kwargs):  # type: ignore[no-untyped-def]
        res = self.client.open(url, method=method, **kwargs)
        self.seen.append(
            (method.lower(), url.split("?")[0], res.status_code, res.get_json(silent=True))
        )
        return res

    def get(self, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.open("GET", url, **kw)

    def post(self, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.open("POST", url, **kw)


def _schema_for(doc: dict, method: str, path: str, status: int) -> dict | None:  # type: ignore[type-arg]
    for template, ops in doc["paths"].items():
        if re.fullmatch(re.sub(r"\{[a-z_]+\}", "[^/]+", template), path) and method in ops:
            response = ops[method]["responses"].get(str(status))
            assert response is not None, f"{method} {path} answered undocumented status {status}"
            content = response.get("content", {}).get("application/json")
            return content["schema"] if content else None
    raise AssertionError(f"{method} {path} is not documented")


def test_real_responses_conform(client, make) -> None:  # type: ignore[no-untyped-def]
    people = cast(make, roles=LANE_ROLES)
    est, users = people.est, people.lanes
    rec = Recorder(client)
    f = flow(rec, {"est": est, "users": users})
    admin = users["admin"].headers
    rec.get("/api/v1/me", headers=admin)
    rec.get("/api/v1/establishments", headers=admin)
    rec.get(f"/api/v1/establishments/{est.cnes}", headers=admin)
    rec.post("/api/v1/establishments", json={"cnes": "1"}, headers=admin)
    rec.get("/api/v1/processes", headers=admin)
    rec.get("/api/v1/instances", headers=admin)
    task = f.task("obter_certificado_digital")
    rec.get(f"/api/v1/tasks/{task['id']}", headers=users["Gestor"].headers)
    rec.post(f"/api/v1/tasks/{task['id']}/claim", headers=users["Gestor"].headers)
    rec.post(f"/api/v1/tasks/{task['id']}/claim", headers=users["Integrador"].headers)
    rec.post(f"/api/v1/tasks/{task['id']}/release", headers=users["Gestor"].headers)
    rec.post(
        f"/api/v1/tasks/{task['id']}/assign",
        json={"assignee": users["Gestor"].email},
        headers=admin,
    )
    rec.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, headers=users["Gestor"].headers
    )
    f.complete("obter_certificado_digital")
    f.complete("ambientar_servicos")
    rec.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, headers=users["Gestor"].headers
    )
    rec.get(f"/api/v1/instances/{f.instance_id}/history", headers=admin)
    rec.get("/api/v1/tasks/nao-existe", headers=admin)
    rec.get("/api/v1/tasks", headers={"Authorization": "Bearer x"})
    rec.post(f"/api/v1/instances/{f.instance_id}/cancel", json={"reason": "teste"}, headers=admin)
    doc = document()
    statuses = set()
    for method, path, status, body in rec.seen:
        schema = _schema_for(doc, method, path, status)
        statuses.add(status)
        if schema is not None:
            jsonschema.Draft202012Validator({"components": doc["components"], **schema}).validate(
                body
            )
    assert statuses >= {200, 201, 401, 403, 404, 409, 422}
