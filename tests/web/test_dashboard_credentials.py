"""The dashboard and the establishment page never lose a credential's status.

An establishment carried to production keeps one dashboard row while a change of its
credential runs — the row shows both, "Produção · Alteração em análise" — and the CSV line says
the same; a child establishment shows the credential that covers it; the establishment page
lists its credentials and no longer offers a credenciamento for the portfolio it holds. On both
databases, through the pages.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from engine.credentials import service as credentials
from engine.dashboard import counts
from engine.dashboard import queries as dashboard
from engine.runtime.models import ProcessInstance
from tests.support.builders import Flow, cast

TO_PRODUCTION = (
    "obter_certificado_digital", "criar_conta_govbr", "ambientar_servicos",
    "solicitar_acesso_homologacao", "desenvolver_conector", "avaliar_solicitacao_acesso",
    "obter_dados_acesso", "verificar_conformidade", "registrar_evidencias",
    "solicitar_acesso_producao", "avaliar_solicitacao_producao", "colocar_em_producao",
)  # fmt: skip
CHANGE = {
    "ip_inicial": "200.130.20.1",
    "ip_final": "200.130.20.30",
    "sistema_nome": "ProntoHosp",
    "sistema_versao": "5.0",
    "operacoes": [{"operacao": "/token", "metodo": "POST"}],
    "justificativa": "Novo provedor de internet.",
    "confirmacao": True,
}


def text_of(html: str) -> str:
    """The page as a person reads it: tags dropped, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def row_of(html: str, cnes: str) -> str:
    """The text of the dashboard table's row of an establishment (exactly one)."""
    rows = [
        r for r in re.findall(r"<tr[ >].*?</tr>", html, re.S) if f'name="cnes" value="{cnes}"' in r
    ]
    assert len(rows) == 1, rows
    return text_of(rows[0])


def csv_rows(pages, query: str = "") -> list[dict[str, str]]:
    res = pages.get(f"/painel/exportar.csv{query}")
    assert res.status_code == 200
    return list(csv.DictReader(io.StringIO(res.get_data(as_text=True).lstrip("\ufeff")),
                               delimiter=";"))  # fmt: skip


def start_change(client, users, cnes: str, credential_id: int) -> int:
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "alteracao-credencial",
            "establishment": cnes,
            "portfolio": "RIRA",
            "credential": credential_id,
        },  # fmt: skip
        headers=users["Gestor"].headers,
    )
    assert res.status_code == 201, res.json
    return res.json["id"]


def complete(client, users, instance_id: int, element: str, data: dict) -> None:
    tasks = client.get(
        f"/api/v1/tasks?instance={instance_id}&state=ready", headers=users["admin"].headers
    ).json["items"]
    [task] = [t for t in tasks if t["element"] == element]
    res = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data},
                      headers=users[task["lane"]].headers)  # fmt: skip
    assert res.status_code == 200, res.json


def assert_counters_in_step(db, org: int, admin) -> None:
    """The maintained counters equal the rows, and the page's total equals its rows."""
    with db.read() as s:
        assert counts.differences(s, org) == {}
        rows, total = dashboard.page(s, admin.actor, org)
        assert total == len(rows)
        summary = dashboard.summary(s, admin.actor, org)
        assert summary.total == total


@pytest.fixture
def people(make):
    team = cast(make, uf="PR", others=({"uf": "PR"}, {"uf": "PR"}))
    return team, team.lanes


def test_production_and_a_change_in_progress_share_one_row(people, db, client, pages):
    team, users = people
    org, est, admin = team.org, team.est, team.users["admin"]
    res = client.post("/api/v1/instances", json={"process": "credenciamento-rnds",
                      "establishment": est.cnes, "portfolio": "RIRA"},
                      headers=admin.headers)  # fmt: skip
    assert res.status_code == 201, res.json
    portfolios = client.get("/api/v1/portfolios", headers=admin.headers).json["items"]
    flow = Flow(client, users, res.json["id"], est,
                next(p for p in portfolios if p["code"] == "RIRA"))  # fmt: skip
    for element in TO_PRODUCTION:
        flow.complete(element)
    assert flow.instance()["stage"] == "Produção"
    with db.read() as s:
        credential_id = s.get(ProcessInstance, flow.instance_id).credential_id
    assert credential_id is not None
    assert_counters_in_step(db, org, admin)

    change_id = start_change(client, users, est.cnes, credential_id)
    assert_counters_in_step(db, org, admin)
    complete(client, users, change_id, "solicitar_alteracao", CHANGE)
    assert_counters_in_step(db, org, admin)

    page = pages(admin)
    html = page.get("/painel").get_data(as_text=True)
    row = row_of(html, est.cnes)  # one row: the change makes none of its own
    assert "Produção · Alteração em análise" in row
    assert f'href="/credenciais/{credential_id}"' in html
    assert f'href="/processos/{change_id}"' in html  # the stage links to the change
    # the change's stages are no cards of the dashboard: its instances are no rows
    assert "Pedido de alteração" not in text_of(html.split("etapas-titulo")[1].split("</ul>")[0])

    # filters: by the row's stage and by the credential's status
    stage = page.get("/painel?etapa=Produção").get_data(as_text=True)
    assert "Produção · Alteração em análise" in row_of(stage, est.cnes)
    assert f"CNES {est.cnes}" in page.get("/painel?credencial=producao").get_data(as_text=True)
    assert f"CNES {est.cnes}" not in page.get("/painel?credencial=homologacao").get_data(
        as_text=True
    )

    lines = [r for r in csv_rows(page) if r["cnes"] == est.cnes]
    assert len(lines) == 1
    [line] = lines
    assert (line["etapa"], line["situacao_credencial"], line["em_andamento"]) == (
        "Produção", "Produção", "Alteração em análise"
    )  # fmt: skip
    assert (line["credencial"], line["instancia_em_andamento"]) == (
        str(credential_id), str(change_id)
    )  # fmt: skip
    assert line["identificador_solicitante"] == "40111"

    # the establishment page lists the credential and offers no credenciamento for RIRA
    detail = page.get(f"/estabelecimentos/{est.cnes}").get_data(as_text=True)
    section = detail.split('id="cred-titulo"')[1].split("</section>")[0]
    assert f'href="/credenciais/{credential_id}"' in section
    assert "RIRA" in section and "Produção" in section and "40111" in section
    assert 'value="RIRA"' not in detail


