"""``credencia audit`` and ``dashboard``: the hash-chained audit log and the Painel counters."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from engine.audit import service as audit
from web.cli.context import CliContext, pass_cli


@click.group("audit")
def audit_group() -> None:
    """Trilha de auditoria."""


@audit_group.command("verify")
@pass_cli
def audit_verify(cli: CliContext) -> None:
    """Verifica a cadeia de hashes; informa o primeiro elo quebrado."""
    with cli.db.read() as session:
        checked, broken = audit.verify(session)
    if broken:
        click.echo(f"QUEBRADA após {checked} evento(s): {broken}", err=True)
        sys.exit(1)
    click.echo(f"íntegra: {checked} evento(s) verificados")


@click.group("dashboard")
def dashboard_group() -> None:
    """Painel: contadores por etapa e UF."""


@dashboard_group.command("recount")
@click.option("--check", is_flag=True, help="Só compara; sai com 1 se algum contador diverge.")
@pass_cli
def dashboard_recount(cli: CliContext, check: bool) -> None:
    """Recalcula (ou confere) os contadores do painel a partir dos estabelecimentos e instâncias."""
    from engine.accounts.models import Organization
    from engine.dashboard import counts

    with cli.db.read() as session:
        orgs = list(session.execute(select(Organization.id, Organization.slug)))
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
