"""Fixtures for the page tests: two organizations, a user per role, a logged-in test client."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from engine.runtime import instances as runtime_instances
from tests.support.builders import UserHandle, cast
from tests.support.pages import Pages, World


@pytest.fixture
def world(make, db) -> World:
    people = cast(make, uf="PR", others=({"uf": "PR", "municipio": "Londrina"},))
    org, est, est2, users = people.org, people.est, people.others[0], people.users
    other_org = make.org("sesa-sp", "Secretaria da Saúde de São Paulo")
    other_est = make.establishment(other_org, uf="SP", municipio="Campinas")
    other_admin = make.user("sesa-sp", "admin")
    with db.write() as s:
        inst = runtime_instances.start_instance(s, users["admin"].actor, org_id=org, process_key="credenciamento-rnds",
                                      establishment_cnes=est.cnes, portfolio_code="RIRA")  # fmt: skip
        other = runtime_instances.start_instance(s, other_admin.actor, org_id=other_org, process_key="credenciamento-rnds",
                                       establishment_cnes=other_est.cnes, portfolio_code="REL")  # fmt: skip
        ids = inst.id, other.id
    return World(org, est, est2, users, ids[0], other_org, other_est, other_admin, ids[1])


@pytest.fixture
def pages(app):
    def make_pages(user: UserHandle | None = None, **kwargs: Any) -> Pages:
        p = Pages(app, **kwargs)
        return p.login(user) if user else p

    return make_pages


@pytest.fixture
def settings(settings):
    """The app under test accepts the tests' self-signed certificates."""
    return dataclasses.replace(settings, certificate_require_icp_brasil=False)
