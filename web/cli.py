"""The ``credencia`` command: a thin face over the engine's services, like the pages and API."""

from __future__ import annotations

import codecs
import getpass
import json
import sys
from pathlib import Path

import click
from sqlalchemy import select

from engine import settings as settings_mod
from engine.access.actor import Actor
from engine.accounts import service as accounts
from engine.audit import service as audit
from engine.db import Database
from engine.definitions import service as definitions
from engine.errors import DomainError, Invalid
from engine.establishments import service as establishments


def _cli_actor() -> Actor:
    return Actor(user_id=None, label=f"cli:{getpass.getuser()}", is_system=True)


def _db() -> Database:
    db = Database(settings_mod.load().database_url)
    db.on_denied = audit.record_denial
    return db


def _fail(exc: DomainError) -> None:
    click.echo(f"erro: {exc.message}", err=True)
    if isinstance(exc, Invalid):
        for field, message in exc.errors.items():
            click.echo(f"  {field}: {message}", err=True)
    sys.exit(1)


@click.group()
def main() -> None:
    """Credencia — credenciamento de estabelecimentos de saúde na RNDS."""


# ------------------------------------------------------------------ database


@main.group()
def db() -> None:
    """Migrações do banco de dados."""


def alembic_config(url: str | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(settings_mod.ROOT / "migrations"))
    cfg.set_main_option(
        "sqlalchemy.url", (url or settings_mod.load().database_url).replace("%", "%%")
    )
    return cfg


def upgrade_database(url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    url = url or settings_mod.load().database_url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Aplica as migrações até REVISION (padrão: head)."""
    upgrade_database(revision=revision)
    click.echo("banco de dados atualizado")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Desfaz migrações até REVISION (ex.: base)."""
    from alembic import command

    command.downgrade(alembic_config(), revision)


@db.command("current")
def db_current() -> None:
    from alembic import command

    command.current(alembic_config())


# ------------------------------------------------------------------ organizations, users, tokens


@main.group()
def orgs() -> None:
    """Organizações."""


@orgs.command("create")
@click.argument("slug")
@click.option("--name", required=True)
def orgs_create(slug: str, name: str) -> None:
    try:
        with _db().write() as session:
            org = accounts.create_org(session, _cli_actor(), slug, name)
            click.echo(f"organização criada: {org.slug} ({org.name})")
    except DomainError as exc:
        _fail(exc)


@main.group()
def users() -> None:
    """Usuários e papéis."""


@users.command("create")
@click.argument("email")
@click.option("--org", "org_slug", required=True)
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "gestor", "integrador", "datasus", "auditor"]),
)
@click.option(
    "--establishment", "cnes", multiple=True, help="CNES (gestor/integrador); repita para vários."
)
@click.option("--password", default=None, help="Senha; gerada e impressa quando omitida.")
@click.option("--name", default="")
def users_create(
    email: str, org_slug: str, role: str, cnes: tuple[str, ...], password: str | None, name: str
) -> None:
    try:
        with _db().write() as session:
            user, new_password = accounts.create_user(
                session,
                _cli_actor(),
                email,
                org_slug=org_slug,
                role=role,
                establishments=cnes,
                password=password,
                name=name,
            )
            click.echo(f"{user.email}: papel {role} em {org_slug}")
            if new_password and password is None:
                click.echo(f"senha: {new_password}")
    except DomainError as exc:
        _fail(exc)


@main.group()
def tokens() -> None:
    """Tokens da API."""


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="")
def tokens_create(email: str, name: str) -> None:
    """Cria um token; ele é impresso na última linha e não pode ser recuperado depois."""
    try:
        with _db().write() as session:
            token = accounts.create_token(session, _cli_actor(), email, name)
        click.echo(f"token criado para {email} (guarde-o; não será mostrado de novo):")
        click.echo(token)
    except DomainError as exc:
        _fail(exc)


# ------------------------------------------------------------------ establishments


@main.group("establishments")
def establishments_group() -> None:
    """Estabelecimentos."""


