"""``credencia certificates``: digital certificates.

``certificates inspect`` lets an administrator check any file before uploading it (JSON on
stdout; exit 0 when usable, 1 with the reason when not). ``certificates roots`` says which
ICP-Brasil roots are trusted and how recent they are; ``certificates update-roots FILE``
installs the zip of AC certificates ITI publishes (checked, audited).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine import identifiers
from engine.certificates import roots as trusted_roots
from engine.certificates.service import CertificatePolicy
from engine.errors import Invalid
from engine.pki import (
    MAX_BYTES,
    CertificateError,
    inspect,
    load_anchors,
    problems_of,
    trust,
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


def _br(iso_date: str | None) -> str:
    return "—" if not iso_date else "/".join(reversed(iso_date.split("-")))


def roots_line(summary: dict) -> str:
    """One line, pt-BR: how many roots and ACs are trusted and how old the bundle is."""
    where = (
        "a que acompanha o Credencia"
        if summary["source"] == "shipped"
        else f"instalada com update-roots em {summary['path']}"
    )
    return (
        f"Raízes ICP-Brasil: {summary['roots']} raízes e {summary['intermediates']} ACs; "
        f"raiz mais recente emitida em {_br(summary['newest_root_not_before'])} "
        f"({summary['newest_root']}), AC mais recente em {_br(summary['newest_not_before'])}; "
        f"lista de {_br(summary['date'])} ({where})."
    )


@certificates.command("roots")
@click.option("--json", "as_json", is_flag=True, help="Saída em JSON.")
def certificates_roots(as_json: bool) -> None:
    """Diz quantas raízes e ACs ICP-Brasil são confiáveis e de quando é a lista."""
    summary = trusted_roots.status()
    if as_json:
        _dump(summary)
        return
    click.echo(roots_line(summary))
    if summary["source"] == "shipped":
        click.echo(
            "Para atualizar: baixe do ITI o pacote das ACs (.zip) e rode "
            "`credencia certificates update-roots ARQUIVO.zip`."
        )


@certificates.command("update-roots")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_cli
def certificates_update_roots(cli: CliContext, file: Path) -> None:
    """Instala as raízes e ACs ICP-Brasil do pacote .zip publicado pelo ITI.

    Cada certificado deve ser de AC: uma raiz autoassinada da ICP-Brasil ou uma AC que se
    liga, por assinatura, a uma raiz. Qualquer outro arquivo recusa o pacote inteiro.
    """
    with open(file, "rb") as fh:
        data = fh.read(trust.MAX_ZIP_BYTES + 1)
    try:
        with cli.db.write() as session:
            result = trusted_roots.update(session, cli.actor, data, filename=file.name)
    except Invalid as exc:
        click.echo(f"erro: {exc.message} Nada foi alterado.", err=True)
        sys.exit(1)
    click.echo(roots_line(result))
    for cert in result["new_roots"]:
        click.echo(
            f"raiz nova: {cert['subject']} (SHA-256 {cert['sha256']}); confira a impressão "
            "digital com a publicada pelo ITI."
        )
    for cert in result["dropped_roots"]:
        click.echo(f"raiz que deixou de ser confiável: {cert['subject']}")
