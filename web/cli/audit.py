"""``credencia audit`` and ``dashboard``: the hash-chained audit log and the Painel counters."""

from __future__ import annotations

import sys

import click

from engine.audit import verify as verification
from web.cli.context import CliContext, pass_cli


@click.group("audit")
def audit_group() -> None:
    """Trilha de auditoria."""


@audit_group.command("verify")
@click.option(
    "--full", is_flag=True, help="Desde o primeiro evento, ignorando os pontos de controle."
)
@pass_cli
def audit_verify(cli: CliContext, full: bool) -> None:
    """Verifica cada cadeia de hashes a partir do seu ponto de controle (ou desde o início com
    --full), avança os pontos de controle e informa todas as quebras de todas as cadeias."""
    report = verification.run(cli.db, by="cli", full=full)
    for chain in report.chains:
        since = "desde o início" if chain.full else f"após o seq {chain.start.seq}"
        if chain.broken:
            click.echo(f"{chain.chain}: QUEBRADA, {chain.broken} quebra(s) em {chain.checked} "
                       f"evento(s) verificados {since}", err=True)  # fmt: skip
            for problem in chain.breaks:
                click.echo(f"  {problem}", err=True)
        else:
            click.echo(f"{chain.chain}: íntegra, {chain.checked} evento(s) verificados {since}")
    if not report.ok:
        click.echo(f"QUEBRADA: {len([c for c in report.chains if c.broken])} cadeia(s) com "
                   f"quebras, {report.checked} evento(s) verificados", err=True)  # fmt: skip
        sys.exit(1)
    click.echo(f"íntegra: {report.checked} evento(s) verificados")


@click.group("dashboard")
def dashboard_group() -> None:
    """Painel: contadores por etapa e UF."""


@dashboard_group.command("recount")
@click.option("--check", is_flag=True, help="Só compara; sai com 1 se algum contador diverge.")
@pass_cli
def dashboard_recount(cli: CliContext, check: bool) -> None:
    """Recalcula (ou confere) os contadores do painel a partir dos estabelecimentos e instâncias."""
    from engine.accounts import queries as account_queries
    from engine.dashboard import counts

    with cli.db.read() as session:
        orgs = account_queries.organization_slugs(session, cli.actor)
    diverging = 0
    for org_id, slug in orgs:
        if check:
            with cli.db.read() as session:
                diff = counts.differences(session, org_id)
            for (uf, stage, code, status), (kept, actual) in sorted(diff.items()):
                click.echo(f"{slug}: {uf} / {stage or '-'} / {code or '-'} / {status}: "
                           f"contador {kept}, linhas {actual}")  # fmt: skip
            diverging += bool(diff)
        else:
            with cli.db.write() as session:
                counts.recompute(session, org_id)
            click.echo(f"{slug}: contadores recalculados")
    if check:
        if diverging:
            click.echo(f"{diverging} organização(ões) com contadores divergentes", err=True)
            sys.exit(1)
        click.echo(f"contadores conferem ({len(orgs)} organização(ões))")
