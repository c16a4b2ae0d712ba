"""``credencia users``: people and their roles."""

from __future__ import annotations

import click
from sqlalchemy import select

from engine.accounts import service as accounts
from engine.accounts.models import User
from engine.errors import DomainError, NotFound
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


@users.command("set-password")
@click.argument("email")
@click.option("--password", default=None, help="Nova senha; gerada e impressa quando omitida.")
@pass_cli
def users_set_password(cli: CliContext, email: str, password: str | None) -> None:
    """Troca a senha; revoga os tokens da API da pessoa e encerra as sessões abertas."""
    email = email.strip().lower()
    new_password = password or accounts.generate_password()
    try:
        with cli.db.write() as session:
            user = session.scalar(select(User).where(User.email == email))
            if user is None:
                raise NotFound(f"Usuário '{email}' não encontrado.")
            revoked = accounts.set_password(session, cli.actor, user, new_password)
    except DomainError as exc:
        fail(exc)
    click.echo(f"senha de {email} trocada; {revoked} token(s) revogado(s)")
    if password is None:
        click.echo(f"senha: {new_password}")