def _csv_encoding(path: Path) -> str:
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
def establishments_import(file: Path, org_slug: str, skip_invalid: bool) -> None:
    """Importa um CSV (cnes,cnpj,razao_social,nome_fantasia,uf,municipio,cep,endereco,telefone,email[,cnes_pai])."""
    try:
        with _db().write() as session, file.open(encoding=_csv_encoding(file)) as lines:
            org = accounts.get_org(session, org_slug)
            report = establishments.import_csv(
                session, _cli_actor(), org.id, lines, skip_invalid=skip_invalid
            )
    except establishments.ImportFailed as exc:
        click.echo(f"erro: {exc.message}", err=True)
        for error in exc.report.errors:
            click.echo(f"  {error}", err=True)
        sys.exit(1)
    except DomainError as exc:
        _fail(exc)
    for error in report.errors:
        click.echo(f"  ignorada: {error}", err=True)
    click.echo(
        f"{report.rows} linhas: {report.created} criados, {report.updated} atualizados, {report.skipped} ignorados"
    )


# ------------------------------------------------------------------ processes


@main.group()
def processes() -> None:
    """Definições de processo (BPMN)."""


@processes.command("deploy")
def processes_deploy() -> None:
    """Implanta processes/*.bpmn; um arquivo alterado vira nova versão."""
    try:
        for definition, created in definitions.deploy_all(
            _db(), settings_mod.load().processes_dir, _cli_actor()
        ):
            state = "nova versão" if created else "sem mudança"
            click.echo(f"{definition.key} v{definition.version}: {state}")
    except definitions.DeployError as exc:
        click.echo(f"erro: {exc}", err=True)
        sys.exit(1)


@processes.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def processes_check(paths: tuple[Path, ...]) -> None:
    """Verifica modelos BPMN (padrão: processes/); uma linha por problema."""
    from engine.definitions.check import check_paths

    targets = list(paths) or [settings_mod.load().processes_dir]
    missing = [p for p in targets if not p.exists()]
    problems = [f"{p}: arquivo ou pasta não encontrado" for p in missing]
    problems += check_paths([p for p in targets if p.exists()])
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problema(s)", err=True)
        sys.exit(1)
    click.echo("nenhum problema encontrado")


@processes.command("list")
def processes_list() -> None:
    from sqlalchemy import func

    from engine.runtime.models import ProcessInstance

    with _db().read() as session:
        counts = dict(
            session.execute(
                select(ProcessInstance.definition_id, func.count()).group_by(
                    ProcessInstance.definition_id
                )
            ).all()
        )
        rows = definitions.list_definitions(session)
    if not rows:
        click.echo("nenhum processo implantado")
    for d in rows:
        click.echo(
            f"{d.key}\tv{d.version}\t{d.title}\t{d.content_hash[:12]}\t{d.deployed_at:%Y-%m-%d %H:%M}\t{counts.get(d.id, 0)} instância(s)"
        )


@main.group()
def instances() -> None:
    """Instâncias de processo."""


