"""Fixtures for the fault tests: PostgreSQL only (the faults are PostgreSQL's), with the
suite's own fixtures (``db``, ``app``, ``client``, ``make``) bound to the run's PostgreSQL
database. Tools that are missing (pg_dump) skip their test, except under ``CI=true``."""

from __future__ import annotations

import pytest


@pytest.fixture
def db_url(postgres_url: str) -> str:  # overrides the sqlite/postgresql parametrization
    return postgres_url
