"""Forecasts to production (issue 17): a running credenciamento's expected date comes from the
time earlier ones took from its stage to production — on the instance page, the dashboard row
and the dashboard CSV — and "histórico insuficiente" when there is none."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import timedelta

import pytest
import time_machine

from engine.demo import samples
from engine.scheduler import jobs
from tests.support.analytics import T0, make_world, start
from tests.support.builders import Flow
from tests.support.pages import Pages


@pytest.fixture
def settings(settings):
    # One instance gone to production is history enough here (the default asks for 5).
    return dataclasses.replace(settings, analytics_forecast_min_history=1)


def test_forecast_on_the_instance_page_the_dashboard_and_its_csv(app, client, db, settings, make):
    people, ests, users = make_world(make)
    with time_machine.travel(T0, tick=False):
        done = start(client, users, ests[0])  # reaches "Solicitação em análise" at T0
    with time_machine.travel(T0 + timedelta(days=10), tick=False):
        for element in samples.PRODUCTION_PATH[4:]:
            done.complete(element)  # "Produção" 10 days after
    later = T0 + timedelta(days=20)
    with time_machine.travel(later, tick=False):
        running = start(client, users, ests[1])
        res = client.post(
            "/api/v1/instances",
            json={"process": "credenciamento-rnds", "establishment": ests[2].cnes,
                  "portfolio": "CNS"},
            headers=users["admin"].headers,
        )  # fmt: skip
        assert res.status_code == 201, res.json
        unknown = res.json["id"]
    assert isinstance(running, Flow)
    with time_machine.travel(later + timedelta(hours=1), tick=False):
        assert "error" not in jobs.run_job(db, settings, jobs.JOBS_BY_NAME["analytics"])
        pages = Pages(app).login(users["admin"])
        html = pages.get(f"/processos/{running.instance_id}").get_data(as_text=True)
        forecast = html.split('id="forecast">')[1].split("</dd>")[0]
        # In "Solicitação em análise" since T0 + 20 days; the one before took 10 days from there.
        assert "02/12/2026" in forecast and "histórico insuficiente" not in forecast
        html = pages.get(f"/processos/{unknown}").get_data(as_text=True)
        assert "histórico insuficiente" in html.split('id="forecast">')[1].split("</dd>")[0]
        html = pages.get("/painel").get_data(as_text=True)
        assert "02/12/2026" in html and "histórico insuficiente" in html
        text = pages.get("/painel/exportar.csv").get_data(as_text=True)
        # Start to production on the Análises page: the one instance, 10 days, RIRA and PR.
        html = pages.get("/analises").get_data(as_text=True)
        goal = html.split('id="table-goal-portfolio"')[1].split("</table>")[0]
        assert '<th scope="row">RIRA</th><td>1</td><td>10.0</td><td>10.0</td>' in goal
        goal = html.split('id="table-goal-uf"')[1].split("</table>")[0]
        assert f'<th scope="row">{ests[0].uf}</th><td>1</td><td>10.0</td>' in goal
    rows = {
        (r["cnes"], r["portfolio"]): r
        for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")
    }
    assert rows[(ests[1].cnes, "RIRA")]["previsao_producao"] == "2026-12-02"
    assert rows[(ests[2].cnes, "CNS")]["previsao_producao"] == "historico insuficiente"
    assert rows[(ests[0].cnes, "RIRA")]["previsao_producao"] == ""  # already in production
