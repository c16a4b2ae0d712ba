"""Fixtures for the integration tests: the usual people on one establishment (keyed by lane,
as the API names them), a runner for the command line, and an empty database for the
migration tests."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from click.testing import CliRunner

from engine import settings as settings_mod
from tests.support.databases import pg_admin_url
from web.cli import main


@pytest.fixture
def world(cast, client):
    return {"org": cast.org, "est": cast.est, "users": cast.lanes}


@pytest.fixture
def cli(db_url, db, app, monkeypatch):
    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    request.getfixturevalue("postgres_url")  # skips, or fails under CI, like the other PG tests
    admin = pg_admin_url()
    name = f"credencia_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
