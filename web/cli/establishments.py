"""``credencia establishments``: the register of health establishments."""

from __future__ import annotations

import codecs
from pathlib import Path

import click

from engine.accounts import service as accounts
from engine.errors import DomainError
from engine.establishments import service as establishments
from web.cli.context import CliContext, error, fail, pass_cli


@click.group("establishments")
def establishments_group() -> None:
    """Estabelecimentos."""


def csv_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) if the whole file decodes as such, else Latin-1 (older
    spreadsheet exports). Checked up front, in chunks, so the import itself streams the file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8-sig"


@establishments_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "org_slug", required=True)
@click.option(
    "--skip-invalid", is_flag=True, help="Importa as linhas válidas e relata as inválidas."
)
@pass_cli
def establishments_import(cli: CliContext, file: Path, org_slug: str, skip_invalid: bool) -> None:
    """Importa um CSV (cnes,cnpj,razao_social,nome_fantasia,uf,municipio,cep,endereco,telefone,email[,bairro][,cnes_pai])."""
    try:
        with cli.db.write() as session, file.open(encoding=csv_encoding(file)) as lines:
            org = accounts.get_org(session, org_slug)
            report = establishments.import_csv(
                session, cli.actor, org.id, lines, skip_invalid=skip_invalid
            )
    except establishments.ImportFailed as exc:
        error(exc.message, *(str(e) for e in exc.report.errors))
    except DomainError as exc:
        fail(exc)
    for problem in report.errors:
        click.echo(f"  ignorada: {problem}", err=True)
    click.echo(
        f"{report.rows} linhas: {report.created} criados, {report.updated} atualizados, {report.skipped} ignorados"
    )
