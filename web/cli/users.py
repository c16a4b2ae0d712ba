"""``credencia users``: people and their roles."""

from __future__ import annotations

import click
from sqlalchemy import select

from engine.accounts import invitations, lifecycle, passwords, totp
from engine.accounts import service as accounts
from engine.accounts.models import User
from engine.errors import Conflict, DomainError, NotFound
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


def _user(session, email: str) -> User:
    email = email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"Usuário '{email}' não encontrado.")
    return user


@users.command("invite")
@click.argument("email")
@click.option("--org", "org_slug", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option(
    "--establishment", "cnes", multiple=True, help="CNES (gestor/integrador); repita para vários."
)
@click.option("--name", default="")
@pass_cli
def users_invite(cli: CliContext, email: str, org_slug: str, role: str, cnes: tuple[str, ...],
                 name: str) -> None:  # fmt: skip
    """Convida por e-mail (link de aceite): a pessoa escolhe a própria senha; ninguém a vê."""
    try:
        with cli.db.write() as session:
            grant = accounts.check_grant(session, email, org_slug=org_slug, role=role,
                                         establishments=cnes, name=name)  # fmt: skip
            row = invitations.invite(session, cli.actor, grant.org.id, grant, cli.settings)
            click.echo(f"convite enviado para {row.email} (papel {role} em {org_slug}), "
                       f"válido até {row.expires_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    except DomainError as exc:
        fail(exc)


@users.command("deactivate")
@click.argument("email")
@pass_cli
def users_deactivate(cli: CliContext, email: str) -> None:
    """Desativa: encerra as sessões, revoga os tokens e devolve as tarefas assumidas."""
    try:
        with cli.db.write() as session:
            user = lifecycle.deactivate(session, cli.actor, _user(session, email).id)
            click.echo(f"{user.email}: desativado")
    except DomainError as exc:
        fail(exc)


@users.command("reactivate")
@click.argument("email")
@pass_cli
def users_reactivate(cli: CliContext, email: str) -> None:
    """Reativa (os tokens revogados continuam revogados)."""
    try:
        with cli.db.write() as session:
            user = lifecycle.reactivate(session, cli.actor, _user(session, email).id)
            click.echo(f"{user.email}: reativado")
    except DomainError as exc:
        fail(exc)


@users.command("set-cpf")
@click.argument("email")
@click.argument("cpf")
@pass_cli
def users_set_cpf(cli: CliContext, email: str, cpf: str) -> None:
    """Registra o CPF pelo qual o gov.br (ou outro provedor que o informe) encontra a conta;
    vazio ("") apaga."""
    try:
        with cli.db.write() as session:
            user = lifecycle.set_cpf(session, cli.actor, _user(session, email), cpf)
            click.echo(f"{user.email}: CPF {'registrado' if user.cpf else 'apagado'}")
    except DomainError as exc:
        fail(exc)


@users.command("reset-password")
@click.argument("email")
@pass_cli
def users_reset_password(cli: CliContext, email: str) -> None:
    """Envia à pessoa um link de redefinição de senha (curto, de uso único); ninguém vê a senha."""
    try:
        with cli.db.write() as session:
            user = _user(session, email)
            if not user.active:
                raise Conflict(f"{user.email} está desativado.")
            passwords.request_reset(session, user.email, cli.settings)
        click.echo(f"link de redefinição enviado para {user.email}")
    except DomainError as exc:
        fail(exc)


@users.command("totp-off")
@click.argument("email")
@pass_cli
def users_totp_off(cli: CliContext, email: str) -> None:
    """Desliga a verificação em duas etapas (a pessoa perdeu o celular)."""
    try:
        with cli.db.write() as session:
            user = _user(session, email)
            totp.disable(session, cli.actor, user)
        click.echo(f"{user.email}: verificação em duas etapas desligada")
    except DomainError as exc:
        fail(exc)
