"""``credencia demo load``: a demonstration organization with published logins — never in
production."""

from __future__ import annotations

import click

from engine.runtime.install import install
from web.cli.context import CliContext, error, pass_cli


@click.group()
def demo() -> None:
    """Dados de demonstração."""


@demo.command("load")
@pass_cli
def demo_load(cli: CliContext) -> None:
    """Carrega a organização de demonstração (uma vez) e imprime os logins."""
    from engine.demo import loader as demo_mod

    if cli.settings.production:
        # Its passwords and tokens are printed here and published in the source.
        error(
            "CREDENCIA_ENV=production: os dados de demonstração têm senhas e tokens públicos "
            "e não são carregados em produção."
        )
    install(cli.db, cli.settings.processes_dir)
    click.echo(demo_mod.load(cli.db, cli.settings))
