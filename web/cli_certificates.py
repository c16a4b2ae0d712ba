"""``credencia certificates …`` and ``credencia secrets …``: thin faces over the engine.

``certificates inspect`` lets an administrator check any file before uploading it (JSON on
stdout; exit 0 when usable, 1 with the reason when not). ``secrets generate-key`` makes a
master key; ``secrets rotate`` re-encrypts every stored secret under a new one.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from engine import identifiers
from engine import secrets as secret_store
from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.certificates.inspect import (
    MAX_BYTES,
    CertificateError,
    inspect,
    load_anchors,
    problems_of,
)
from engine.certificates.service import CertificatePolicy
from engine.db import Database


def _cli_actor() -> Actor:
    return Actor(user_id=None, label=f"cli:{getpass.getuser()}", is_system=True)


def _database() -> Database:
    db = Database(settings_mod.load().database_url)
    db.on_denied = audit.record_denial
    return db


def _dump(payload: dict) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


# ------------------------------------------------------------------ certificates


@click.group("certificates")
def certificates() -> None:
    """Certificados digitais ICP-Brasil."""


@certificates.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--password",
    default=None,
    help="Senha do .pfx/.p12. Prefira --ask-password: na linha de comando ela fica no histórico.",
)
@click.option("--ask-password", is_flag=True, help="Pergunta a senha sem mostrá-la.")
@click.option(
    "--cnpj", default=None, help="CNPJ do estabelecimento, para conferir com o do certificado."
)
@click.option("--cnpj-exception", is_flag=True, help="CNPJ diferente aceito (exceção documentada).")
@click.option(
    "--anchors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM com raízes/ACs de homologação aceitas além das da ICP-Brasil.",
)
@click.option(
    "--allow-non-icp",
    is_flag=True,
    help="Não exige a ICP-Brasil (só para homologação ou demonstração).",
)
def certificates_inspect(
    file: Path,
    password: str | None,
    ask_password: bool,
    cnpj: str | None,
    cnpj_exception: bool,
    anchors: Path | None,
    allow_non_icp: bool,
) -> None:
    """Lê FILE (.cer, .crt, .pem, .p7b, .pfx, .p12) e diz se ele serve para a RNDS."""
    if ask_password:
        password = click.prompt(
            "Senha do certificado", hide_input=True, default="", show_default=False
        )
    expected = None
    if cnpj:
        try:
            expected = identifiers.validate_cnpj(cnpj)
        except identifiers.InvalidIdentifier as exc:
            raise click.BadParameter(exc.message, param_hint="--cnpj") from None
    policy = CertificatePolicy.from_settings(settings_mod.load())
    extra = policy.extra_anchors
    if anchors is not None:
        try:
            extra = extra + load_anchors(anchors.read_bytes())
        except Exception:
            raise click.BadParameter(
                "não foi possível ler os certificados do arquivo.", param_hint="--anchors"
            ) from None
    with open(file, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)  # a larger file is refused without reading it all
    try:
        report = inspect(
            data,
            password,
            expected_cnpj=expected,
            cnpj_exception=cnpj_exception,
            extra_anchors=extra,
        )
    except CertificateError as exc:
        _dump({"usable": False, "error": {"code": exc.code, "message_pt": exc.message}})
        click.echo(f"erro: {exc.message}", err=True)
        sys.exit(1)
    problems = problems_of(
        report,
        allow_cnpj_exception=cnpj_exception,
        require_icp_brasil=policy.require_icp_brasil and not allow_non_icp,
    )
    payload = {"usable": not problems, **report.to_dict()}
    payload["problems"] = [p.to_dict() for p in problems]
    _dump(payload)
    if problems:
        click.echo(f"erro: {problems[0].message_pt}", err=True)
        sys.exit(1)


# ------------------------------------------------------------------ secrets


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
def secrets_rotate(new_key_file: Path) -> None:
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
        with _database().write() as session:
            count = secret_store.rotate(session, old, new)
            audit.record(
                session,
                _cli_actor(),
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
