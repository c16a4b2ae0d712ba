"""``credencia lgpd``: the data subject's requests (report, erasure) and the record of
processing (docs/lgpd.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.errors import DomainError
from engine.lgpd import service as lgpd
from web.cli.context import CliContext, error, fail, pass_cli


def _identifier(cpf: str | None, email: str | None) -> tuple[str, str]:
    if bool(cpf) == bool(email):
        error("Informe --cpf ou --email (um dos dois).")
    return ("cpf", cpf) if cpf else ("email", email or "")


@click.group("lgpd")
def lgpd_group() -> None:
    """Dados pessoais (LGPD): relatórios e eliminação a pedido do titular."""


@lgpd_group.command("report")
@click.option("--cpf")
@click.option("--email")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False), help="Grava também um PDF.")
@pass_cli
def report(cli: CliContext, cpf: str | None, email: str | None, pdf_path: str | None) -> None:
    """Tudo o que está guardado sobre um titular, em JSON (e PDF com --pdf)."""
    kind, value = _identifier(cpf, email)
    try:
        with cli.db.write() as session:
            result = lgpd.report(session, cli.actor, kind, value)
    except DomainError as exc:
        fail(exc)
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    if pdf_path:
        from engine.lgpd import pdf

        Path(pdf_path).write_bytes(pdf.render(result))


@lgpd_group.command("erase")
@click.option("--cpf")
@click.option("--email")
@click.option("--yes", is_flag=True, help="Não pede confirmação.")
@pass_cli
def erase(cli: CliContext, cpf: str | None, email: str | None, yes: bool) -> None:
    """Anonimiza os dados de um titular (dados de tarefas, rascunhos, credenciais,
    notificações e a trilha de auditoria, cuja cadeia continua verificável). Recusado, com o
    motivo, enquanto uma obrigação legal exige mantê-los."""
    kind, value = _identifier(cpf, email)
    if not yes:
        click.confirm(
            f"Eliminar definitivamente os dados pessoais do titular {kind.upper()} {value}?",
            abort=True,
        )
    try:
        with cli.db.write() as session:
            outcome = lgpd.erase(
                session, cli.actor, kind, value,
                retention_finished_days=cli.settings.lgpd_retention_finished_days,
            )  # fmt: skip
    except DomainError as exc:
        fail(exc)
    if outcome.status == "refused":
        click.echo(f"recusado (pedido {outcome.request_id}): {outcome.reason}", err=True)
        sys.exit(2)
    rows = ", ".join(f"{k}: {n}" for k, n in sorted(outcome.rows.items())) or "nenhuma"
    click.echo(
        f"eliminado (pedido {outcome.request_id}): {outcome.subjects} titular(es), "
        f"{outcome.values} valor(es) da trilha de auditoria, linhas anonimizadas: {rows}"
    )


@lgpd_group.command("record")
@click.option(
    "--check", is_flag=True, help="Só confere; sai com 1 se o arquivo está desatualizado."
)
@click.option(
    "--output", default="docs/lgpd.md", show_default=True, type=click.Path(dir_okay=False)
)
def record(check: bool, output: str) -> None:
    """Escreve o registro das operações de tratamento (docs/lgpd.md) a partir do código."""
    from engine.lgpd import record as processing_record

    text = processing_record.render()
    path = Path(output)
    if check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            error(f"{output} está desatualizado: rode `credencia lgpd record`.")
        click.echo(f"{output} está atualizado")
        return
    path.write_text(text, encoding="utf-8")
    click.echo(f"{output} escrito")
