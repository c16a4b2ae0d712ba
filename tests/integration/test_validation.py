"""Bad input gets a 422 with a Portuguese message at the field, and nothing changes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, func, select

from engine.audit.models import AuditEvent
from engine.demo import samples
from tests.support.builders import LANE_ROLES, cast
from tests.support.flows import flow


@pytest.fixture
def at_request(make, client):
    people = cast(make, roles=LANE_ROLES)
    est, users = people.est, people.lanes
    f = flow(client, {"est": est, "users": users})
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    return f


BAD = [
    ({"gestor_cpf": "39053344700"}, "gestor_cpf", "Dígitos verificadores do CPF não conferem."),
    ({"gestor_cpf": "11111111111"}, "gestor_cpf", "CPF com todos os dígitos iguais não é válido."),
    ({"gestor_cns": "207284801600009"}, "gestor_cns", "CNS"),
    ({"ip_inicial": "200.17.0.20", "ip_final": "200.17.0.10"}, "ip_final", "IP final"),
    ({"ip_inicial": "192.168.0.1", "ip_final": "192.168.0.9"}, "ip_inicial", "IP público"),
    ({"data_inicio": "2027-01-10", "data_fim": "2026-01-10"}, "data_fim", ""),
    ({"data_levantamento": "2026-02-30"}, "data_levantamento", "Data inválida"),
    (
        {"atendimentos_minimo_dia": 500, "atendimentos_maximo_dia": 100},
        "atendimentos_maximo_dia",
        "",
    ),
    ({"resumo": "x" * 401}, "resumo", "400"),
    ({"aceite_termo": False}, "aceite_termo", ""),
    ({"possui_filhos": True, "filhos": [{"cnes": "9999999"}]}, "filhos.0.cnes", "CNES"),
    (
        {"periodos_maior_acesso": [{"periodo": "Tarde", "inicio": "13:00", "fim": "13:00"}]},
        "periodos_maior_acesso.0.fim",
        "diferente do início",
    ),
    ({"servicos": [{"operacao": "/nao/existe", "metodo": "GET"}]}, "servicos.0", "portfólio"),
]


@pytest.mark.parametrize(("change", "field", "text"), BAD, ids=[b[1] for b in BAD])
def test_invalid_homologation_request_changes_nothing(client, db, at_request, change, field, text):
    f = at_request
    task = f.task("solicitar_acesso_homologacao")
    before = f.instance()
    with db.read() as s:
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    data = {**samples.answer("solicitar_acesso_homologacao", f.ctx), **change}
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": data},
        headers=f.users["Gestor"].headers,
    )
    assert res.status_code == 422, res.json
    assert field in res.json["errors"], res.json["errors"]
    assert text in res.json["errors"][field]
    after = f.instance()
    assert after["revision"] == before["revision"] and after["stage"] == before["stage"]
    assert f.task("solicitar_acesso_homologacao")["assignee"] is None
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events


def test_missing_required_fields_are_each_reported(client, at_request):
    task = at_request.task("solicitar_acesso_homologacao")
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {}},
        headers=at_request.users["Gestor"].headers,
    )
    assert res.status_code == 422
    assert res.json["errors"]["gestor_cpf"] == "Campo obrigatório."
    assert len(res.json["errors"]) > 10


@pytest.mark.parametrize("body", [None, [], "texto", {"data": [1, 2]}, {"data": "x"}])
def test_malformed_bodies_are_422_not_500(client, at_request, body):
    task = at_request.task("solicitar_acesso_homologacao")
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json=body,
        headers=at_request.users["Gestor"].headers,
    )
    assert res.status_code == 422 and res.json["errors"]


def test_hostile_text_is_stored_as_data(client, at_request):
    f = at_request
    task = f.task("solicitar_acesso_homologacao")
    hostile = "<script>alert(1)</script>'; DROP TABLE task; --\u202e"
    data = {**samples.answer("solicitar_acesso_homologacao", f.ctx), "sistema_nome": hostile}
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": data},
        headers=f.users["Gestor"].headers,
    )
    assert res.status_code == 200
    history = client.get(
        f"/api/v1/instances/{f.instance_id}/history", headers=f.users["admin"].headers
    ).json["items"]
    assert history[-1]["data"]["data"]["sistema_nome"] == hostile


def test_unknown_task_and_instance_are_404(client, at_request):
    headers = at_request.users["Gestor"].headers
    assert client.get("/api/v1/tasks/not-a-task", headers=headers).status_code == 404
    assert (
        client.post(
            "/api/v1/tasks/00000000-0000-0000-0000-000000000000/complete",
            json={"data": {}},
            headers=headers,
        ).status_code
        == 404
    )
    assert client.get("/api/v1/instances/abc", headers=headers).status_code == 404
    assert client.get("/api/v1/instances/999999", headers=headers).status_code == 404


def test_completed_task_cannot_be_completed_again(client, at_request):
    f = at_request
    task = f.task("solicitar_acesso_homologacao")
    f.complete("solicitar_acesso_homologacao")
    data = samples.answer("solicitar_acesso_homologacao", f.ctx)
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": data},
        headers=f.users["Gestor"].headers,
    )
    assert res.status_code == 409 and res.json["message"] == "Esta tarefa já foi concluída."


@pytest.fixture
def with_children(make, client):
    """A homologation request whose establishment (PR) has 50 registered children in PR and
    one in SP."""
    org = make.org()
    est = make.establishment(org, uf="PR")
    children = [make.establishment(org, uf="PR").cnes for _ in range(50)]
    elsewhere = make.establishment(org, uf="SP").cnes
    users = {
        "admin": make.user("sesa-pr", "admin"),
        "Gestor": make.user("sesa-pr", "gestor", est.cnes),
        "Integrador": make.user("sesa-pr", "integrador", est.cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
    }
    f = flow(client, {"est": est, "users": users})
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    return f, children, elsewhere


def test_same_uf_looks_up_fifty_children_in_one_statement(client, db, with_children):
    f, children, elsewhere = with_children
    task = f.task("solicitar_acesso_homologacao")
    answer = samples.answer("solicitar_acesso_homologacao", f.ctx)

    def submit(filhos: list[str]) -> tuple[dict, list[str]]:
        statements: list[str] = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        data = {**answer, "possui_filhos": True, "filhos": [{"cnes": c} for c in filhos]}
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            res = client.post(
                f"/api/v1/tasks/{task['id']}/complete",
                json={"data": data},
                headers=f.users["Gestor"].headers,
            )
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        assert res.status_code == 422, res.json
        return res.json["errors"], statements

    same_uf = "Os estabelecimentos filhos devem ser da mesma UF do estabelecimento principal."
    one_errors, one = submit([elsewhere])
    fifty_errors, fifty = submit([*children[:49], elsewhere])
    assert one_errors == {"filhos.0.cnes": same_uf}
    assert fifty_errors == {"filhos.49.cnes": same_uf}
    # As many statements for 50 children as for one: their UFs come in a single query.
    assert len(fifty) == len(one), [s for s in fifty if s not in one]
    lookups = [s for s in fifty if "establishment.cnes IN" in s]
    assert len(lookups) == 1, lookups


def test_integral_floats_are_stored_as_ints(client, db, at_request):
    f = at_request
    task = f.task("solicitar_acesso_homologacao")
    data = {
        **samples.answer("solicitar_acesso_homologacao", f.ctx),
        "quantidade_atendimentos": 1e20,
        "acessos_pico": -0.0,
    }
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": data},
        headers=f.users["Gestor"].headers,
    )
    assert res.status_code == 200, res.json
    history = client.get(
        f"/api/v1/instances/{f.instance_id}/history", headers=f.users["admin"].headers
    ).json["items"]
    stored = history[-1]["data"]["data"]
    assert stored["quantidade_atendimentos"] == 100000000000000000000
    assert type(stored["quantidade_atendimentos"]) is int and type(stored["acessos_pico"]) is int
    with db.read() as s:
        event_data = s.scalars(select(AuditEvent.data).order_by(AuditEvent.id.desc())).first()
    assert event_data["data"]["quantidade_atendimentos"] == 10**20
    assert json.dumps(event_data["data"]["acessos_pico"]) == "0"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_at_the_field(client, at_request, value):
    f = at_request
    task = f.task("solicitar_acesso_homologacao")
    data = {**samples.answer("solicitar_acesso_homologacao", f.ctx), "acessos_pico": "?"}
    body = json.dumps({"data": data}).replace('"acessos_pico": "?"', f'"acessos_pico": {value}')
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        data=body,
        content_type="application/json",
        headers=f.users["Gestor"].headers,
    )
    assert res.status_code == 422, res.json
    assert res.json["errors"] == {"acessos_pico": "Informe um número finito."}
