"""The small process from docs/adding-a-process.md: deployed, checked, run through the API."""

from __future__ import annotations

from pathlib import Path

from engine.definitions import service as definitions
from engine.definitions.check import check_paths

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "processes"


def test_walkthrough_process_runs_with_its_rejection_loop(client, make, db):
    assert check_paths([FIXTURES]) == []
    [(definition, created)] = definitions.deploy_all(db, FIXTURES)
    assert created and definition.key == "atualizacao-cadastral"
    org = make.org()
    est = make.establishment(org)
    gestor = make.user("sesa-pr", "gestor", est.cnes)
    datasus = make.user("sesa-pr", "datasus")
    res = client.post("/api/v1/instances", json={"process": "atualizacao-cadastral", "establishment": est.cnes},
                      headers=gestor.headers)  # fmt: skip
    assert res.status_code == 201, res.json
    iid = res.json["id"]
    assert res.json["portfolio"] is None and res.json["stage"] == "Em preenchimento"

    def ready() -> dict:
        [task] = client.get(
            f"/api/v1/tasks?instance={iid}&state=ready", headers=gestor.headers
        ).json["items"] or [None]
        return task

    def complete(user, data, expect=200):
        res = client.post(
            f"/api/v1/tasks/{ready()['id']}/complete", json={"data": data}, headers=user.headers
        )
        assert res.status_code == expect, res.json
        return res

    bad = complete(
        gestor, {"telefone": "41", "email": "x", "responsavel_cpf": "123"}, expect=422
    ).json["errors"]
    assert set(bad) == {"telefone", "email", "responsavel_cpf"}
    complete(
        gestor,
        {
            "telefone": "4133334444",
            "email": "novo@hospital.gov.br",
            "responsavel_cpf": "390.533.447-05",
        },
    )
    assert ready()["lane"] == "DATASUS"
    complete(datasus, {"decision": "reprovada"}, expect=422)
    complete(datasus, {"decision": "reprovada", "motivo": "Telefone sem DDD."})
    task = client.get(f"/api/v1/tasks/{ready()['id']}", headers=gestor.headers).json
    assert task["name"] == "Corrigir alteração" and task["data"]["responsavel_cpf"] == "39053344705"
    complete(gestor, {**task["data"], "telefone": "(41) 3333-5555"})
    complete(datasus, {"decision": "aprovada"})
    inst = client.get(f"/api/v1/instances/{iid}", headers=gestor.headers).json
    assert inst["status"] == "completed" and inst["stage"] == "Concluída"
