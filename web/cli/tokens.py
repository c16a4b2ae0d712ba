"""``credencia tokens``: API tokens."""

from __future__ import annotations

import click

from engine.accounts import service as accounts
from engine.errors import DomainError
from web.cli.context import CliContext, fail, pass_cli


@click.group()
def tokens() -> None:
    """Tokens da API."""


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="")
@pass_cli
def tokens_create(cli: CliContext, email: str, name: str) -> None:
    """Cria um token; ele é impresso na última linha e não pode ser recuperado depois."""
    try:
        with cli.db.write() as session:
            token = accounts.create_token(session, cli.actor, email, name)
        click.echo(f"token criado para {email} (guarde-o; não será mostrado de novo):")
        click.echo(token)
    except DomainError as exc:
        fail(exc)
