"""The dashboard counters (engine/dashboard/counts.py) stay equal to the rows they count.

Every kind of write that moves a dashboard row is made here — establishments created one
by one and by CSV import, moved to another UF, instances started, walked through stages,
cancelled, started again, started in bulk, the renewal process for the same establishment
— and after each one the stored counters must equal a count of the rows themselves, and the
dashboard summary read from the counters must equal the one computed by the live query.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from engine.dashboard import counts
from engine.dashboard import queries as dashboard
from engine.dashboard.models import StageCount
from engine.establishments import service as establishments_svc
from engine.runtime import bulk
from engine.runtime import instances as runtime_instances
from tests.support.builders import Flow
from tests.support.sql import statements

KEY = "credenciamento-rnds"


def _assert_in_step(db, org_id: int, admin) -> None:
    with db.read() as s:
        assert counts.differences(s, org_id) == {}
        for filters in (
            dashboard.Filters(),
            dashboard.Filters(uf="SP"),
            dashboard.Filters(portfolio="REL"),
            dashboard.Filters(status="running"),
            dashboard.Filters(status="none"),
            dashboard.Filters(uf="PR", portfolio="RIA", stage="Homologação"),
            dashboard.Filters(stage=dashboard.NOT_STARTED),
            dashboard.Filters(stage="Preparação", uf="SP"),
        ):
            assert dashboard._counted(admin.actor, org_id, filters)
            from_counters = dashboard.summary(s, admin.actor, org_id, filters)
            _rows, total_from_counters = dashboard.page(s, admin.actor, org_id, filters)
            original = dashboard._counted
            dashboard._counted = lambda *a: False
            try:
                from_rows = dashboard.summary(s, admin.actor, org_id, filters)
                rows, total_from_rows = dashboard.page(s, admin.actor, org_id, filters)
            finally:
                dashboard._counted = original
            assert from_counters.counts == from_rows.counts, filters
            assert from_counters.total == from_rows.total
            assert total_from_counters == total_from_rows == len(rows), filters


def test_counters_follow_every_kind_of_write(make, db, client):
    org = make.org()
    admin = make.user("sesa-pr", "admin")
    ests = [make.establishment(org, uf=uf) for uf in ("PR", "PR", "SP", "SP", "BA")]
    _assert_in_step(db, org, admin)
    with db.read() as s:
        assert counts.stored(s, org) == {("PR", "", "", "none"): 2, ("SP", "", "", "none"): 2,
                                         ("BA", "", "", "none"): 1}  # fmt: skip

    # Starts: REL and RIA for ests[0], REL for ests[1].
    with db.write() as s:
        first = runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                       establishment_cnes=ests[0].cnes, portfolio_code="REL")  # fmt: skip
        runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                               establishment_cnes=ests[0].cnes, portfolio_code="RIA")  # fmt: skip
        second = runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                        establishment_cnes=ests[1].cnes, portfolio_code="REL")  # fmt: skip
        first_id, second_id = first.id, second.id
    _assert_in_step(db, org, admin)

    # Walk ests[0]'s REL instance into another stage, through the API.
    users = {
        "admin": admin,
        "Gestor": make.user("sesa-pr", "gestor", ests[0].cnes),
        "Integrador": make.user("sesa-pr", "integrador", ests[0].cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
    }
    ops = client.get("/api/v1/portfolios", headers=admin.headers).json["items"]
    flow = Flow(client, users, first_id, ests[0], next(p for p in ops if p["code"] == "REL"))
    stage0 = flow.instance()["stage"]
    for element in ("obter_certificado_digital", "criar_conta_govbr", "ambientar_servicos",
                    "solicitar_acesso_homologacao"):  # fmt: skip
        flow.complete(element)
    assert flow.instance()["stage"] != stage0
    _assert_in_step(db, org, admin)

    # Cancel ests[1]'s instance, then start it again: the new one replaces it.
    with db.write() as s:
        runtime_instances.cancel(s, admin.actor, second_id, "Aberto com o portfólio errado.")
    _assert_in_step(db, org, admin)
    with db.write() as s:
        runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                               establishment_cnes=ests[1].cnes, portfolio_code="REL")  # fmt: skip
    _assert_in_step(db, org, admin)

    # Move establishments to another UF: one with instances, one without.
    for est, uf in ((ests[0], "SP"), (ests[4], "PR")):
        with db.write() as s:
            establishments_svc.update(s, admin.actor, org, est.cnes,
                                        {**est.register_data(), "uf": uf})  # fmt: skip
    _assert_in_step(db, org, admin)

    # Bulk start of REL for everyone not running it (SQLite: one by one; PostgreSQL: COPY).
    started = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL")
    assert started.started == 3
    _assert_in_step(db, org, admin)


def test_import_creates_moves_and_keeps_counters_in_step(make, db):
    import random

    from engine import identifiers
    from engine.establishments import service as establishments

    org = make.org()
    admin = make.user("sesa-pr", "admin")
    est = make.establishment(org, uf="PR")
    with db.write() as s:
        stage = runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                       establishment_cnes=est.cnes, portfolio_code="REL").stage  # fmt: skip
    rng = random.Random(99)
    moved = {**est.register_data(), "uf": "SP", "municipio": "Campinas"}
    new = {**moved, "cnes": identifiers.generate_cnes(rng), "cnpj": identifiers.generate_cnpj(rng),
           "uf": "AM", "municipio": "Manaus"}  # fmt: skip
    columns = ("cnes", "cnpj", "razao_social", "nome_fantasia", "uf", "municipio", "cep",
               "endereco", "telefone", "email")  # fmt: skip
    text = "\n".join([";".join(columns)] + [";".join(str(row.get(c) or "") for c in columns)
                                             for row in (moved, new)]) + "\n"  # fmt: skip
    with db.write() as s:
        report = establishments.import_csv(s, admin.actor, org, text)
    assert (report.created, report.updated) == (1, 1)
    _assert_in_step(db, org, admin)
    with db.read() as s:
        assert counts.stored(s, org) == {("SP", stage, "REL", "running"): 1,
                                         ("AM", "", "", "none"): 1}  # fmt: skip


def test_recount_rebuilds_lost_counters(make, db):
    n = 3
    org = make.org()
    admin = make.user("sesa-pr", "admin")
    for _ in range(n):
        make.establishment(org, uf="RS")
    with db.write() as s:
        s.execute(StageCount.__table__.delete().where(StageCount.org_id == org))
    with db.read() as s:
        assert counts.differences(s, org) == {("RS", "", "", "none"): (0, n)}
    with db.write() as s:
        counts.recompute(s, org)
    _assert_in_step(db, org, admin)


def test_sqlite_moves_the_counters_in_the_instances_own_update(make, db):
    """On SQLite a trigger moves the counters when a running instance's stage or status
    changes: a cancel writes no counter statement of its own, and an UPDATE from any SQL
    session keeps them in step too."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL writes a transaction's counters in one batch before commit")
    org = make.org()
    admin = make.user("sesa-pr", "admin")
    ests = [make.establishment(org, uf="PR") for _ in range(2)]
    with db.write() as s:
        ids = [
            runtime_instances.start_instance(s, admin.actor, org_id=org, process_key=KEY,
                                             establishment_cnes=est.cnes,
                                             portfolio_code="REL").id
            for est in ests
        ]  # fmt: skip
    with db.read() as s:
        [(stage, _n)] = {(k[1], n) for k, n in counts.stored(s, org).items() if n}
    with statements(db) as seen, db.write() as s:
        runtime_instances.cancel(s, admin.actor, ids[0], "Aberto com o portfólio errado.")
    assert not [sql for sql in seen if "stage_count" in sql]
    with db.write() as s:
        s.execute(text("UPDATE process_instance SET stage = 'Homologação' WHERE id = :id"),
                  {"id": ids[1]})  # fmt: skip
    _assert_in_step(db, org, admin)
    with db.read() as s:
        assert {k: n for k, n in counts.stored(s, org).items() if n} == {
            ("PR", stage, "REL", "cancelled"): 1,
            ("PR", "Homologação", "REL", "running"): 1,
        }
