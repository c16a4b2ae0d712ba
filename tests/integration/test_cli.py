"""The `credencia` command as an administrator uses it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine import settings as settings_mod
from engine.establishments.models import Establishment
from web.cli import main

HEADER = "cnes,cnpj,razao_social,nome_fantasia,uf,municipio,cep,endereco,telefone,email,cnes_pai\n"
GOOD = [
    "1234567,10302910000182,Hospital A,HA,PR,Curitiba,80000-000,Rua A 1,(41) 3333-4444,a@h.gov.br,",
    "2345678,16727230000197,Hospital B,HB,PR,Londrina,86000000,Rua B 2,4333334444,b@h.gov.br,1234567",
    "3456789,12ABC34501DE35,Clínica C,CC,SP,São Paulo,01000000,Rua C 3,1133334444,c@h.gov.br,",
]


def _count(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Establishment))


def test_orgs_users_tokens(cli, client):
    assert "organização criada" in cli("orgs", "create", "sesa-pr", "--name", "SESA PR")
    cli("orgs", "create", "sesa-pr", "--name", "De novo", code=1)
    cli("orgs", "create", "Bad Slug!", "--name", "x", code=1)
    out = cli("users", "create", "Admin@SESA.pr.gov.br", "--org", "sesa-pr", "--role", "admin")
    assert "senha:" in out
    token = cli("tokens", "create", "admin@sesa.pr.gov.br").strip().splitlines()[-1]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json["roles"] == [{"org": "sesa-pr", "role": "admin"}]
    out = cli(
        "users",
        "create",
        "g@x.br",
        "--org",
        "sesa-pr",
        "--role",
        "gestor",
        "--establishment",
        "7654321",
        code=1,
    )
    assert "7654321" in out
    cli(
        "users",
        "create",
        "d@x.br",
        "--org",
        "sesa-pr",
        "--role",
        "datasus",
        "--password",
        "curta",
        code=1,
    )


def test_import_is_all_or_nothing(cli, db, tmp_path):
    cli("orgs", "create", "sesa-pr", "--name", "SESA PR")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER + "\n".join([*GOOD, "1234,10302910000183,,X,XX,,1,,,email-ruim,"]) + "\n",
        encoding="utf-8",
    )
    out = cli("establishments", "import", str(bad), "--org", "sesa-pr", code=1)
    assert "nada foi importado" in out
    assert "linha 5, cnes: CNES deve ter 7 dígitos." in out
    assert (
        "linha 5, cnpj:" in out
        and "linha 5, uf: UF inválida." in out
        and "linha 5, email: E-mail inválido." in out
    )
    assert _count(db) == 0
    out = cli("establishments", "import", str(bad), "--org", "sesa-pr", "--skip-invalid")
    assert "3 criados" in out and "1 ignorados" in out
    assert _count(db) == 3
    good = tmp_path / "good.csv"
    good.write_text(
        HEADER + GOOD[0].replace("Hospital A", "Hospital A Renomeado") + "\n", encoding="utf-8"
    )
    assert "1 atualizados" in cli("establishments", "import", str(good), "--org", "sesa-pr")
    with db.read() as s:
        row = s.scalar(select(Establishment).where(Establishment.cnes == "1234567"))
        assert (
            row.razao_social == "Hospital A Renomeado"
            and row.cep == "80000000"
            and row.telefone == "4133334444"
        )
        alnum = s.scalar(select(Establishment).where(Establishment.cnes == "3456789"))
        assert alnum.cnpj == "12ABC34501DE35"


def test_import_checks_header_duplicates_and_parents(cli, db, tmp_path):
    cli("orgs", "create", "sesa-pr", "--name", "SESA PR")
    f = tmp_path / "x.csv"
    f.write_text("cnes,cnpj\n1234567,10302910000182\n", encoding="utf-8")
    assert "colunas ausentes" in cli("establishments", "import", str(f), "--org", "sesa-pr", code=1)
    f.write_text(HEADER + GOOD[0] + "\n" + GOOD[0] + "\n", encoding="utf-8")
    assert "CNES repetido (já na linha 2)" in cli(
        "establishments", "import", str(f), "--org", "sesa-pr", code=1
    )
    f.write_text(HEADER + GOOD[1] + "\n", encoding="utf-8")
    assert "CNES pai não cadastrado" in cli(
        "establishments", "import", str(f), "--org", "sesa-pr", code=1
    )
    f.write_text(HEADER.replace(",", ";") + GOOD[0].replace(",", ";") + "\n", encoding="utf-8")
    assert "1 criados" in cli(
        "establishments", "import", str(f), "--org", "sesa-pr"
    )  # Excel's ';' CSV
    assert _count(db) == 1


def test_processes_list_and_deploy_new_version(cli, tmp_path, monkeypatch):
    import shutil

    out = cli("processes", "list")
    assert "credenciamento-rnds\tv1" in out
    procs = tmp_path / "processes"
    shutil.copytree(settings_mod.ROOT / "processes", procs)
    monkeypatch.setenv("CREDENCIA_PROCESSES_DIR", str(procs))
    monkeypatch.setattr(settings_mod, "_settings", None)
    assert "sem mudança" in cli("processes", "deploy")
    bpmn = procs / "credenciamento-rnds.bpmn"
    bpmn.write_text(
        bpmn.read_text(encoding="utf-8").replace(
            "Ambientar com serviços", "Ambientar-se com os serviços"
        ),
        encoding="utf-8",
    )
    assert "credenciamento-rnds v2: nova versão" in cli("processes", "deploy")
    out = cli("processes", "list")
    assert "\tv1\t" in out and "\tv2\t" in out
    (procs / "credenciamento-rnds" / "ambientar-servicos.schema.json").write_text(
        "{", encoding="utf-8"
    )
    assert "JSON inválido" in cli("processes", "deploy", code=1)


def test_dashboard_recount_checks_and_rebuilds_the_counters(cli, db, make):
    from engine.dashboard.models import StageCount

    org = make.org()
    make.establishment(org, uf="PR")
    make.establishment(org, uf="SP")
    assert "conferem (1 organização(ões))" in cli("dashboard", "recount", "--check")
    with db.write() as s:
        s.execute(StageCount.__table__.delete().where(StageCount.uf == "SP"))
    out = cli("dashboard", "recount", "--check", code=1)
    assert "sesa-pr: SP / - / - / none: contador 0, linhas 1" in out
    assert "sesa-pr: contadores recalculados" in cli("dashboard", "recount")
    assert "conferem" in cli("dashboard", "recount", "--check")


def _portfolio_codes(db) -> set[str]:
    from engine.establishments.models import Portfolio

    with db.read() as s:
        return set(s.scalars(select(Portfolio.code)))


def test_processes_deploy_loads_the_portfolios_and_says_what_it_did(cli, db) -> None:
    import json

    from engine.establishments.models import Portfolio

    expected = {
        p["code"]
        for p in json.loads((settings_mod.ROOT / "processes" / "portfolios.json").read_text())
    }
    with db.write() as s:
        s.execute(Portfolio.__table__.delete())
    out = cli("processes", "deploy")
    assert f"portfólios: {len(expected)} novo(s)" in out
    assert "credenciamento-rnds v1: sem mudança" in out
    assert _portfolio_codes(db) == expected
    assert "portfólios: 0 novo(s)" in cli("processes", "deploy")


def test_install_loads_portfolios_then_deploys_each_process_once(db) -> None:
    from engine.runtime.install import install

    processes_dir = settings_mod.ROOT / "processes"
    first = install(db, processes_dir)
    assert first.portfolios_added == len(_portfolio_codes(db)) > 0
    keys = {d.key for d, _ in first.processes}
    assert "credenciamento-rnds" in keys
    assert [created for _, created in first.processes] == [True] * len(first.processes)
    again = install(db, processes_dir)
    assert again.portfolios_added == 0 and again.deployed == []
    assert {d.key for d, created in again.processes if not created} == keys


@pytest.mark.parametrize("env", ["production", "Production"])
def test_demo_load_refuses_to_run_in_production(cli, db, monkeypatch, env) -> None:
    from engine.accounts.models import Organization

    monkeypatch.setenv("CREDENCIA_ENV", env)
    monkeypatch.setattr(settings_mod, "_settings", None)
    out = cli("demo", "load", code=1)
    assert "CREDENCIA_ENV=production" in out and "não são carregados em produção" in out
    assert "senha:" not in out and "token:" not in out
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Organization)) == 0


def test_demo_load_outside_production_prints_the_logins(cli) -> None:
    out = cli("demo", "load")
    assert "Dados de demonstração carregados." in out and "admin@demo.credencia.local" in out


@pytest.fixture
def bare_cli(tmp_path, monkeypatch):
    """The CLI on a database file of its own (no app fixture)."""
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    monkeypatch.setenv("CREDENCIA_DATABASE_URL", url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return result.output

    run.url = url
    return run


@pytest.mark.parametrize("command", [["serve"], ["serve", "--with-scheduler"], ["scheduler"]])
def test_long_running_commands_refuse_a_database_that_was_never_migrated(bare_cli, command) -> None:
    out = bare_cli(*command, code=1)
    assert "o banco de dados não foi migrado (esperada a revisão" in out
    assert "rode `credencia db upgrade`" in out
    assert "no such table" not in out


@pytest.mark.parametrize("command", [["serve"], ["scheduler"]])
def test_long_running_commands_refuse_a_database_behind_the_migrations(bare_cli, command) -> None:
    from web.cli import upgrade_database

    upgrade_database(bare_cli.url, "0003")
    out = bare_cli(*command, code=1)
    assert "o banco de dados está na revisão 0003" in out and "credencia db upgrade" in out


def test_a_schema_built_without_the_migrations_is_refused_too(cli) -> None:
    """The tests' databases are built from the models, with no Alembic revision."""
    assert "rode `credencia db upgrade`" in cli("scheduler", code=1)


