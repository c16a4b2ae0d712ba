"""The bulk start of credenciamentos (engine/runtime/bulk.py) skips the establishments that
hold a live credential for the portfolio, as a single start refuses them; the report names
the credential per row."""

from __future__ import annotations

from sqlalchemy import select

from engine.credentials import service as credentials
from engine.credentials.models import Credential
from engine.runtime import bulk
from engine.runtime.models import ProcessInstance

KEY = "credenciamento-rnds"


def _world(make, db):
    """Four establishments: 0 in production for REL, 1 in homologation for REL, 2 with a
    credential of another portfolio (RIA), 3 with none."""
    org = make.org()
    ests = [make.establishment(org) for _ in range(4)]
    admin = make.user("sesa-pr", "admin")
    held = {}
    with db.write() as s:
        for i, code, status, ident in ((0, "REL", "producao", "70001"),
                                       (1, "REL", "homologacao", "70002"),
                                       (2, "RIA", "producao", "70003")):  # fmt: skip
            held[i] = credentials.register(
                s, admin.actor, org_id=org, establishment_cnes=ests[i].cnes, portfolio_code=code,
                status=status, requester_id=ident,
            ).id  # fmt: skip
    return org, ests, admin, held


def _started(db, org) -> set[int]:
    with db.read() as s:
        return set(
            s.scalars(
                select(ProcessInstance.establishment_id).where(
                    ProcessInstance.org_id == org, ProcessInstance.process_key == KEY
                )
            )
        )


def test_start_many_reports_each_establishment_with_a_live_credential(make, db):
    org, ests, admin, held = _world(make, db)
    cnes = [e.cnes for e in ests]

    report = bulk.start_many(db, admin.actor, org, cnes, process_key=KEY, portfolio_code="REL")

    assert [c for c, _ in report.started] == [cnes[2], cnes[3]]
    assert report.refused == [
        (cnes[0], f"CNES {cnes[0]} já tem credencial em Produção (nº {held[0]})."),
        (cnes[1], f"CNES {cnes[1]} já tem credencial em Homologação (nº {held[1]})."),
    ]
    assert _started(db, org) == {ests[2].id, ests[3].id}


def test_start_all_skips_establishments_with_a_live_credential(make, db):
    org, ests, admin, _ = _world(make, db)

    counts = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="REL", batch=3)

    assert (counts.started, counts.skipped, counts.credentialed) == (2, 2, 2)
    assert _started(db, org) == {ests[2].id, ests[3].id}
    # For RIA only establishment 2 holds one.
    again = bulk.start_all(db, admin.actor, org, process_key=KEY, portfolio_code="RIA")
    assert (again.started, again.credentialed) == (3, 1)


def test_an_ended_credential_does_not_hold_the_start_back(make, db):
    org, ests, admin, held = _world(make, db)
    with db.write() as s:
        s.get(Credential, held[0]).status = "encerrada"

    report = bulk.start_many(
        db, admin.actor, org, [ests[0].cnes, ests[1].cnes], process_key=KEY, portfolio_code="REL"
    )

    assert [c for c, _ in report.started] == [ests[0].cnes]
    assert [c for c, _ in report.refused] == [ests[1].cnes]
