"""The Alembic migrations build exactly the models' schema, and downgrade cleanly."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import engine.models  # noqa: F401
from engine.db import Base, make_engine
from tests.conftest import _pg_admin_url
from web.cli import alembic_config, upgrade_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    request.getfixturevalue("postgres_url")  # skips, or fails under CI, like the other PG tests
    admin = _pg_admin_url()
    name = f"credencia_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_matches_models_and_downgrade_is_clean(empty_url):  # type: ignore[no-untyped-def]
    from alembic import command

    upgrade_database(empty_url)
    eng = make_engine(empty_url)
    try:
        with eng.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], diff
        command.downgrade(alembic_config(empty_url), "base")
        left = set(inspect(eng).get_table_names()) - {"alembic_version"}
        assert left == set()
        upgrade_database(empty_url)  # and up again
        assert set(Base.metadata.tables) <= set(inspect(eng).get_table_names())
    finally:
        eng.dispose()
