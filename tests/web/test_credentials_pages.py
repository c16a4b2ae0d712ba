"""Credenciais: the list (filters, counts by status, CSV), one credential's page (fields,
children, certificate, timeline), the actions each role is offered and starting one of them
from the page."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.audit.models import AuditEvent
from engine.completion import service as completion
from engine.credentials import queries
from engine.credentials import service as credentials
from engine.credentials.models import Credential
from engine.db import utcnow
from engine.establishments.models import Establishment
from engine.runtime.models import READY, ProcessInstance, Task
from tests.support.builders import Cast, cast
from tests.support.pages import SETTINGS

TOKEN = {"operacao": "/token", "metodo": "POST"}
BUNDLE = {"operacao": "/Bundle", "metodo": "POST"}
ROW_LINK = re.compile(r'<td data-label="[^"]*"><a href="/credenciais/(\d+)">')


@dataclass
class Held:
    people: Cast
    child: Establishment
    azul: Establishment  # another establishment of the organization, nobody's
    sc: Establishment  # one in another UF
    main: int  # RIRA, produção, on the gestor's establishment; certificate ends in 30 days
    blue: int  # RIRA, homologação, on ``azul``; certificate ends in 400 days
    south: int  # RIRA, suspensa, in SC
    foreign: int  # another organization's


@pytest.fixture
def held(make, db) -> Held:
    people = cast(
        make,
        uf="PR",
        others=(
            {"uf": "PR", "municipio": "Londrina"},
            {"uf": "PR", "municipio": "Maringá", "razao_social": '=HYPERLINK("x") <b>Azul</b>'},
            {"uf": "SC", "municipio": "Joinville"},
        ),
    )
    child, azul, sc = people.others
    other_org = make.org("sesa-sp", "Secretaria da Saúde de São Paulo")
    other_est = make.establishment(other_org, uf="SP", municipio="Campinas")
    other_admin = make.user("sesa-sp", "admin")
    admin = people.admin.actor
    now = utcnow()
    with db.write() as s:
        main = credentials.register(
            s, admin, org_id=people.org, establishment_cnes=people.est.cnes,
            portfolio_code="RIRA", status="producao", requester_id="40111",
            request_numbers=["3804/2024"],
            values={"ip_start": "200.17.0.1", "ip_end": "200.17.0.10", "system_name": "LIS",
                    "system_version": "4.2", "operations": [TOKEN, BUNDLE],
                    "gestor_name": "Maria da Silva", "gestor_email": "maria@exemplo.gov.br",
                    "children": [child.cnes]},
        )  # fmt: skip
        blue = credentials.register(
            s, admin, org_id=people.org, establishment_cnes=azul.cnes, portfolio_code="RIRA",
            status="homologacao", requester_id="40222",
        )  # fmt: skip
        south = credentials.register(
            s, admin, org_id=people.org, establishment_cnes=sc.cnes, portfolio_code="RIRA",
            status="suspensa", requester_id="40333",
        )  # fmt: skip
        foreign = credentials.register(
            s, other_admin.actor, org_id=other_org, establishment_cnes=other_est.cnes,
            portfolio_code="RIRA", status="producao", requester_id="50111",
        )  # fmt: skip
        # The certificates' ends, as a bound certificate would set them.
        main.certificate_sha256, main.certificate_cnpj = "ab" * 32, people.est.cnpj
        main.certificate_not_after = now + timedelta(days=30)
        blue.certificate_sha256 = "cd" * 32
        blue.certificate_not_after = now + timedelta(days=400)
        ids = main.id, blue.id, south.id, foreign.id
    return Held(people, child, azul, sc, *ids)


def _ids(html: str) -> set[int]:
    return {int(i) for i in ROW_LINK.findall(html)}


def _count(html: str, status: str) -> int:
    found = re.search(rf'data-status="{status}">.*?<strong>(\d+)</strong>', html, re.S)
    assert found, status
    return int(found.group(1))


def _kinds(html: str) -> dict[str, bool]:
    """The action buttons on a credential's page: kind → enabled."""
    return {
        kind: "disabled" not in attrs
        for attrs, kind in (
            (m.group(0), m.group(1)) for m in re.finditer(r'data-kind="(\w+)"[^>]*>', html)
        )
    }


