"""``credencia tokens``: API tokens — made, listed and revoked."""

from __future__ import annotations

import click

from engine.accounts import tokens as api_tokens
from engine.errors import DomainError
from web.cli.context import CliContext, fail, pass_cli

STATUS = {
    api_tokens.ACTIVE: "ativo",
    api_tokens.REVOKED: "revogado",
    api_tokens.EXPIRED: "expirado",
}


@click.group()
def tokens() -> None:
    """Tokens da API."""


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="")
@click.option(
    "--org",
    "org_slug",
    default=None,
    help="Organização em que o token age (padrão: a única da pessoa).",
)
@click.option(
    "--all-orgs",
    is_flag=True,
    help="O token age em todas as organizações da pessoa (cada chamada informa 'org').",
)
@click.option("--expires-in-days", type=int, default=None, help="Validade em dias (padrão: sem).")
@pass_cli
def tokens_create(cli: CliContext, email: str, name: str, org_slug: str | None, all_orgs: bool,
                  expires_in_days: int | None) -> None:  # fmt: skip
    """Cria um token; ele é impresso na última linha e não pode ser recuperado depois."""
    try:
        with cli.db.write() as session:
            token = api_tokens.create_for(session, cli.actor, email, name, org_slug=org_slug,
                                          all_orgs=all_orgs, expires_in_days=expires_in_days)  # fmt: skip
        click.echo(f"token criado para {email} (guarde-o; não será mostrado de novo):")
        click.echo(token)
    except DomainError as exc:
        fail(exc)


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


@tokens.command("list")
@click.option("--org", "org_slug", default=None, help="Só os tokens que alcançam esta organização.")
@pass_cli
def tokens_list(cli: CliContext, org_slug: str | None) -> None:
    """Lista os tokens: id, prefixo, pessoa, organização (* = todas), nome, criado, expira,
    último uso, situação."""
    try:
        with cli.db.read() as session:
            rows = api_tokens.list_all(session, org_slug)
    except DomainError as exc:
        fail(exc)
    if not rows:
        click.echo("nenhum token")
    for row in rows:
        t = row.token
        click.echo("\t".join([str(t.id), t.prefix, row.email, row.org_slug or "*", t.name or "-",
                              _when(t.created_at), _when(t.expires_at), _when(t.last_used_at),
                              STATUS[row.status]]))  # fmt: skip


@tokens.command("revoke")
@click.argument("ref")
@pass_cli
def tokens_revoke(cli: CliContext, ref: str) -> None:
    """Revoga um token pelo id ou pelo prefixo (como em `credencia tokens list`)."""
    try:
        with cli.db.write() as session:
            row = api_tokens.revoke_ref(session, cli.actor, ref)
            prefix, token_id = row.prefix, row.id
    except DomainError as exc:
        fail(exc)
    click.echo(f"token {token_id} ({prefix}…) revogado")
