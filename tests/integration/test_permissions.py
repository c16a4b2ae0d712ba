"""Lanes, establishments and organizations: who may do what, and every denial is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.audit import failures
from engine.audit.models import AuditEvent, AuthFailureCount
from tests.support.builders import Flow


@pytest.fixture
def two_orgs(make, client):
    org = make.org("sesa-pr", "SESA PR")
    other = make.org("sms-rj", "SMS Rio")
    est = make.establishment(org, uf="PR")
    sibling = make.establishment(org, uf="PR")
    far = make.establishment(other, uf="RJ")
    users = {
        "admin": make.user("sesa-pr", "admin"),
        "Gestor": make.user("sesa-pr", "gestor", est.cnes),
        "Integrador": make.user("sesa-pr", "integrador", est.cnes),
        "DATASUS": make.user("sesa-pr", "datasus"),
        "auditor": make.user("sesa-pr", "auditor"),
        "sibling_gestor": make.user("sesa-pr", "gestor", sibling.cnes),
        "other_admin": make.user("sms-rj", "admin"),
        "other_datasus": make.user("sms-rj", "datasus"),
        "other_gestor": make.user("sms-rj", "gestor", far.cnes),
    }
    res = client.post(
        "/api/v1/instances",
        json={"process": "credenciamento-rnds", "establishment": est.cnes, "portfolio": "RIRA"},
        headers=users["admin"].headers,
    )
    assert res.status_code == 201
    portfolios = client.get("/api/v1/portfolios", headers=users["admin"].headers).json["items"]
    rira = next(p for p in portfolios if p["code"] == "RIRA")
    return {
        "est": est,
        "far": far,
        "users": users,
        "instance": res.json["id"],
        "flow": Flow(client, users, res.json["id"], est, rira),
    }


def _denials(db) -> list[AuditEvent]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent).where(AuditEvent.action.like("denied.%")).order_by(AuditEvent.id)
            )
        )


LANE_OUTSIDERS = {
    "obter_certificado_digital": ["Integrador", "DATASUS", "admin", "auditor", "sibling_gestor"],
    "ambientar_servicos": ["Gestor", "DATASUS", "admin", "auditor"],
}


@pytest.mark.parametrize("element", sorted(LANE_OUTSIDERS))
def test_each_lane_refuses_other_roles(client, db, two_orgs, element):
    task = two_orgs["flow"].task(element)
    for name in LANE_OUTSIDERS[element]:
        before = len(_denials(db))
        user = two_orgs["users"][name]
        for action in ("claim", "complete"):
            res = client.post(
                f"/api/v1/tasks/{task['id']}/{action}", json={"data": {}}, headers=user.headers
            )
            assert res.status_code == 403, (name, action, res.json)
        denials = _denials(db)[before:]
        assert [d.action for d in denials] == ["denied.task.claim", "denied.task.complete"]
        assert denials[-1].actor == user.email and denials[-1].entity_id == task["id"]
    # Nothing changed: the task is still ready and unassigned.
    assert two_orgs["flow"].task(element)["assignee"] is None


def test_datasus_lane_only_for_datasus(client, db, two_orgs):
    f = two_orgs["flow"]
    f.complete("obter_certificado_digital")
    f.complete("criar_conta_govbr")
    f.complete("solicitar_acesso_homologacao")
    task = f.task("avaliar_solicitacao_acesso")
    for name in ("Gestor", "Integrador", "admin", "auditor", "other_datasus"):
        res = client.post(
            f"/api/v1/tasks/{task['id']}/complete",
            json={"data": {"decision": "aprovada"}},
            headers=two_orgs["users"][name].headers,
        )
        assert res.status_code == 403, name


def test_another_organization_sees_nothing(client, db, two_orgs):
    other = two_orgs["users"]["other_admin"]
    task = two_orgs["flow"].task("obter_certificado_digital")
    assert (
        client.get(f"/api/v1/instances/{two_orgs['instance']}", headers=other.headers).status_code
        == 403
    )
    assert (
        client.get(
            f"/api/v1/instances/{two_orgs['instance']}/history", headers=other.headers
        ).status_code
        == 403
    )
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=other.headers).status_code == 403
    listed = client.get(
        f"/api/v1/tasks?instance={two_orgs['instance']}", headers=other.headers
    ).json["items"]
    assert listed == []
    cnes = [
        e["cnes"] for e in client.get("/api/v1/establishments", headers=other.headers).json["items"]
    ]
    assert cnes == [two_orgs["far"].cnes]
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "credenciamento-rnds",
            "org": "sesa-pr",
            "establishment": two_orgs["est"].cnes,
            "portfolio": "REL",
        },
        headers=other.headers,
    )
    assert res.status_code == 403
    assert client.get("/api/v1/instances?org=sesa-pr", headers=other.headers).status_code == 403
    assert {d.action for d in _denials(db)} >= {
        "denied.instance.read",
        "denied.task.read",
        "denied.org.access",
    }


def test_scoped_gestor_sees_only_own_establishments(client, two_orgs):
    sibling = two_orgs["users"]["sibling_gestor"]
    assert (
        client.get(f"/api/v1/instances/{two_orgs['instance']}", headers=sibling.headers).status_code
        == 403
    )
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "credenciamento-rnds",
            "establishment": two_orgs["est"].cnes,
            "portfolio": "REL",
        },
        headers=sibling.headers,
    )
    assert res.status_code == 403
    integrador = two_orgs["users"]["Integrador"]
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "credenciamento-rnds",
            "establishment": two_orgs["est"].cnes,
            "portfolio": "REL",
        },
        headers=integrador.headers,
    )
    assert res.status_code == 403  # integrators do not start credentialing


def test_claim_release_assign(client, two_orgs, make):
    users = two_orgs["users"]
    second_gestor = make.user("sesa-pr", "gestor", two_orgs["est"].cnes)
    task = two_orgs["flow"].task("obter_certificado_digital")
    url = f"/api/v1/tasks/{task['id']}"
    assert (
        client.post(f"{url}/claim", headers=users["Gestor"].headers).json["assignee"]
        == users["Gestor"].email
    )
    res = client.post(f"{url}/claim", headers=second_gestor.headers)
    assert res.status_code == 409
    res = client.post(f"{url}/complete", json={"data": {}}, headers=second_gestor.headers)
    assert res.status_code == 409 and "outra pessoa" in res.json["message"]
    assert client.post(f"{url}/release", headers=second_gestor.headers).status_code == 403
    assert client.post(f"{url}/release", headers=users["Gestor"].headers).json["assignee"] is None
    # Admins assign, but only to someone holding the lane's role for this establishment.
    res = client.post(
        f"{url}/assign",
        json={"assignee": users["Integrador"].email},
        headers=users["admin"].headers,
    )
    assert res.status_code == 422
    res = client.post(
        f"{url}/assign", json={"assignee": second_gestor.email}, headers=users["admin"].headers
    )
    assert res.status_code == 200 and res.json["assignee"] == second_gestor.email
    assert (
        client.post(
            f"{url}/assign", json={"assignee": second_gestor.email}, headers=users["Gestor"].headers
        ).status_code
        == 403
    )


def test_cancel_needs_admin_and_reason(client, two_orgs):
    users, iid = two_orgs["users"], two_orgs["instance"]
    assert (
        client.post(
            f"/api/v1/instances/{iid}/cancel", json={"reason": "x"}, headers=users["Gestor"].headers
        ).status_code
        == 403
    )
    res = client.post(
        f"/api/v1/instances/{iid}/cancel", json={"reason": " "}, headers=users["admin"].headers
    )
    assert res.status_code == 422 and "reason" in res.json["errors"]
    task = two_orgs["flow"].task("obter_certificado_digital")
    res = client.post(
        f"/api/v1/instances/{iid}/cancel",
        json={"reason": "Estabelecimento fechado."},
        headers=users["admin"].headers,
    )
    assert res.status_code == 200 and res.json["status"] == "cancelled" and res.json["tasks"] == []
    res = client.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, headers=users["Gestor"].headers
    )
    assert res.status_code == 409 and "cancelada" in res.json["message"]
    assert (
        client.post(
            f"/api/v1/instances/{iid}/cancel",
            json={"reason": "de novo"},
            headers=users["admin"].headers,
        ).status_code
        == 409
    )


def test_missing_or_bad_token_is_401_and_counted(client, db, two_orgs):
    """Counted, not one audit event each (engine/audit/failures.py)."""
    before = len(_denials(db))
    assert client.get("/api/v1/tasks").status_code == 401
    res = client.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert res.status_code == 401 and res.json["message"]
    assert len(_denials(db)) == before
    with db.read() as s:
        counted = s.scalar(select(func.coalesce(func.sum(AuthFailureCount.failures), 0)))
        summed = s.scalars(select(AuditEvent).where(AuditEvent.action == failures.ACTION)).all()
    assert counted + sum(e.data["failures"] for e in summed) == 2  # a minute may have closed
