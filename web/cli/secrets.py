"""``credencia secrets``: the master key that encrypts secret form values.

``secrets generate-key`` makes a master key; ``secrets rotate`` re-encrypts every stored
secret under a new one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from engine import secrets as secret_store
from engine.audit import service as audit
from web.cli.context import CliContext, pass_cli


@click.group("secrets")
def secrets_group() -> None:
    """Chave de cifragem dos valores secretos dos formulários."""


@secrets_group.command("generate-key")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Grava a chave neste arquivo (modo 0600) em vez de imprimi-la.",
)
@click.option("--if-missing", is_flag=True, help="Com --file: não faz nada se o arquivo já existe.")
def secrets_generate_key(path: Path | None, if_missing: bool) -> None:
    """Gera uma chave nova (32 bytes aleatórios em base64)."""
    if path is None:
        click.echo(secret_store.generate_key())
        return
    if path.exists():
        if if_missing:
            click.echo(f"chave já existe em {path}")
            return
        # Overwriting a key makes every value encrypted under it unreadable.
        click.echo(f"erro: {path} já existe; não sobrescrevo uma chave.", err=True)
        sys.exit(1)
    secret_store.ensure_key_file(path)
    click.echo(f"chave gravada em {path}; defina CREDENCIA_SECRET_KEY_FILE={path}")


@secrets_group.command("rotate")
@click.option(
    "--new-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Arquivo com a chave nova (gere com `credencia secrets generate-key --file …`).",
)
@pass_cli
def secrets_rotate(cli: CliContext, new_key_file: Path) -> None:
    """Recifra todos os valores secretos com a chave nova.

    A chave atual (CREDENCIA_SECRET_KEY ou CREDENCIA_SECRET_KEY_FILE, e as antigas em
    CREDENCIA_SECRET_OLD_KEYS) abre os valores; tudo numa transação só.
    """
    try:
        old = secret_store.load_keyring()
        if old is None:
            raise secret_store.SecretKeyError(secret_store.MISSING_KEY_MESSAGE)
        new = secret_store.Key.from_text(new_key_file.read_text(encoding="ascii"))
    except secret_store.SecretKeyError as exc:
        click.echo(f"erro: {exc}", err=True)
        sys.exit(1)
    try:
        with cli.db.write() as session:
            count = secret_store.rotate(session, old, new)
            audit.record(
                session,
                cli.actor,
                "secrets.rotated",
                org_id=None,
                data={"count": count, "from_key_ids": sorted(old.keys), "to_key_id": new.id},
            )
    except secret_store.SecretDecryptError as exc:
        click.echo(f"erro: {exc} Nada foi alterado.", err=True)
        sys.exit(1)
    click.echo(f"{count} valor(es) recifrado(s) com a chave {new.id}.")
    click.echo(
        f"Agora defina CREDENCIA_SECRET_KEY_FILE={new_key_file} (ou CREDENCIA_SECRET_KEY) e "
        "reinicie os processos; mantenha a chave antiga em CREDENCIA_SECRET_OLD_KEYS até lá."
    )
    if os.environ.get(secret_store.KEY_ENV) and os.environ.get(secret_store.KEY_FILE_ENV):
        click.echo("atenção: CREDENCIA_SECRET_KEY_FILE tem precedência sobre CREDENCIA_SECRET_KEY.")
