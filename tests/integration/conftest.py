"""Fixtures for the integration tests: the usual people on one establishment (keyed by lane,
as the API names them) and a runner for the command line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine import settings as settings_mod
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