def test_serve_warms_the_app_in_the_master_before_the_workers_fork(bare_cli, monkeypatch) -> None:
    """Templates, holidays and catalogs are loaded once, before gunicorn's arbiter forks
    (web/warm.py): the app handed to the arbiter is the warmed one."""
    from web import warm as warm_module
    from web.cli import serve

    steps: list[tuple[str, object]] = []
    real_warm = warm_module.warm
    monkeypatch.setattr(warm_module, "warm", lambda app: steps.append(("warm", real_warm(app))))
    monkeypatch.setattr(serve, "_metrics_folder", lambda: None)  # (no multiprocess metrics here)
    monkeypatch.setattr(serve.ServeApplication, "run", lambda self: steps.append(("run", None)))
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    bare_cli("db", "upgrade")
    assert "Credencia em http://127.0.0.1:5999" in bare_cli("serve", "--port", "5999")
    assert [step for step, _ in steps] == ["warm", "run"]
    assert steps[0][1]["templates"] >= 40 and steps[0][1]["locales"] == 2


def test_an_upgraded_database_passes_the_check(bare_cli) -> None:
    from engine.db import Database
    from web.cli.db import schema_problem

    db = Database(bare_cli.url)
    try:
        assert schema_problem(db) is not None
        bare_cli("db", "upgrade")
        assert schema_problem(db) is None
    finally:
        db.dispose()


