"""The Análises page: the same figures as the API, tables for screen readers, the team view
for organization-wide roles only, bad periods refused at the field."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from engine.accounts.models import User
from tests.support.analytics import ANALYSIS, make_world, refresh, walk
from tests.support.pages import Pages


@pytest.fixture
def world(make):
    return make_world(make)


def test_the_page_shows_the_figures_in_tables_and_the_chart_data(app, client, db, settings, world):
    _people, _ests, users = world
    walk(client, world)
    refresh(db, settings)
    pages = Pages(app).login(users["auditor"])
    res = pages.get("/analises")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert (
        f'<tr data-element="{ANALYSIS}"><th scope="row">Avaliar solicitação de acesso</th>' in html
    )
    # completed 3, active 1, median 3 h, p90 10 h, claim 1 h, 0% overdue, 1 loop
    row = html.split(f'data-element="{ANALYSIS}"')[1].split("</tr>")[0]
    assert "<td>3</td><td>1</td>" in row and "3.0 h" in row and "10.0 h" in row and "0%" in row
    assert "ip invalido" in html and 'id="table-lanes"' in html
    assert 'id="analytics-data"' in html and "echarts.min.js" in html


def test_scoped_users_see_their_figures_without_the_team_view(app, client, db, settings, world):
    _people, _ests, users = world
    walk(client, world)
    refresh(db, settings)
    pages = Pages(app).login(users["scoped"])
    html = pages.get("/analises").get_data(as_text=True)
    row = html.split(f'data-element="{ANALYSIS}"')[1].split("</tr>")[0]
    assert "<td>1</td><td>0</td>" in row  # their one answer, nothing open
    assert 'id="table-lanes"' not in html and "ip invalido" not in html


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("2026-99", "Mês inválido."),
        # "²" and "³" are digits to str.isdigit(), not to int()
        ("2026-%C2%B21", "Use uma data AAAA-MM ou AAAA-MM-DD."),
        ("%C2%B3026-01", "Use uma data AAAA-MM ou AAAA-MM-DD."),
    ],
)
def test_a_bad_period_is_shown_at_the_field(app, world, period, message):
    _people, _ests, users = world
    pages = Pages(app).login(users["admin"])
    res = pages.get(f"/analises?de={period}")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert 'aria-invalid="true"' in html and message in html


def test_english(app, db, world):
    _people, _ests, users = world
    with db.write() as s:
        s.execute(update(User).where(User.email == users["admin"].email).values(locale="en"))
    pages = Pages(app).login(users["admin"])
    html = pages.get("/analises").get_data(as_text=True)
    assert "Credentialing analytics" in html and "Heatmap on the diagram" in html
