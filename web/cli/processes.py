"""``credencia processes`` and ``instances``: BPMN definitions and the instances running them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.definitions import service as definitions
from engine.runtime.install import install
from web.cli.context import ROW_ID, CliContext, error, pass_cli


@click.group()
def processes() -> None:
    """Definições de processo (BPMN)."""


@processes.command("deploy")
@pass_cli
def processes_deploy(cli: CliContext) -> None:
    """Carrega os portfólios e implanta processes/*.bpmn; um arquivo alterado vira nova versão."""
    folder = cli.settings.processes_dir
    if not folder.is_dir() or not any(folder.glob("*.bpmn")):
        error(f"nenhum processo (*.bpmn) em {folder}: confira CREDENCIA_PROCESSES_DIR")
    click.echo(f"processos de {folder}")
    try:
        done = install(cli.db, cli.settings.processes_dir, cli.actor)
    except definitions.DeployError as exc:
        error(str(exc))
    click.echo(f"portfólios: {done.portfolios_added} novo(s)")
    for definition, created in done.processes:
        state = "nova versão" if created else "sem mudança"
        click.echo(f"{definition.key} v{definition.version}: {state}")
    for warning in done.warnings:
        click.echo(f"aviso: {warning}", err=True)
    if done.warnings:
        click.echo(f"{len(done.warnings)} aviso(s); a implantação foi feita", err=True)


@processes.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@pass_cli
def processes_check(cli: CliContext, paths: tuple[Path, ...]) -> None:
    """Verifica modelos BPMN (padrão: processes/); uma linha por problema."""
    from engine.definitions.check import check_paths

    targets = list(paths) or [cli.settings.processes_dir]
    missing = [p for p in targets if not p.exists()]
    problems = [f"{p}: arquivo ou pasta não encontrado" for p in missing]
    warnings: list[str] = []
    problems += check_paths([p for p in targets if p.exists()], warnings)
    for warning in warnings:
        click.echo(f"aviso: {warning}")
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problema(s)", err=True)
        sys.exit(1)
    click.echo("nenhum problema encontrado")


@processes.command("list")
@pass_cli
def processes_list(cli: CliContext) -> None:
    """Lista as versões implantadas e quantas instâncias cada uma tem."""
    from engine.runtime import queries as instance_queries

    with cli.db.read() as session:
        counts = instance_queries.instance_counts(session, cli.actor, None)
        rows = definitions.list_definitions(session)
    if not rows:
        click.echo("nenhum processo implantado")
    for d in rows:
        click.echo(
            f"{d.key}\tv{d.version}\t{d.title}\t{d.content_hash[:12]}\t{d.deployed_at:%Y-%m-%d %H:%M}\t{counts.get(d.id, 0)} instância(s)"
        )


@click.group()
def instances() -> None:
    """Instâncias de processo."""


@instances.command("migrate")
@click.option("--process", "process_key", required=True)
@click.option("--to", "to_version", required=True, type=ROW_ID)
@click.option(
    "--from", "from_version", type=ROW_ID, default=None, help="Só as instâncias desta versão."
)
@click.option("--instance", "instance_ids", multiple=True, type=ROW_ID, help="Só estas instâncias.")
@pass_cli
def instances_migrate(
    cli: CliContext,
    process_key: str,
    to_version: int,
    from_version: int | None,
    instance_ids: tuple[int, ...],
) -> None:
    """Migra instâncias em andamento para outra versão; cada uma é recusada com o motivo se não puder."""
    from engine.runtime import migration

    results = migration.migrate_many(
        cli.db,
        cli.actor,
        process_key,
        to_version,
        from_version=from_version,
        instance_ids=list(instance_ids),
    )
    for instance_id, ok, reason in results:
        click.echo(f"instância {instance_id}: {'migrada' if ok else 'recusada: ' + reason}")
    done = sum(1 for _, ok, _ in results if ok)
    click.echo(f"{done} migrada(s), {len(results) - done} recusada(s)")
    if done < len(results):
        sys.exit(1)


@click.command("export-state", hidden=True)
@click.argument("instance_id", type=ROW_ID)
@pass_cli
def export_state(cli: CliContext, instance_id: int) -> None:
    """Imprime o estado salvo de uma instância (para depuração e fixtures)."""
    from engine.runtime.models import ProcessInstance

    with cli.db.read() as session:
        inst = session.get(ProcessInstance, instance_id)
        if inst is None:
            click.echo("instância não encontrada", err=True)
            sys.exit(1)
        click.echo(json.dumps(inst.state, ensure_ascii=False))