@instances.command("migrate")
@click.option("--process", "process_key", required=True)
@click.option("--to", "to_version", required=True, type=int)
@click.option(
    "--from", "from_version", type=int, default=None, help="Só as instâncias desta versão."
)
@click.option("--instance", "instance_ids", multiple=True, type=int, help="Só estas instâncias.")
def instances_migrate(
    process_key: str, to_version: int, from_version: int | None, instance_ids: tuple[int, ...]
) -> None:
    """Migra instâncias em andamento para outra versão; cada uma é recusada com o motivo se não puder."""
    from engine.runtime import migration

    results = migration.migrate_many(
        _db(),
        _cli_actor(),
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


# ------------------------------------------------------------------ audit


@main.group("audit")
def audit_group() -> None:
    """Trilha de auditoria."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Verifica a cadeia de hashes; informa o primeiro elo quebrado."""
    with _db().read() as session:
        checked, broken = audit.verify(session)
    if broken:
        click.echo(f"QUEBRADA após {checked} evento(s): {broken}", err=True)
        sys.exit(1)
    click.echo(f"íntegra: {checked} evento(s) verificados")


@main.group("dashboard")
def dashboard_group() -> None:
    """Painel: contadores por etapa e UF."""


@dashboard_group.command("recount")
@click.option("--check", is_flag=True, help="Só compara; sai com 1 se algum contador diverge.")
def dashboard_recount(check: bool) -> None:
    """Recalcula (ou confere) os contadores do painel a partir dos estabelecimentos e instâncias."""
    from engine.accounts.models import Organization
    from engine.dashboard import counts

    db = _db()
    with db.read() as session:
        orgs = list(session.execute(select(Organization.id, Organization.slug)))
    diverging = 0
    for org_id, slug in orgs:
        if check:
            with db.read() as session:
                diff = counts.differences(session, org_id)
            for (uf, stage, code, status), (kept, actual) in sorted(diff.items()):
                click.echo(f"{slug}: {uf} / {stage or '-'} / {code or '-'} / {status}: "
                           f"contador {kept}, linhas {actual}")  # fmt: skip
            diverging += bool(diff)
        else:
            with db.write() as session:
                counts.recompute(session, org_id)
            click.echo(f"{slug}: contadores recalculados")
    if check:
        if diverging:
            click.echo(f"{diverging} organização(ões) com contadores divergentes", err=True)
            sys.exit(1)
        click.echo(f"contadores conferem ({len(orgs)} organização(ões))")


# ------------------------------------------------------------------ demo and serving


@main.group()
def demo() -> None:
    """Dados de demonstração."""


@demo.command("load")
def demo_load() -> None:
    """Carrega a organização de demonstração (uma vez) e imprime os logins."""
    from engine.demo import loader as demo_mod

    settings = settings_mod.load()
    db = _db()
    definitions.deploy_all(db, settings.processes_dir)
    with db.write() as session:
        establishments.load_portfolios(session, settings.processes_dir / "portfolios.json")
    click.echo(demo_mod.load(db, settings))


@main.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--workers", default=2, type=int)
@click.option("--with-scheduler", is_flag=True, help="Roda também o agendador, num processo filho.")
def serve(host: str, port: int, workers: int, with_scheduler: bool) -> None:
    """Serve a aplicação com gunicorn (e, com --with-scheduler, o agendador ao lado)."""
    from gunicorn.app.base import BaseApplication

    from web import create_app

    app = create_app()
    # The master deployed processes with its pool; forked workers must not share its sockets.
    app.extensions["credencia.db"].dispose()

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", 4)
            # Above gunicorn's 2 s default: a client reusing an idle connection just as the
            # server closes it gets a reset (docs/RELIABILITY.md, "Found by these runs").
            self.cfg.set("keepalive", 5)
            self.cfg.set("accesslog", "-")

        def load(self):  # type: ignore[no-untyped-def]
            return app

    click.echo(f"Credencia em http://{host}:{port}")
    proc = None
    if with_scheduler:
        from engine.scheduler import runner

        proc = runner.start_process(settings_mod.load())  # spawned, never forked from gunicorn
    try:
        _App().run()
    finally:
        if proc is not None:
            proc.stop()


@main.command("export-state", hidden=True)
@click.argument("instance_id", type=int)
def export_state(instance_id: int) -> None:
    """Imprime o estado salvo de uma instância (para depuração e fixtures)."""
    from engine.runtime.models import ProcessInstance

    with _db().read() as session:
        inst = session.get(ProcessInstance, instance_id)
        if inst is None:
            click.echo("instância não encontrada", err=True)
            sys.exit(1)
        click.echo(json.dumps(inst.state, ensure_ascii=False))


def _register_subcommands() -> None:
    from web.cli_certificates import certificates, secrets_group
    from web.cli_scheduler import outbox, scheduler

    main.add_command(certificates)
    main.add_command(secrets_group)
    main.add_command(scheduler)
    main.add_command(outbox)


_register_subcommands()

if __name__ == "__main__":
    main()
