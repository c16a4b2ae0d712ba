"""Fixtures for the fault tests: PostgreSQL only (the faults are PostgreSQL's), with the
suite's own fixtures (``db``, ``app``, ``client``, ``make``) bound to the run's PostgreSQL
database. Tools that are missing (pg_dump) skip their test, except under ``CI=true``."""

from __future__ import annotations

import os
import shutil

import pytest

from bench.load import harness


@pytest.fixture
def db_url(postgres_url: str) -> str:  # overrides the sqlite/postgresql parametrization
    return postgres_url


def require_tool(name: str) -> str:
    path = harness.pg_tool(name) or shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI and was not found")
        pytest.skip(f"{name} not found")
    return path
