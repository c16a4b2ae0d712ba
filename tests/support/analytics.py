"""The scenario of the analytics tests (issue 17): three establishments whose DATASUS
analyses are answered in 2 h, 3 h and 10 h, two of them rejected (one reason written two ways),
one resubmitted — through the API, with the clock moved by time-machine."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine

from engine.scheduler import jobs
from tests.support.builders import Flow, cast

SP = ZoneInfo("America/Sao_Paulo")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=SP)  # a Monday
HOUR = 3600
ANALYSIS = "avaliar_solicitacao_acesso"


def make_world(make):
    """Three establishments of one organization; gestor and integrador on all three, and a
    gestor scoped to the first."""
    people = cast(make, roles=("admin", "datasus", "auditor"), others=({}, {}))
    ests = [people.est, *people.others]
    cnes = [e.cnes for e in ests]
    users = dict(people.users)
    users["Gestor"] = make.user(people.slug, "gestor", *cnes)
    users["Integrador"] = make.user(people.slug, "integrador", *cnes)
    users["DATASUS"] = users["datasus"]
    users["scoped"] = make.user(people.slug, "gestor", cnes[0])
    return people, ests, users


def start(client, users, est) -> Flow:
    res = client.post(
        "/api/v1/instances",
        json={"process": "credenciamento-rnds", "establishment": est.cnes, "portfolio": "RIRA"},
        headers=users["admin"].headers,
    )
    assert res.status_code == 201, res.json
    ops = client.get("/api/v1/portfolios", headers=users["admin"].headers).json["items"]
    portfolio = next(p for p in ops if p["code"] == "RIRA")
    flow = Flow(client, users, res.json["id"], est, portfolio)
    for element in (
        "obter_certificado_digital",
        "criar_conta_govbr",
        "ambientar_servicos",
        "solicitar_acesso_homologacao",
    ):
        flow.complete(element)
    return flow


def answer(client, users, flow: Flow) -> None:
    """The DATASUS analyst claims the analysis one hour before answering it."""
    task = flow.task(ANALYSIS)
    res = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=users["DATASUS"].headers)
    assert res.status_code == 200, res.json


def walk(client, world) -> list[Flow]:
    people, ests, users = world
    durations = (2 * HOUR, 3 * HOUR, 10 * HOUR)
    reasons = ("IP inválido.", "ip  invalido")
    flows = []
    for i, est in enumerate(ests):
        with time_machine.travel(T0 + timedelta(minutes=i), tick=False):
            flows.append(start(client, users, est))
    for i, (flow, seconds) in enumerate(zip(flows, durations, strict=True)):
        ready_at = T0 + timedelta(minutes=i)
        with time_machine.travel(ready_at + timedelta(seconds=seconds - HOUR), tick=False):
            answer(client, users, flow)
        with time_machine.travel(ready_at + timedelta(seconds=seconds), tick=False):
            if i == 0:
                flow.complete(ANALYSIS)
            else:
                flow.complete(ANALYSIS, data={"decision": "reprovada", "motivo": reasons[i - 1]})
    # The second establishment adjusts and resubmits: the analysis is entered a second time.
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        flows[1].complete("ajustar_solicitacao_acesso")
    return flows


def refresh(db, settings, days: int = 2) -> dict:
    with time_machine.travel(T0 + timedelta(days=days), tick=False):
        return jobs.run_job(db, settings, jobs.JOBS_BY_NAME["analytics"])


def elements(client, user, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in {"process": "credenciamento-rnds", **params}.items())
    res = client.get(f"/api/v1/analytics/elements?{query}", headers=user.headers)
    assert res.status_code == 200, res.json
    return {item["element"]: item for item in res.json["items"]}
