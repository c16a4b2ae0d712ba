"""``credencia serve``: gunicorn serving the app, and with ``--with-scheduler`` the scheduler in
a child process beside it (what ``make run`` runs).

The app is built once in gunicorn's master, which then forks the workers. The scheduler is a
separate program (``credencia scheduler --stop-with-parent PID``), started by the master once
it listens and never forked from it: a forked worker inherits nothing of it to clean up.

Stopping (SIGTERM from a service manager, SIGINT from Ctrl-C, to the master or to the whole
process group): the master asks the scheduler to stop (SIGTERM: it lets running jobs finish)
while gunicorn stops its workers, and waits for both within gunicorn's graceful timeout;
whatever is still running then is killed. The master exits 0. The scheduler starts with SIGINT
ignored — the master stops it — and stops by itself if the master disappears.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import click
from click.core import ParameterSource
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from web.cli.context import CliContext, pass_cli
from web.cli.db import require_current_schema


class SchedulerChild:
    """``credencia scheduler`` in a child process of gunicorn's master."""

    def __init__(self, log_level: str = "INFO") -> None:
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "web.cli", "scheduler", "--log-level", self.log_level,
            "--stop-with-parent", str(os.getpid()),
        ]  # fmt: skip
        # SIGINT ignored across exec: Ctrl-C reaches the whole process group, and a scheduler
        # still importing would die with a KeyboardInterrupt traceback; the master stops it.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        finally:
            signal.signal(signal.SIGINT, previous)

    def request_stop(self) -> None:
        """Ask it to finish its running jobs and exit (no-op once it has exited)."""
        if self.proc is not None:
            # send_signal() polls first: an exited (or already reaped) child is left alone.
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Wait until ``deadline`` (time.monotonic()) for it to exit; kill it after that."""
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


class ServeArbiter(Arbiter):
    """gunicorn's master, also starting and stopping the scheduler child when there is one."""

    scheduler: SchedulerChild | None = None

    def start(self) -> None:
        super().start()  # listening from here on: a port in use stops before the scheduler
        self.scheduler = getattr(self.app, "scheduler", None)
        if self.scheduler is not None:
            self.scheduler.start()

    def stop(self, graceful: bool = True) -> None:
        deadline = time.monotonic() + self.cfg.graceful_timeout
        if self.scheduler is not None:
            self.scheduler.request_stop()  # in parallel with the workers' stop
        super().stop(graceful)
        if self.scheduler is not None:
            self.scheduler.wait(deadline)


class ServeApplication(BaseApplication):
    """The app built in the master; our defaults, then GUNICORN_CMD_ARGS, then the options
    given on the command line (gunicorn's own precedence)."""

    def __init__(
        self,
        app: Any,
        defaults: dict[str, Any],
        explicit: dict[str, Any],
        scheduler: SchedulerChild | None,
    ) -> None:
        self.application = app
        self.defaults = defaults
        self.explicit = explicit
        self.scheduler = scheduler
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.defaults.items():
            self.cfg.set(key, value)
        env_args = self.cfg.parser().parse_args(self.cfg.get_cmd_args_from_env())
        config_file = self.explicit.get("config") or env_args.config
        if config_file:  # gunicorn's order: its config file, then GUNICORN_CMD_ARGS, then ours
            self._load_file(config_file)
        for key, value in vars(env_args).items():
            if value is not None and key not in ("args", "config"):
                self.cfg.set(key.lower(), value)
        for key, value in self.explicit.items():
            if key != "config":
                self.cfg.set(key, value)

    def _load_file(self, path: str) -> None:
        """A gunicorn configuration file (Python: ``workers = 4``…), as ``gunicorn -c`` reads it."""
        try:
            namespace = runpy.run_path(path)
        except (OSError, SyntaxError) as exc:
            raise click.ClickException(f"não foi possível ler {path}: {exc}") from None
        for key, value in namespace.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Any:
        return self.application

    def run(self) -> None:
        # What the master built (the app, the parsed processes, the imported modules) lives
        # as long as the workers forked from it: out of the collector's generations, the
        # workers' collections do not walk it again and again (a full one took ~170 ms).
        gc.freeze()
        try:
            ServeArbiter(self).run()
        except RuntimeError as exc:
            click.echo(f"erro: {exc}", err=True)
            sys.exit(1)


def _metrics_folder() -> None:
    """/metrics sums every worker's counters through files in PROMETHEUS_MULTIPROC_DIR: use
    the one given, else a fresh folder for this server (set before any counter exists)."""
    from prometheus_client import values

    from web.metrics import MULTIPROC_ENV

    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        os.makedirs(folder, exist_ok=True)
    else:
        os.environ[MULTIPROC_ENV] = created = tempfile.mkdtemp(prefix="credencia-metrics-")
        master = os.getpid()
        # Removed when the master exits (the forked workers run no atexit of the master's).
        atexit.register(lambda: os.getpid() == master and shutil.rmtree(created, True))
    # prometheus-client chose its value store when imported (before this command ran): choose
    # again. Our metrics are labelled, so their values are made later, in the workers.
    values.ValueClass = values.get_value_class()


def _worker_exited(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


@click.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, type=click.IntRange(1, 256))
@click.option("--with-scheduler", is_flag=True, help="Roda também o agendador, num processo filho.")
@click.option(
    "-c",
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Arquivo de configuração do gunicorn (como em gunicorn -c).",
)
@click.pass_context
@pass_cli
def serve(
    cli: CliContext,
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    with_scheduler: bool,
    config_file: str | None,
) -> None:
    """Serve a aplicação com gunicorn (e, com --with-scheduler, o agendador ao lado).

    Aceita a configuração do gunicorn: um arquivo (-c, ou -c em GUNICORN_CMD_ARGS) e as
    opções em GUNICORN_CMD_ARGS (ex.: "--graceful-timeout 20"), nessa ordem; as opções acima,
    quando dadas, prevalecem.
    """
    from web import create_app
    from web.warm import warm

    require_current_schema(cli)
    _metrics_folder()
    # The app's own database (with the web's statement timeout, engine.db.make_engine), not
    # the command's.
    app = create_app(cli.settings)
    # What every worker's first requests would do (templates, holidays, catalogs), done here
    # once: the workers are forked with it (web/warm.py).
    warm(app)
    # The master deployed processes with these pools; forked workers must not share sockets.
    app.extensions["credencia.db"].dispose()
    cli.db.dispose()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) is not ParameterSource.DEFAULT

    defaults: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": 4,
        # gthread, serving a kept-alive connection's next request in the thread that answered
        # the previous one (web/worker.py).
        "worker_class": "web.worker.LingeringThreadWorker",
        # Above gunicorn's 2 s default: a client reusing an idle connection just as the
        # server closes it gets a reset (docs/RELIABILITY.md, "Found by these runs").
        "keepalive": 5,
        # No gunicorn access line: the app logs each request once (``credencia.request``:
        # method, path, status, duration, client, request id, user), and a second line per
        # request cost ~8 % of a small request's CPU. ``--access-logfile`` turns it back on.
        "accesslog": None,
        # A worker's counters stay in the multiprocess folder; mark them dead when it exits.
        "child_exit": _worker_exited,
    }
    explicit: dict[str, Any] = {}
    if given("host") or given("port"):
        explicit["bind"] = f"{host}:{port}"
    if given("workers"):
        explicit["workers"] = workers
    if config_file:
        explicit["config"] = config_file
    server = ServeApplication(app, defaults, explicit, SchedulerChild() if with_scheduler else None)
    click.echo(f"Credencia em {', '.join('http://' + b for b in server.cfg.bind)}")
    server.run()
