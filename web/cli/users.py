"""``credencia users``: people and their roles."""

from __future__ import annotations

import click

from engine.accounts import service as accounts
from engine.errors import DomainError
from web.cli.context import CliContext, fail, pass_cli

ROLES = ["admin", "gestor", "integrador", "datasus", "auditor"]


@click.group()
def users() -> None:
    """Usuários e papéis."""


@users.command("create")
@click.argument("email")
@click.option("--org", "org_slug", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option(
    "--establishment", "cnes", multiple=True, help="CNES (gestor/integrador); repita para vários."
)
@click.option("--password", default=None, help="Senha; gerada e impressa quando omitida.")
@click.option("--name", default="")
@pass_cli
def users_create(
    cli: CliContext,
    email: str,
    org_slug: str,
    role: str,
    cnes: tuple[str, ...],
    password: str | None,
    name: str,
) -> None:
    try:
        with cli.db.write() as session:
            user, new_password = accounts.create_user(
                session,
                cli.actor,
                email,
                org_slug=org_slug,
                role=role,
                establishments=cnes,
                password=password,
                name=name,
            )
            click.echo(f"{user.email}: papel {role} em {org_slug}")
            if new_password and password is None:
                click.echo(f"senha: {new_password}")
    except DomainError as exc:
        fail(exc)