# ------------------------------------------------------------------ the list


def test_list_counts_and_each_filter(held, pages):
    admin = pages(held.people.admin)
    res = admin.get("/credenciais")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert _ids(html) == {held.main, held.blue, held.south}  # not the other organization's
    assert (_count(html, "producao"), _count(html, "homologacao"), _count(html, "suspensa")) == (
        1, 1, 1,
    )  # fmt: skip
    assert _count(html, "encerrada") == 0
    # the name is shown escaped
    assert "&lt;b&gt;Azul&lt;/b&gt;" in html and "<b>Azul</b>" not in html
    # a count is a link that filters by its status
    assert 'href="/credenciais?situacao=homologacao"' in html
    assert 'href="/credenciais/importar"' in html and 'href="/credenciais.csv"' in html
    # the expiring certificate is highlighted, the other not
    assert "(vencendo)" in html
    cases = {
        "situacao=homologacao": {held.blue},
        "uf=SC": {held.south},
        "uf=pr": {held.main, held.blue},
        "portfolio=RIRA": {held.main, held.blue, held.south},
        "portfolio=REL": set(),
        "identificador=40111": {held.main},
        "vencendo_em=60": {held.main},
        "vencendo_em=500": {held.main, held.blue},
        f"q={held.azul.cnes[:5]}": {held.blue},
        "q=azul": {held.blue},
        "q=AZUL&situacao=producao": set(),
    }
    for query, expected in cases.items():
        res = admin.get(f"/credenciais?{query}")
        assert res.status_code == 200, query
        assert _ids(res.get_data(as_text=True)) == expected, query
    # the counts stay the organization's whole picture while filtering
    assert _count(admin.get("/credenciais?uf=SC").get_data(as_text=True), "producao") == 1


def test_running_process_is_shown_on_the_row(held, pages, db):
    gestor = pages(held.people.gestor)
    started = gestor.post("/processos/iniciar", {
        "process": "alteracao-credencial", "cnes": held.people.est.cnes, "portfolio": "RIRA",
        "credential": str(held.main)})  # fmt: skip
    instance_id = int(started.headers["Location"].rsplit("/", 1)[1])
    html = gestor.get("/credenciais").get_data(as_text=True)
    assert _ids(html) == {held.main}  # the scoped gestor sees its establishment's only
    assert f'href="/processos/{instance_id}">Alteração · Pedido de alteração</a>' in html


def test_list_pages(held, pages, monkeypatch):
    monkeypatch.setattr("web.ui.credentials.PAGE", 2)
    admin = pages(held.people.admin)
    first = admin.get("/credenciais").get_data(as_text=True)
    second = admin.get("/credenciais?pagina=2").get_data(as_text=True)
    assert "Página 1 de 2" in first and 'href="/credenciais?pagina=2"' in first
    assert len(_ids(first)) == 2 and len(_ids(second)) == 1
    assert _ids(first) | _ids(second) == {held.main, held.blue, held.south}


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("vencendo_em=abc", "vencendo_em", "Informe um número de dias."),
        ("vencendo_em=%C2%B2", "vencendo_em", "Informe um número de dias."),  # "²": a digit
        ("vencendo_em=99999", "vencendo_em", "Informe de 0 a 3650 dias."),
        ("situacao=ativa", "situacao", "Situação desconhecida."),
        ("uf=X", "uf", "Informe a sigla da UF."),
    ],
)
def test_a_bad_filter_is_told_at_its_field(held, pages, query, field, message):
    admin = pages(held.people.admin)
    res = admin.get(f"/credenciais?{query}")
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    error = re.search(rf'id="flt-{field}-erro"[^>]*>(.*?)</span>', html, re.S)
    assert error and message in error.group(1)
    assert _ids(html) == set()
    assert admin.get(f"/credenciais.csv?{query}").status_code == 422  # nor a broken CSV


