"""The ``credencia`` command: a thin face over the engine's services, like the pages and API.

One module per command group; all share one context (``web.cli.context``) that builds the
settings, the database and the CLI's system actor once per invocation.
"""

from __future__ import annotations

import click

from web.cli import (
    audit,
    certificates,
    credentials,
    demo,
    establishments,
    lgpd,
    orgs,
    processes,
    scheduler,
    secrets,
    serve,
    tokens,
    users,
)
from web.cli import db as db_commands
from web.cli.context import file_error
from web.cli.db import alembic_config, upgrade_database

__all__ = ["alembic_config", "main", "upgrade_database"]


class _Commands(click.Group):
    """The commands, with a file they cannot read or write (a path given or written to)
    reported as ``erro: …`` instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.filename is None:  # not a file's (a connection's, say): as it was
                raise
            file_error(exc)


@click.group(cls=_Commands)
def main() -> None:
    """Credencia — credenciamento de estabelecimentos de saúde na RNDS."""


for command in (
    db_commands.db_group,
    orgs.orgs,
    users.users,
    tokens.tokens,
    establishments.establishments_group,
    processes.processes,
    processes.instances,
    processes.export_state,
    audit.audit_group,
    audit.dashboard_group,
    demo.demo,
    serve.serve,
    certificates.certificates,
    credentials.credentials_group,
    secrets.secrets_group,
    scheduler.scheduler,
    scheduler.outbox,
    lgpd.lgpd_group,
):
    main.add_command(command)
