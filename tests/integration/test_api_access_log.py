"""The API's reads of personal data land in the access log on both databases: one entry per
read, channel ``api``, written when the read succeeded (on PostgreSQL in the read's own
transaction, on SQLite in one of its own), and none for a read that was refused."""

from __future__ import annotations

from sqlalchemy import select

from engine.lgpd.models import AccessEntry
from tests.support.builders import cast as make_cast
from tests.support.flows import flow


def _entries(db) -> list[tuple[str, str, str, str]]:
    with db.read() as s:
        rows = s.execute(
            select(
                AccessEntry.view, AccessEntry.entity_id, AccessEntry.actor, AccessEntry.channel
            ).order_by(AccessEntry.id)
        ).all()
    return [tuple(r) for r in rows]


def test_each_api_read_is_logged_once_and_a_refused_read_not_at_all(client, world, db, make):
    f = flow(client, world)
    admin, gestor = world["users"]["admin"], world["users"]["Gestor"]
    before = len(_entries(db))
    task = next(t for t in f.instance()["tasks"] if t["element"] == "obter_certificado_digital")
    res = client.get(f"/api/v1/tasks/{task['id']}", headers=admin.headers)
    assert res.status_code == 200 and res.json["form"]["schema"]["properties"]
    detail = client.get(f"/api/v1/instances/{f.instance_id}", headers=gestor.headers)
    assert detail.status_code == 200
    new = _entries(db)[before:]
    assert ("task.detail", task["id"], admin.email, "api") in new
    assert ("instance.detail", str(f.instance_id), gestor.email, "api") in new
    assert [v for v, *_ in new].count("task.detail") == 1

    # Reads refused (no such task; another organization's task) leave no entry, and a read
    # after them is logged as before.
    stranger = make_cast(make, "sesa-sp", "Secretaria da Saúde de São Paulo").lanes["admin"]
    count = len(_entries(db))
    nothing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/v1/tasks/{nothing}", headers=admin.headers).status_code == 404
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=stranger.headers).status_code in (
        403,
        404,
    )
    assert len(_entries(db)) == count
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=gestor.headers).status_code == 200
    assert _entries(db)[count:] == [("task.detail", task["id"], gestor.email, "api")]