def test_a_child_shows_the_credential_that_covers_it(people, db, client, pages):
    team, users = people
    org, admin = team.org, team.users["admin"]
    principal, child = team.est, team.others[0]
    with db.write() as s:
        credential = credentials.register(
            s, admin.actor, org_id=org, establishment_cnes=principal.cnes,
            portfolio_code="RIRA", status="producao", requester_id="40111",
            values={"children": [child.cnes]},
        )  # fmt: skip
        credential_id = credential.id
    change_id = start_change(client, users, principal.cnes, credential_id)
    assert_counters_in_step(db, org, admin)
    with db.read() as s:
        stage = s.get(ProcessInstance, change_id).stage

    page = pages(admin)
    html = page.get("/painel").get_data(as_text=True)
    # a credential brought by import, without a credenciamento here: its status, and the change
    assert f"Produção · {stage}" in row_of(html, principal.cnes)
    assert f"Coberto pela credencial de CNES {principal.cnes}" in row_of(html, child.cnes)
    assert "Não iniciado" not in row_of(html, child.cnes)
    assert "Não iniciado" in row_of(html, team.others[1].cnes)

    by_cnes = {r["cnes"]: r for r in csv_rows(page)}
    assert by_cnes[principal.cnes]["situacao_credencial"] == "Produção"
    assert by_cnes[principal.cnes]["em_andamento"] == stage
    assert by_cnes[child.cnes]["etapa"] == f"Coberto pela credencial de CNES {principal.cnes}"
    assert by_cnes[child.cnes]["credencial"] == str(credential_id)

    detail = page.get(f"/estabelecimentos/{child.cnes}").get_data(as_text=True)
    section = detail.split('id="cred-titulo"')[1].split("</section>")[0]
    assert f"Coberto pela credencial de CNES {principal.cnes}" in text_of(section)
    assert f'href="/credenciais/{credential_id}"' in section
    own = page.get(f"/estabelecimentos/{principal.cnes}").get_data(as_text=True)
    assert f'href="/credenciais/{credential_id}"' in own
    assert 'value="RIRA"' not in own
    # another portfolio is still offered
    assert re.search(r'<option value="(?!RIRA)[A-Z]+">', own)


def test_a_page_reads_the_credentials_in_batches(make, db):
    """As many statements for a page of many credentials as for a page of one."""
    from sqlalchemy import event

    team = cast(make, uf="PR", others=tuple({"uf": "PR"} for _ in range(5)))
    org, admin = team.org, team.users["admin"]

    def register(principal, child, requester_id: str) -> None:
        with db.write() as s:
            credentials.register(
                s, admin.actor, org_id=org, establishment_cnes=principal.cnes,
                portfolio_code="RIRA", status="producao", requester_id=requester_id,
                values={"children": [child.cnes]},
            )  # fmt: skip

    def statements() -> tuple[int, list[tuple[str, str]]]:
        seen: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            with db.read() as s:
                rows, _total = dashboard.page(s, admin.actor, org)
                labels = [(r.credential_label, r.stage_label) for r in rows]
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen), labels

    register(team.est, team.others[0], "40111")
    one, labels = statements()
    assert sum(1 for label, _ in labels if label == "Produção") == 1
    register(team.others[1], team.others[2], "40112")
    register(team.others[3], team.others[4], "40113")
    three, labels = statements()
    assert sum(1 for label, _ in labels if label == "Produção") == 3
    assert sum(1 for _, stage in labels if stage.startswith("Coberto pela credencial")) == 3
    assert three == one
