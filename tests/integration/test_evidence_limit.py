"""The evidence size limit per portfolio (issue 14 item 13): 10 MB stays the default (leaflet
002), a portfolio may declare less in processes/portfolios.json (the portal's production
dialog says 5 MB); a larger evidence file is refused at the field with a message saying the
limit, nothing is written, and the task page shows the limit next to the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.demo import samples
from engine.establishments.models import Portfolio
from engine.establishments.service import load_portfolios
from engine.runtime.models import READY, Task
from tests.support.flows import flow
from tests.support.pages import Pages

MB = 1024 * 1024


def padded_pdf(size: int) -> bytes:
    """A well-formed PDF of about ``size`` bytes (an unreferenced stream pads it)."""
    body = b"0" * size
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Length " + str(len(body)).encode() + b" >>\nstream\n" + body + b"\nendstream",
    ]
    return samples.pdf(objects)


def set_limit(db, code: str, mb: int | None) -> None:
    with db.write() as s:
        s.scalar(select(Portfolio).where(Portfolio.code == code)).evidence_max_mb = mb


def to_evidence(f) -> None:
    for element in (
        "obter_certificado_digital",
        "criar_conta_govbr",
        "ambientar_servicos",
        "solicitar_acesso_homologacao",
        "desenvolver_conector",
        "avaliar_solicitacao_acesso",
        "obter_dados_acesso",
        "verificar_conformidade",
    ):
        f.complete(element)


def test_a_portfolio_limit_refuses_a_larger_evidence_at_the_field(client, world, db, app):
    set_limit(db, "RIRA", 1)
    f = flow(client, world)
    to_evidence(f)
    big = f.upload(padded_pdf(int(1.5 * MB)), "validador.pdf")
    small = f.upload(samples.tiny_pdf(), "cabecalho.pdf")
    data = {"evidencias": [small, big], "descricao": "Validador e cabeçalho."}
    res = f.complete("registrar_evidencias", data=data, expect=422)
    message = res.json["errors"]["evidencias.1"]
    assert "limite de evidências deste portfólio é 1 MB" in message and "1,5 MB" in message
    assert "evidencias.0" not in res.json["errors"]
    assert "registrar_evidencias" in f.ready_elements()  # nothing was completed
    # the page shows the limit next to the field
    with db.read() as s:
        task = s.scalar(
            select(Task).where(
                Task.instance_id == f.instance_id,
                Task.element_id == "registrar_evidencias",
                Task.state == READY,
            )
        )
    page = Pages(app).login(world["users"]["Integrador"])
    html = page.get(f"/tarefas/{task.id}").get_data(as_text=True)
    assert "PDF ou PNG, até 1 MB por arquivo." in html
    # within the limit it goes through
    f.complete("registrar_evidencias", data={**data, "evidencias": [small]})


def test_without_a_portfolio_limit_the_upload_limit_applies(client, world, db):
    set_limit(db, "RIRA", None)
    f = flow(client, world)
    to_evidence(f)
    big = f.upload(padded_pdf(int(1.5 * MB)), "validador.pdf")
    f.complete("registrar_evidencias", data={"evidencias": [big], "descricao": "Validador."})


def test_portfolios_json_declares_the_limit(app, db, tmp_path: Path):
    path = tmp_path / "portfolios.json"
    entry = {"code": "RIRA", "name": "Outro nome", "operations": [], "evidence_max_mb": 5}
    path.write_text(json.dumps([entry]), encoding="utf-8")
    with db.write() as s:
        load_portfolios(s, path)  # RIRA exists: only its limit follows the file
        row = s.scalar(select(Portfolio).where(Portfolio.code == "RIRA"))
        assert row.evidence_max_mb == 5 and row.name != "Outro nome"
        assert row.evidence_limit(10 * MB) == 5 * MB
        assert row.evidence_limit(2 * MB) == 2 * MB  # never above the upload limit
    path.write_text(json.dumps([{**entry, "evidence_max_mb": "5"}]), encoding="utf-8")
    with db.write() as s, pytest.raises(ValueError, match="evidence_max_mb"):
        load_portfolios(s, path)


def test_the_limit_is_read_with_the_task(client, world, db):
    """The completion reads the portfolio's limit in its first statement, with the task: no
    query of the portfolio of its own, and the limit still refuses a larger file."""
    from sqlalchemy import event

    set_limit(db, "RIRA", 1)
    f = flow(client, world)
    to_evidence(f)
    big = f.upload(padded_pdf(int(1.5 * MB)), "validador.pdf")
    seen: list[str] = []

    def statement(conn, cursor, sql, *args) -> None:
        seen.append(" ".join(sql.split()))

    event.listen(db.engine, "before_cursor_execute", statement)
    try:
        res = f.complete("registrar_evidencias", data={"evidencias": [big]}, expect=422)
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
    assert "limite de evidências deste portfólio é 1 MB" in res.json["errors"]["evidencias.0"]
    portfolio = [s for s in seen if s.startswith("SELECT") and "portfolio" in s]
    assert len(portfolio) == 1 and "FROM task" in portfolio[0], portfolio
