"""Importing existing credentials from a CSV (engine/credentials/imports.py), on both
databases: each line is registered in a savepoint of its own; a refused line says why at its
column and changes nothing; the good ones are kept."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from engine.audit.models import AuditEvent
from engine.credentials import imports
from engine.credentials.models import Credential, CredentialChild
from engine.errors import Forbidden, Invalid

HEADER = (
    "cnes,portfolio,identificador,situacao,data_homologacao,data_producao,numero_solicitacao,"
    "ip_inicial,ip_final,sistema_nome,sistema_versao,filhos,gestor_nome,gestor_cpf,gestor_email"
)


def _csv(*lines: str, header: str = HEADER) -> str:
    return "\n".join((header, *lines)) + "\n"


def _run(db, actor, org, text):
    with db.write() as s:
        return imports.import_csv(s, actor, org, text)


def _credentials(db, org) -> dict[str, Credential]:
    from engine.establishments.models import Establishment

    with db.read() as s:
        rows = s.execute(
            select(Establishment.cnes, Credential)
            .join(Credential, Credential.establishment_id == Establishment.id)
            .where(Credential.org_id == org)
        ).all()
        for _, credential in rows:
            s.expunge(credential)
    return dict(rows)


def test_good_lines_are_created_and_bad_ones_refused_at_their_column(make, cast, db):
    org, est, admin = cast.org, cast.est, cast.admin.actor
    child, second, third = (make.establishment(org) for _ in range(3))
    far = make.establishment(org, uf="SC", municipio="Florianópolis")
    text = _csv(
        f"{est.cnes},RIRA,40111,Produção,10/02/2025,2025-03-18,3804/2024,200.10.1.1,"
        f"200.10.1.20,Prontuário X,2.1,{child.cnes},Maria Souza,52998224725,maria@exemplo.gov.br",
        f"{second.cnes},rira,40222,homologacao,01/04/2025,,,,,,,,,,",
        f"{third.cnes},RIRA,40333,aprovada,,,,,,,,,,,",  # bad status
        f"{third.cnes},RIRA,40111,Produção,,,,,,,,,,,",  # identificador of line 2
        "9999999,RIRA,40444,Produção,,,,,,,,,,,",  # CNES not registered
        f"{third.cnes},RIRA,40555,Produção,,,,,,,,{far.cnes},,,",  # child in SC
        f"{third.cnes},XYZ,40666,Produção,31/02/2025,,,10.0.0.x,,,,,,123,",  # several errors
    )

    result = _run(db, admin, org, text)

    assert [(r.line, r.created) for r in result.lines] == [
        (2, True), (3, True), (4, False), (5, False), (6, False), (7, False), (8, False),
    ]  # fmt: skip
    assert (result.created, result.refused) == (2, 5)
    errors = {r.line: r.errors for r in result.lines}
    assert "Homologação" in errors[4]["situacao"]
    assert "40111" in errors[5]["identificador"] and "credencial nº" in errors[5]["identificador"]
    assert "9999999" in errors[6]["cnes"]
    assert "SC" in errors[7]["filhos"]
    assert set(errors[8]) == {"portfolio", "data_homologacao", "ip_inicial", "gestor_cpf"}

    made = _credentials(db, org)
    assert set(made) == {est.cnes, second.cnes}  # the refused lines left nothing
    prod = made[est.cnes]
    assert (prod.status, prod.portfolio_code, prod.uf, prod.origin) == (
        "producao", "RIRA", est.uf, "import")  # fmt: skip
    assert (prod.homologation_on, prod.production_on) == (date(2025, 2, 10), date(2025, 3, 18))
    assert prod.requester_id == "40111" and prod.request_numbers == ["3804/2024"]
    assert (prod.ip_start, prod.ip_end) == ("200.10.1.1", "200.10.1.20")
    assert (prod.system_name, prod.system_version) == ("Prontuário X", "2.1")
    assert (prod.gestor_name, prod.gestor_cpf, prod.gestor_email) == (
        "Maria Souza", "52998224725", "maria@exemplo.gov.br")  # fmt: skip
    homolog = made[second.cnes]
    assert (homolog.status, homolog.portfolio_code) == ("homologacao", "RIRA")
    with db.read() as s:
        children = s.execute(select(CredentialChild.credential_id, CredentialChild.cnes,
                                    CredentialChild.establishment_id)).all()  # fmt: skip
        summary = s.scalar(select(AuditEvent).where(AuditEvent.action == "credential.imported"))
        registered = s.scalar(
            select(func.count()).where(AuditEvent.action == "credential.registered")
        )
    assert children == [(prod.id, child.cnes, child.id)]
    assert summary.data == {"lines": 7, "created": 2, "refused": 5}
    assert registered == 2


def test_bom_and_semicolons(make, cast, db):
    org, est, admin = cast.org, cast.est, cast.admin.actor
    text = "\ufeff" + _csv(
        f"{est.cnes};RIRA;40111;Em análise para produção;10/02/2025;;;;;;;;;;",
        header=HEADER.replace(",", ";").upper(),
    )

    result = _run(db, admin, org, text)

    assert [r.created for r in result.lines] == [True]
    assert _credentials(db, org)[est.cnes].status == "em_analise_producao"


def test_a_second_line_for_the_same_credential_is_refused(make, cast, db):
    org, est, admin = cast.org, cast.est, cast.admin.actor
    text = _csv(f"{est.cnes},RIRA,40111,Produção,,,,,,,,,,,",
                f"{est.cnes},RIRA,40112,Produção,,,,,,,,,,,")  # fmt: skip
    result = _run(db, admin, org, text)
    assert [r.created for r in result.lines] == [True, False]
    assert "já tem credencial" in result.lines[1].errors["cnes"]


def test_a_file_without_the_columns_or_a_non_admin_is_refused(make, cast, db):
    org, admin = cast.org, cast.admin.actor
    with pytest.raises(Invalid) as missing, db.write() as s:
        imports.import_csv(s, admin, org, "cnes,portfolio\n1234567,RIRA\n")
    assert "identificador" in missing.value.errors["arquivo"]
    with pytest.raises(Forbidden), db.write() as s:
        imports.import_csv(s, cast.gestor.actor, org, _csv())
    with db.read() as s:
        denied = s.scalar(select(AuditEvent).where(AuditEvent.action == "denied.credential.import"))
        assert denied is not None
        assert s.scalar(select(func.count()).select_from(Credential)) == 0


def test_the_cli_imports_a_file(cli, cast, db, tmp_path):
    path = tmp_path / "credenciais.csv"
    path.write_text(_csv(f"{cast.est.cnes},RIRA,40111,producao,,,,,,,,,,,",
                         "9999999,RIRA,40112,producao,,,,,,,,,,,"), encoding="utf-8-sig")  # fmt: skip

    out = cli("credentials", "import", str(path), "--org", "sesa-pr", code=1)

    assert "1 criada(s), 1 recusada(s)" in out
    assert "linha 3" in out and "9999999" in out
    assert _credentials(db, cast.org)[cast.est.cnes].status == "producao"
