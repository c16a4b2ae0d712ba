"""Alembic environment: the models' metadata, the URL from ``credencia db`` or settings."""

from __future__ import annotations

from alembic import context

import engine.models  # noqa: F401  (registers every table on the metadata)
from engine import settings
from engine.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or settings.load().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    db_engine = make_engine(_url())
    try:
        with db_engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # Batch mode rebuilds a table by dropping it: with foreign keys on, SQLite
                # deletes (cascades to) every row referencing it, e.g. all tasks when
                # process_instance is rebuilt. Off before any transaction (inside one the
                # pragma does nothing); the pooled connection gets it back on below.
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                _run(conn)
            finally:
                if conn.dialect.name == "sqlite":
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")
    finally:
        db_engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
