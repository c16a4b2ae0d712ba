"""``credencia orgs``: organizations."""

from __future__ import annotations

import click

from engine.accounts import service as accounts
from engine.errors import DomainError
from web.cli.context import CliContext, fail, pass_cli


@click.group()
def orgs() -> None:
    """Organizações."""


@orgs.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@pass_cli
def orgs_create(cli: CliContext, slug: str, name: str) -> None:
    try:
        with cli.db.write() as session:
            org = accounts.create_org(session, cli.actor, slug, name)
            click.echo(f"organização criada: {org.slug} ({org.name})")
    except DomainError as exc:
        fail(exc)