@pytest.fixture
def invoke(db_url, db, app, monkeypatch):
    """The CLI's raw result (the ``cli`` fixture's, with the exception it ended on)."""
    monkeypatch.setenv("CREDENCIA_DATABASE_URL", db_url)
    monkeypatch.setattr(settings_mod, "_settings", None)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args))


BEYOND = "9" * 25  # beyond any id: SQLite's driver refuses it (OverflowError), PostgreSQL too


@pytest.mark.parametrize(
    "args",
    [
        ["outbox", "retry", BEYOND],
        ["outbox", "list", "--limit", BEYOND],
        ["instances", "migrate", "--process", "credenciamento-rnds", "--to", BEYOND],
        [
            "instances",
            "migrate",
            "--process",
            "credenciamento-rnds",
            "--to",
            "2",
            "--instance",
            str(2**31),
        ],  # fmt: skip
        ["export-state", BEYOND],
        ["serve", "--workers", "0"],
    ],
)
def test_a_number_out_of_range_is_a_usage_error_not_a_traceback(invoke, args) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "is not in the range" in result.output


def test_a_file_the_command_cannot_write_or_read_is_an_error_not_a_traceback(invoke, tmp_path):
    cases = [
        (["lgpd", "record", "--output", ""], "é uma pasta, não um arquivo"),  # "": the folder
        (
            ["lgpd", "record", "--output", str(tmp_path / "nao" / "ha.md")],
            "arquivo ou pasta inexistente",
        ),  # fmt: skip
        (["processes", "check", "x" * 300], "nome longo demais"),
    ]
    for args, reason in cases:
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert "erro: não foi possível usar o arquivo " in result.output and reason in result.output