def test_csv_export_with_the_filters_and_formula_safe(held, pages):
    admin = pages(held.people.admin)
    res = admin.get("/credenciais.csv?uf=PR")
    assert res.status_code == 200 and res.mimetype == "text/csv"
    assert "credenciais.csv" in res.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(res.get_data(as_text=True))))
    assert rows[0] == queries.CSV_HEADER
    by_id = {int(r[0]): dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert set(by_id) == {held.main, held.blue}
    main = by_id[held.main]
    assert main["cnes"] == held.people.est.cnes and main["situacao"] == "Produção"
    assert main["identificador_solicitante"] == "40111" and main["filhos"] == held.child.cnes
    assert main["ip_inicial"] == "200.17.0.1" and main["numeros_solicitacao"] == "3804/2024"
    assert by_id[held.blue]["estabelecimento"].startswith("'=HYPERLINK")  # not a formula
    only = list(csv.reader(io.StringIO(admin.get("/credenciais.csv?identificador=40333")
                                       .get_data(as_text=True))))  # fmt: skip
    assert [int(r[0]) for r in only[1:]] == [held.south]


# ------------------------------------------------------------------ one credential


def test_credential_page_shows_fields_children_certificate_and_history(held, pages):
    res = pages(held.people.auditor).get(f"/credenciais/{held.main}")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    for text in ("Produção", "40111", "3804/2024", "200.17.0.1", "200.17.0.10", "LIS",
                 "4.2", "Maria da Silva", "maria@exemplo.gov.br", "/Bundle", "ab" * 32,
                 "Credencial registrada"):  # fmt: skip
        assert text in html, text
    assert "O certificado vence em menos de 60 dias." in html
    # the child, registered here, links to its page
    assert f'href="/estabelecimentos/{held.child.cnes}">{held.child.cnes}</a>' in html
    assert held.child.razao_social in html
    assert _kinds(html) == {}  # the auditor starts nothing


def test_actions_offered_by_role(held, pages):
    url = f"/credenciais/{held.main}"
    people = held.people
    assert _kinds(pages(people.gestor).get(url).get_data(as_text=True)) == {
        "change": True, "withdrawal": True, "transfer": True, "renewal": True,
    }  # fmt: skip
    assert _kinds(pages(people.datasus).get(url).get_data(as_text=True)) == {"withdrawal": True}
    assert _kinds(pages(people.integrador).get(url).get_data(as_text=True)) == {"change": True}
    assert _kinds(pages(people.auditor).get(url).get_data(as_text=True)) == {}
    # a change needs production: not offered on a credential in homologation
    assert "change" not in _kinds(pages(people.admin).get(f"/credenciais/{held.blue}")
                                  .get_data(as_text=True))  # fmt: skip


def test_a_scoped_gestor_cannot_open_another_establishments_credential(held, pages, db):
    gestor = pages(held.people.gestor)
    assert gestor.get(f"/credenciais/{held.blue}").status_code == 403
    with db.read() as s:
        denied = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "denied.credential.read")
        ).all()
    assert [(e.entity_type, e.entity_id) for e in denied] == [("credential", str(held.blue))]
    # another organization's credential is simply not found, nor one that does not exist
    assert gestor.get(f"/credenciais/{held.foreign}").status_code == 404
    assert gestor.get("/credenciais/999999").status_code == 404


def _ready(db, instance_id: int, element: str) -> Task:
    with db.read() as s:
        task = s.scalar(
            select(Task).where(
                Task.instance_id == instance_id, Task.element_id == element, Task.state == READY
            )
        )
    assert task is not None, element
    return task


