"""``credencia credentials``: the credentials the organizations hold with the RNDS."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.accounts import service as accounts
from engine.credentials import imports
from engine.errors import DomainError
from web.cli.context import CliContext, fail, pass_cli
from web.cli.establishments import csv_encoding


@click.group("credentials")
def credentials_group() -> None:
    """Credenciais."""


@credentials_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "org_slug", required=True)
@pass_cli
def credentials_import(cli: CliContext, file: Path, org_slug: str) -> None:
    """Importa credenciais existentes de um CSV (cnes, portfolio, identificador, situacao,
    data_homologacao, data_producao, numero_solicitacao, ip_inicial, ip_final, sistema_nome,
    sistema_versao, filhos, gestor_nome, gestor_cpf, gestor_email). Cada linha é registrada
    ou recusada sozinha; sai com 1 se alguma foi recusada."""
    try:
        with cli.db.write() as session, file.open(encoding=csv_encoding(file), newline="") as lines:
            org = accounts.get_org(session, org_slug)
            result = imports.import_csv(session, cli.actor, org.id, lines)
    except DomainError as exc:
        fail(exc)
    for line in result.lines:
        for column, message in line.errors.items():
            click.echo(f"  linha {line.line} ({line.cnes or '-'}) {column}: {message}", err=True)
    click.echo(
        f"{len(result.lines)} linha(s): {result.created} criada(s), {result.refused} recusada(s)"
    )
    if result.refused:
        sys.exit(1)
