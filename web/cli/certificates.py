"""``credencia certificates``: digital certificates.

``certificates inspect`` lets an administrator check any file before uploading it (JSON on
stdout; exit 0 when usable, 1 with the reason when not).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine import identifiers
from engine.certificates.service import CertificatePolicy
from engine.pki import (
    MAX_BYTES,
    CertificateError,
    inspect,
    load_anchors,
    problems_of,
)
from web.cli.context import CliContext, pass_cli


def _dump(payload: dict) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


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
@pass_cli
def certificates_inspect(
    cli: CliContext,
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
    policy = CertificatePolicy.from_settings(cli.settings)
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