def test_start_from_the_page_links_the_instance_and_the_timeline_shows_it(held, pages, db):
    gestor = pages(held.people.gestor)
    form = {"process": "alteracao-credencial", "cnes": held.people.est.cnes,
            "portfolio": "RIRA", "credential": str(held.main)}  # fmt: skip
    assert gestor.post("/processos/iniciar", form, csrf=False).status_code == 400
    res = gestor.post("/processos/iniciar", form)
    assert res.status_code == 302 and "/processos/" in res.headers["Location"]
    instance_id = int(res.headers["Location"].rsplit("/", 1)[1])
    assert "Processo iniciado: Alteração de credencial." in gestor.get(
        res.headers["Location"]
    ).get_data(as_text=True)
    with db.read() as s:
        assert s.get(ProcessInstance, instance_id).credential_id == held.main
    # while it runs, the exclusive processes are shown blocked, the renewal is not
    page = gestor.get(f"/credenciais/{held.main}").get_data(as_text=True)
    assert _kinds(page) == {"change": False, "withdrawal": False, "transfer": False,
                            "renewal": True}  # fmt: skip
    assert "já há um processo em andamento" in page
    # a second one is refused back on the credential's page, with the reason
    again = gestor.post("/processos/iniciar", {**form, "process": "transferencia-titularidade"})
    assert again.headers["Location"].endswith(f"/credenciais/{held.main}")
    assert "Já há um processo de Alteração em andamento" in gestor.get(
        again.headers["Location"]
    ).get_data(as_text=True)
    # the change approved: the credential page tells what changed, de → para
    people = held.people
    with db.write() as s:
        task = _ready(db, instance_id, "solicitar_alteracao")
        completion.complete(s, people.gestor.actor, task.id, {
            "ip_inicial": "200.130.20.1", "ip_final": "200.130.20.30", "sistema_nome": "LIS",
            "sistema_versao": "5.0", "operacoes": [TOKEN], "justificativa": "Novo provedor.",
            "confirmacao": True}, settings=SETTINGS)  # fmt: skip
    with db.write() as s:
        task = _ready(db, instance_id, "avaliar_alteracao")
        completion.complete(s, people.datasus.actor, task.id, {
            "decision": "aprovada", "numero_solicitacao": "4836/2024",
            "operacoes_aprovadas": [TOKEN]}, settings=SETTINGS)  # fmt: skip
    html = pages(people.auditor).get(f"/credenciais/{held.main}").get_data(as_text=True)
    history = html[html.index('id="credencial-historico"') :]
    assert f'href="/processos/{instance_id}">Alteração de credencial #{instance_id}</a>' in history
    assert "IP inicial: 200.17.0.1 → 200.130.20.1" in history
    assert "Versão do sistema: 4.2 → 5.0" in history
    assert "Nº das solicitações: 3804/2024 → 3804/2024, 4836/2024" in history


def test_a_refused_start_goes_back_to_the_credential(held, pages, db):
    admin = pages(held.people.admin)
    # a change needs production; this one is in homologation
    res = admin.post("/processos/iniciar", {"process": "alteracao-credencial",
                                            "cnes": held.azul.cnes, "portfolio": "RIRA",
                                            "credential": str(held.blue)})  # fmt: skip
    assert res.headers["Location"].endswith(f"/credenciais/{held.blue}")
    html = admin.get(res.headers["Location"]).get_data(as_text=True)
    assert "este processo exige: Produção" in html
    with db.read() as s:
        assert (
            s.scalar(select(ProcessInstance.id).where(ProcessInstance.credential_id == held.blue))
            is None
        )


def test_datasus_withdrawal_starts_on_its_own_path(held, pages, db):
    datasus = pages(held.people.datasus)
    res = datasus.post("/processos/iniciar", {"process": "encerramento-credencial",
                                              "cnes": held.people.est.cnes, "portfolio": "RIRA",
                                              "credential": str(held.main)})  # fmt: skip
    assert res.status_code == 302 and "/processos/" in res.headers["Location"]
    instance_id = int(res.headers["Location"].rsplit("/", 1)[1])
    assert "Processo iniciado: Encerramento de credencial." in datasus.get(
        res.headers["Location"]
    ).get_data(as_text=True)
    _ready(db, instance_id, "registrar_encerramento")  # DATASUS records it itself
    with db.read() as s:
        assert s.get(ProcessInstance, instance_id).credential_id == held.main
        assert s.get(Credential, held.main).status == "producao"  # nothing ended yet


def test_the_pages_in_english(held, pages):
    gestor = pages(held.people.gestor)
    gestor.post("/idioma", {"locale": "en", "next": "/credenciais"})
    listing = gestor.get("/credenciais").get_data(as_text=True)
    assert "Credentials by status" in listing and "Certificate expires within (days)" in listing
    page = gestor.get(f"/credenciais/{held.main}").get_data(as_text=True)
    for text in ("Request a change", "End credential", "Transfer ownership", "Renew certificate",
                 "Bound certificate", "Child establishments"):  # fmt: skip
        assert text in page, text
    bad = gestor.get("/credenciais?vencendo_em=x").get_data(as_text=True)
    assert "Enter a number of days." in bad
