"""Item 14 of issue 14: the schema served with a task is the one that applies to it, so a
client that reads only the served JSON Schema completes a whole credenciamento to production.

The data of every task is built by ``tests.support.schema_data`` from the served schema
alone; files are uploaded for ``format: file`` fields (a certificate where the field accepts
one, a PDF otherwise)."""

from __future__ import annotations

import io
import re
from typing import Any

from engine.demo import samples
from engine.establishments.models import Portfolio
from tests.support.pages import Pages
from tests.support.schema_data import minimal_instance

START = {"process": "credenciamento-rnds", "portfolio": "RIRA"}


class SchemaClient:
    """An API client that knows the lanes' people and nothing of the forms."""

    def __init__(self, client, world, instance_id: int) -> None:
        self.client, self.world, self.instance_id = client, world, instance_id
        self.users = world["users"]

    def get(self, url: str, lane: str = "admin") -> Any:
        res = self.client.get(url, headers=self.users[lane].headers)
        assert res.status_code == 200, (url, res.json)
        return res.json

    def ready(self) -> list[dict[str, Any]]:
        url = f"/api/v1/tasks?instance={self.instance_id}&state=ready"
        return sorted(self.get(url)["items"], key=lambda t: t["element"])

    def upload(self, schema: dict[str, Any], lane: str) -> str:
        if "certificate" in schema.get("x-accept", []):
            content, name = samples.demo_certificate(self.world["est"].cnpj), "ecnpj.cer"
        else:
            content, name = samples.tiny_pdf(), "evidencia.pdf"
        res = self.client.post(
            "/api/v1/files",
            headers=self.users[lane].headers,
            data={"file": (io.BytesIO(content), name)},
            content_type="multipart/form-data",
        )
        assert res.status_code == 201, res.json
        return res.json["id"]

    def complete(self, task: dict[str, Any]) -> dict[str, Any]:
        lane = task["lane"]
        detail = self.get(f"/api/v1/tasks/{task['id']}", lane)
        schema = detail["form"]["schema"]
        data = minimal_instance(schema, lambda field: self.upload(field, lane)) if schema else {}
        res = self.client.post(
            f"/api/v1/tasks/{task['id']}/complete",
            json={"data": data},
            headers=self.users[lane].headers,
        )
        assert res.status_code == 200, (task["element"], data, res.json)
        return data

    def run_to_the_end(self, limit: int = 40) -> list[str]:
        done = []
        for _ in range(limit):
            ready = self.ready()
            if not ready:
                return done
            self.complete(ready[0])
            done.append(ready[0]["element"])
        raise AssertionError(f"not finished after {limit} tasks: {done}")


def _start(client, world, **extra) -> SchemaClient:
    body = {**START, "establishment": world["est"].cnes, **extra}
    res = client.post("/api/v1/instances", json=body, headers=world["users"]["Gestor"].headers)
    assert res.status_code == 201, res.json
    return SchemaClient(client, world, res.json["id"])


def test_item14_a_client_reading_only_served_schemas_reaches_production(client, world):
    c = _start(client, world)
    done = c.run_to_the_end()
    assert {"solicitar_acesso_homologacao", "avaliar_solicitacao_acesso",
            "avaliar_solicitacao_producao", "colocar_em_producao"} <= set(done)  # fmt: skip
    inst = c.get(f"/api/v1/instances/{c.instance_id}")
    assert inst["status"] == "completed" and inst["stage"] == "Produção"
    assert (
        inst["numero_solicitacao"] == "3804/2024" and inst["identificador_solicitante"] == "40111"
    )


def test_item14_options_from_the_workflow_are_served_as_enum(client, world):
    c = _start(client, world)
    portfolio = next(
        p for p in c.get("/api/v1/portfolios")["items"] if p["code"] == START["portfolio"]
    )
    expected = [{"operacao": o["operacao"], "metodo": o["metodo"]} for o in portfolio["operations"]]
    while "solicitar_acesso_homologacao" not in {t["element"] for t in c.ready()}:
        c.complete(c.ready()[0])
    task = next(t for t in c.ready() if t["element"] == "solicitar_acesso_homologacao")
    schema = c.get(f"/api/v1/tasks/{task['id']}", "Gestor")["form"]["schema"]
    servicos = schema["properties"]["servicos"]
    assert servicos["items"]["enum"] == expected
    assert servicos["x-options-from"] == "portfolio.operations"  # still said where they come from
    # The approval's options: what was requested, and the identificador is required here.
    c.complete(task)
    while "avaliar_solicitacao_acesso" not in {t["element"] for t in c.ready()}:
        c.complete(c.ready()[0])
    task = next(t for t in c.ready() if t["element"] == "avaliar_solicitacao_acesso")
    schema = c.get(f"/api/v1/tasks/{task['id']}", "DATASUS")["form"]["schema"]
    assert schema["properties"]["operacoes_aprovadas"]["items"]["enum"] == expected
    approved = schema["allOf"][0]["then"]["required"]
    assert "identificador_solicitante" in approved and "numero_solicitacao" in approved


def _identificador_label(app, user, task_id: str) -> str:
    html = Pages(app).login(user).get(f"/tarefas/{task_id}").get_data(as_text=True)
    found = re.search(r'<label for="f-identificador_solicitante">(.*?)</label>', html, re.S)
    assert found, html[:300]
    return found.group(1)


def test_item14_item7_no_identificador_served_nor_asked_for_cns_certdig(client, world, db, app):
    with db.write() as s:
        s.add(Portfolio(code="CNS-CERTDIG", name="CNS certificado digital",
                        operations=[{"operacao": "/fhir/r4/Patient", "metodo": "GET"}]))  # fmt: skip
    c = _start(client, world, portfolio="CNS-CERTDIG")
    while "avaliar_solicitacao_acesso" not in {t["element"] for t in c.ready()}:
        c.complete(c.ready()[0])
    task = next(t for t in c.ready() if t["element"] == "avaliar_solicitacao_acesso")
    schema = c.get(f"/api/v1/tasks/{task['id']}", "DATASUS")["form"]["schema"]
    assert "identificador_solicitante" not in schema["allOf"][0]["then"]["required"]
    # nor marked required on the page (it is for a portfolio whose approval shows one)
    assert "app-req" not in _identificador_label(app, world["users"]["DATASUS"], task["id"])
    data = c.complete(task)
    assert "identificador_solicitante" not in data
    done = c.run_to_the_end()
    assert "obter_dados_acesso" in done
    inst = c.get(f"/api/v1/instances/{c.instance_id}")
    assert inst["status"] == "completed" and inst["stage"] == "Produção"
    assert not inst["identificador_solicitante"]


def test_item14_item7_the_identificador_is_required_where_the_approval_shows_one(
    client, world, app
):
    c = _start(client, world)
    while "avaliar_solicitacao_acesso" not in {t["element"] for t in c.ready()}:
        c.complete(c.ready()[0])
    task = next(t for t in c.ready() if t["element"] == "avaliar_solicitacao_acesso")
    assert "app-req" in _identificador_label(app, world["users"]["DATASUS"], task["id"])
