"""Process analytics (issue 17): the figures the API and the diagram give agree with what the
test made happen — three DATASUS analyses answered in 2 h, 3 h and 10 h, one loop, two
rejections written two ways — on both databases, refreshed by the scheduler's job."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from engine.analytics import histogram
from engine.analytics import refresh as analytics_refresh
from engine.analytics.models import AnalyticsBucket
from engine.audit.models import AuditEvent
from engine.demo import samples
from tests.support.analytics import (
    ANALYSIS,
    HOUR,
    T0,
    answer,
    elements,
    make_world,
    refresh,
    walk,
)
from tests.support.builders import cast


@pytest.fixture
def world(make, client):
    return make_world(make)


def test_three_answers_give_their_medians_counts_loops_and_reasons(client, db, settings, world):
    _people, _ests, users = world
    walk(client, world)
    summary = refresh(db, settings)
    assert "error" not in summary and summary["rows"] > 0

    items = elements(client, users["auditor"])
    analysis = items[ANALYSIS]
    assert analysis["name"] == "Avaliar solicitação de acesso"
    assert analysis["lane"] == "DATASUS"
    assert analysis["completed"] == 3
    assert analysis["entered"] == 4 and analysis["loops"] == 1
    assert analysis["active"] == 1  # the resubmitted one
    # Nearest rank of 2 h, 3 h, 10 h: the median is 3 h, the 90th percentile 10 h.
    assert analysis["duration_seconds"] == {"median": 3 * HOUR, "p90": 10 * HOUR}
    assert analysis["claim_to_complete_seconds"] == {"median": HOUR, "p90": HOUR}
    assert analysis["overdue_share"] == 0.0  # all within the 3 business days
    assert items["obter_certificado_digital"]["completed"] == 3
    assert items["ajustar_solicitacao_acesso"]["completed"] == 1

    res = client.get(
        "/api/v1/analytics/datasus-response?process=credenciamento-rnds",
        headers=users["admin"].headers,
    )
    assert res.status_code == 200, res.json
    assert res.json["expected_hours"] == 72
    [row] = res.json["items"]
    assert row["portfolio"] == "RIRA" and row["kind"] == "homologation"
    assert row["answered"] == 3 and row["within_72h"] == 1.0
    assert row["duration_seconds"] == {"median": 3 * HOUR, "p90": 10 * HOUR}
    [reason] = res.json["reasons"]
    assert reason["reason"] == "ip invalido" and reason["count"] == 2
    assert reason["example"] in ("IP inválido.", "ip  invalido")

    res = client.get("/api/v1/analytics/lead-times", headers=users["admin"].headers)
    assert res.status_code == 200, res.json
    by_stage = {i["stage"]: i for i in res.json["items"]}
    # Each instance reaches "Solicitação em análise" once, however often the loop runs.
    assert by_stage["Solicitação em análise"]["reached"] == 3
    assert by_stage["Reprovada — ajuste pendente"]["reached"] == 2
    assert by_stage["Preparação"]["reached"] == 3
    flow = {f["stage"]: f["cumulative"] for f in res.json["flow"]}
    assert res.json["weeks"] == ["2026-11-02"]
    assert flow["Solicitação em análise"] == [3]

    # Filters at each level: the country, the UF, the município (with or without its UF).
    _people, ests, _users = world
    est = ests[0]
    same_place = sum(1 for e in ests if (e.uf, e.municipio) == (est.uf, est.municipio))
    in_uf = sum(1 for e in ests if e.uf == est.uf)
    assert elements(client, users["auditor"], uf=est.uf)[ANALYSIS]["completed"] == in_uf
    for params in ({"uf": est.uf, "municipio": est.municipio}, {"municipio": est.municipio}):
        assert elements(client, users["auditor"], **params)[ANALYSIS]["completed"] == same_place
    # Filters: another UF, another portfolio or another period see nothing.
    assert elements(client, users["auditor"], uf="AC") == {}
    assert elements(client, users["auditor"], portfolio="CNS") == {}
    december = elements(client, users["auditor"], **{"from": "2026-12"})[ANALYSIS]
    assert december["completed"] == 0 and december["duration_seconds"]["median"] is None
    assert december["active"] == 1  # what is open now does not depend on the period
    assert (
        elements(client, users["auditor"], **{"from": "2026-11", "to": "2026-11-30"})[ANALYSIS][
            "completed"
        ]
        == 3
    )


def test_the_refresh_is_incremental_and_counts_each_row_once(client, db, settings, world):
    _people, _ests, users = world
    flows = walk(client, world)
    refresh(db, settings)
    with db.read() as s:
        before = s.scalar(select(func.count()).select_from(AnalyticsBucket))
    again = refresh(db, settings)
    assert again["rows"] == 0 and again["buckets"] == 0
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AnalyticsBucket)) == before
    # The fourth answer comes 26 h after the analysis was entered again:
    # only the rows after the marks are read, and the figures move.
    resubmitted = T0 + timedelta(days=1)
    with time_machine.travel(T0 + timedelta(days=2, hours=1), tick=False):
        answer(client, users, flows[1])
    with time_machine.travel(resubmitted + timedelta(hours=26), tick=False):
        data = {**samples.answer(ANALYSIS, flows[1].ctx), "identificador_solicitante": "40112"}
        flows[1].complete(ANALYSIS, data=data)
    later = refresh(db, settings, days=3)
    assert later["rows"] == 2  # the answer closed, obter_dados_acesso opened
    analysis = elements(client, users["auditor"])[ANALYSIS]
    assert analysis["completed"] == 4 and analysis["active"] == 0
    # 2 h, 3 h, 10 h and 26 h: nearest-rank median is the 2nd (3 h), p90 the 4th.
    assert analysis["duration_seconds"] == {"median": 3 * HOUR, "p90": 26 * HOUR}


def test_rows_younger_than_the_lag_wait_for_the_next_run(client, db, settings, world):
    walk(client, world)
    last = T0 + timedelta(days=1)  # the resubmission
    with time_machine.travel(last + timedelta(seconds=10), tick=False):
        first = analytics_refresh.refresh(db, settings)
    with time_machine.travel(last + timedelta(seconds=settings.analytics_lag_seconds + 1)):
        second = analytics_refresh.refresh(db, settings)
    assert first.rows > 0 and second.rows == 2  # ajustar closed, the analysis entered again


def test_scoped_users_see_their_establishments_and_outsiders_are_refused(
    client, db, settings, world, make
):
    people, _ests, users = world
    walk(client, world)
    refresh(db, settings)
    # The scoped gestor sees the first establishment only: one answer (2 h), approved.
    analysis = elements(client, users["scoped"])[ANALYSIS]
    assert analysis["completed"] == 1 and analysis["loops"] == 0
    assert analysis["duration_seconds"] == {"median": 2 * HOUR, "p90": 2 * HOUR}
    res = client.get("/api/v1/analytics/datasus-response", headers=users["scoped"].headers)
    assert res.json["reasons"] == []

    stranger = cast(make, "sesa-sc", "SES SC", roles=("admin",), uf="SC").users["admin"]
    res = client.get(
        f"/api/v1/analytics/elements?process=credenciamento-rnds&org={people.slug}",
        headers=stranger.headers,
    )
    assert res.status_code == 403
    with db.read() as s:
        assert s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "denied.org.access")
        )
    # The stranger's own organization has no history.
    assert elements(client, stranger) == {}


def test_bad_filters_are_refused_at_the_field(client, world):
    _people, _ests, users = world
    res = client.get(
        "/api/v1/analytics/elements?process=credenciamento-rnds&from=2026-13",
        headers=users["admin"].headers,
    )
    assert res.status_code == 422 and "from" in res.json["errors"]
    res = client.get(  # "²": a digit to str.isdigit(), not to int()
        "/api/v1/analytics/elements?process=credenciamento-rnds&to=2026-%C2%B21",
        headers=users["admin"].headers,
    )
    assert res.status_code == 422 and "to" in res.json["errors"]
    res = client.get("/api/v1/analytics/elements", headers=users["admin"].headers)
    assert res.status_code == 422 and "process" in res.json["errors"]
    res = client.get(
        "/api/v1/analytics/elements?process=nao-existe", headers=users["admin"].headers
    )
    assert res.status_code == 404
    res = client.get("/api/v1/analytics/lead-times?group=cnes", headers=users["admin"].headers)
    assert res.status_code == 422 and "group" in res.json["errors"]


@pytest.mark.parametrize(
    ("seconds", "edge"),
    [
        (59, 0),
        (60, 60),
        (3599, 3540),
        (3600, 3600),
        (3 * HOUR + 899, 3 * HOUR),
        (86400 * 40 + 5, 86400 * 40),
    ],
)
def test_histogram_bins(seconds, edge):
    assert histogram.bin_of(seconds) == edge


def test_percentiles_are_nearest_rank():
    hist: dict[str, int] = {}
    for value in (2 * HOUR, 3 * HOUR, 10 * HOUR):
        histogram.add(hist, value)
    assert histogram.percentile(hist, 0.5) == 3 * HOUR
    assert histogram.percentile(hist, 0.9) == 10 * HOUR
    assert histogram.percentile({}, 0.5) is None
    assert histogram.share_below(hist, 3 * HOUR) == pytest.approx(1 / 3)


def test_reasons_are_normalised():
    normalise = analytics_refresh.normalise_reason
    assert normalise("  IP  Inválido!! ") == normalise("ip invalido") == "ip invalido"
    assert normalise("Certificado vencido") != normalise("Certificado válido")
