"""``credencia db``: the Alembic migrations, and the check that long-running commands make
before they start (a database that was never migrated is refused, not retried forever)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from engine import settings as settings_mod
from engine.db import Database
from web.cli.context import CliContext, error, pass_cli


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(settings_mod.bundled("migrations")))
    cfg.set_main_option(
        "sqlalchemy.url", (url or settings_mod.load().database_url).replace("%", "%%")
    )
    return cfg


def upgrade_database(url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    url = url or settings_mod.load().database_url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def schema_problem(db: Database) -> str | None:
    """Why the database's schema is not the one this code expects (its Alembic revision is not
    the head of ``migrations/``), or None when it is."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(db.url)).get_heads())
    with db.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == heads:
        return None
    expected = ", ".join(sorted(heads))
    if not current:
        return f"o banco de dados não foi migrado (esperada a revisão {expected})"
    found = ", ".join(sorted(current))
    return f"o banco de dados está na revisão {found}; esta versão espera {expected}"


def require_current_schema(cli: CliContext) -> None:
    """Exit 1 with the way out when the database is not at the migrations' head.

    A database that cannot be reached now is not refused: the web answers 503 and the
    scheduler retries until it is back (docs/RELIABILITY.md)."""
    from sqlalchemy.exc import OperationalError

    try:
        problem = schema_problem(cli.db)
    except OperationalError as exc:
        click.echo(
            f"atenção: não foi possível conferir a versão do banco agora: {exc.orig or exc}",
            err=True,
        )
        return
    if problem is not None:
        error(f"{problem}: rode `credencia db upgrade` antes de iniciar.")


@click.group("db")
def db_group() -> None:
    """Migrações do banco de dados."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@pass_cli
def db_upgrade(cli: CliContext, revision: str) -> None:
    """Aplica as migrações até REVISION (padrão: head)."""
    upgrade_database(cli.settings.database_url, revision=revision)
    click.echo("banco de dados atualizado")


@db_group.command("downgrade")
@click.argument("revision")
@pass_cli
def db_downgrade(cli: CliContext, revision: str) -> None:
    """Desfaz migrações até REVISION (ex.: base)."""
    from alembic import command

    command.downgrade(alembic_config(cli.settings.database_url), revision)


@db_group.command("current")
@pass_cli
def db_current(cli: CliContext) -> None:
    """Mostra a revisão em que o banco está."""
    from alembic import command

    command.current(alembic_config(cli.settings.database_url))
