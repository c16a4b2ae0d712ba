"""Fixtures: every database test runs on SQLite and on PostgreSQL.

SQLite: the schema is built once and copied per test. PostgreSQL: a database of
its own is created for the run, its schema built once, and truncated before each test. Under
``CI=true`` an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from engine import secrets as secret_store
from engine import settings as settings_mod
from engine.audit import service as audit
from engine.db import Base, Database
from engine.workflow import spiff
from tests.support.builders import Builders, Cast
from tests.support.builders import cast as build_cast
from tests.support.databases import pg_admin_url

ROOT = Path(__file__).resolve().parent.parent
# One master key for the whole run (secret values, session signing); never the local file.
os.environ.setdefault("CREDENCIA_SECRET_KEY", secret_store.generate_key())
# The app sets up logging from its settings; INFO lines of every test's servers are noise here
# (tests/integration/test_logging.py asks for INFO where it reads them).
os.environ.setdefault("CREDENCIA_LOG_LEVEL", "WARNING")


def _create_schema(url: str) -> None:
    """The models' schema (tests/integration/test_migrations.py proves the migrations build
    exactly this)."""
    import engine.models  # noqa: F401
    from engine.db import make_engine

    eng = make_engine(url)
    Base.metadata.create_all(eng)
    eng.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    _create_schema(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin = pg_admin_url()
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is unreachable at {admin}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {admin}: {exc}")
    name = f"credencia_test_{uuid.uuid4().hex[:10]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    url = f"{base}/{name}"
    _create_schema(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        if request.node.get_closest_marker("postgres_only"):
            pytest.skip("this test is about PostgreSQL's row locks")
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "credencia.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.on_denied = audit.record_denial
    if database.dialect == "postgresql":
        _truncate(database)
    spiff.clear_cache()  # definition ids restart in every test database
    yield database
    database.dispose()


@pytest.fixture
def settings(db_url: str) -> settings_mod.Settings:
    # The tests' certificates come from their own PKI or are self-signed (tests/support/pki.py).
    return settings_mod.Settings(
        database_url=db_url, processes_dir=ROOT / "processes", certificate_require_icp_brasil=False
    )


@pytest.fixture
def app(settings: settings_mod.Settings, db: Database):
    from web import create_app

    application = create_app(settings, db)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make(db: Database, app) -> Builders:
    """Test-data builders; depends on ``app`` so the processes are deployed."""
    return Builders(db)


@pytest.fixture
def cast(make: Builders) -> Cast:
    """The usual people of organization ``sesa-pr``: admin, gestor, integrador, datasus and
    auditor, the gestor and the integrador on its one establishment (tests/support/builders.py)."""
    return build_cast(make)
