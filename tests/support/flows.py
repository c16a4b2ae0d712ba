"""Walking the credentialing process: start an instance over the API and drive it with
:class:`tests.support.builders.Flow`."""

from __future__ import annotations

from engine.demo import samples
from tests.support.builders import Flow


def start(client, world, portfolio="RIRA", as_="admin", expect=201):
    res = client.post(
        "/api/v1/instances",
        json={
            "process": "credenciamento-rnds",
            "establishment": world["est"].cnes,
            "portfolio": portfolio,
        },
        headers=world["users"][as_].headers,
    )
    assert res.status_code == expect, res.json
    return res


def flow(client, world) -> Flow:
    res = start(client, world)
    ops = client.get("/api/v1/portfolios", headers=world["users"]["admin"].headers).json["items"]
    portfolio = next(p for p in ops if p["code"] == "RIRA")
    return Flow(client, world["users"], res.json["id"], world["est"], portfolio)


def complete_until(f: Flow, element: str) -> None:
    """Complete the happy path's steps that come before ``element``, one person per lane."""
    for step in samples.PRODUCTION_PATH[: samples.PRODUCTION_PATH.index(element)]:
        f.complete(step)


def to_production(f: Flow) -> None:
    """Complete the credenciamento's happy path, one person per lane."""
    for element in samples.PRODUCTION_PATH:
        f.complete(element)
