"""``credencia serve --with-scheduler`` (what ``make run`` runs) stops cleanly on SIGTERM and
SIGINT: web and scheduler within gunicorn's graceful timeout, exit status 0, no traceback,
and no process of it left behind.

A real server on a free port against a migrated SQLite database; processes are tracked by pid
(and start time, so a reused pid is not mistaken for ours) and killed by pid in teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.load.harness import children, free_port
from engine.scheduler.jobs import JOBS
from web.cli import upgrade_database

ROOT = Path(__file__).resolve().parents[2]
GRACEFUL_TIMEOUT = 30  # given through GUNICORN_CMD_ARGS, which `credencia serve` honours
WORKERS = 2
METRICS_TOKEN = "token-de-metricas-do-teste"


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *_descendants(child)]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    tracked: dict[int, str] = field(default_factory=dict)  # pid -> start time

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def track(self) -> None:
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            started = _start_time(pid)
            if started is not None:
                self.tracked.setdefault(pid, started)

    def alive(self) -> list[int]:
        """Tracked processes still running (same pid and start time)."""
        return [pid for pid, started in self.tracked.items() if _start_time(pid) == started]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


def _scheduler_idle(url: str) -> bool:
    """Every job of the scheduler has run once and none is running now: stopping it then must
    not have to wait for a job (a job still running is let finish, which may take longer)."""
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=5)) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM scheduler_job WHERE runs > 0 "
            "AND last_finished_at >= last_started_at"
        ).fetchone()
    return rows[0] == len(JOBS)


@pytest.fixture
def migrated_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'credencia.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def server(migrated_url: str, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "CREDENCIA_DATABASE_URL": migrated_url,
        "PYTHONPATH": str(ROOT),
        "GUNICORN_CMD_ARGS": f"--graceful-timeout {GRACEFUL_TIMEOUT}",
        "CREDENCIA_METRICS_TOKEN": METRICS_TOKEN,
    }
    stderr_path = tmp_path / "serve.err"
    with (tmp_path / "serve.out").open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--with-scheduler"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, as under a terminal or a service
        )
    srv = Server(proc, port, stderr_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"serve exited early:\n{srv.stderr}"
            srv.track()
            commands = [_cmdline(pid) for pid in children(proc.pid)]
            if (
                srv.healthy()
                and _scheduler_idle(migrated_url)
                and sum(" scheduler " not in c for c in commands) >= WORKERS
            ):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"serve not ready in 90 s:\n{srv.stderr}")
        srv.track()
        yield srv
    finally:
        for pid in [proc.pid, *srv.alive()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        deadline = time.monotonic() + 10
        while srv.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert srv.alive() == [], "processes of the server survived SIGKILL"


def _assert_stops_cleanly(srv: Server) -> None:
    started = time.monotonic()
    try:
        code = srv.proc.wait(GRACEFUL_TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running {GRACEFUL_TIMEOUT + 5} s after the signal")
    took = time.monotonic() - started
    deadline = time.monotonic() + 5  # children may lag the master by a moment
    while srv.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    stderr = srv.stderr
    assert code == 0, stderr
    assert took < GRACEFUL_TIMEOUT, f"took {took:.1f} s:\n{stderr}"
    assert "Traceback" not in stderr and "can only join a child process" not in stderr, stderr
    assert srv.alive() == [], f"left running: {[(p, _cmdline(p)) for p in srv.alive()]}"
    # The scheduler was asked to stop and stopped by itself, not killed.
    assert "stopping (waiting for running jobs)" in stderr, stderr
    assert "web.cli.scheduler: scheduler stopped" in stderr, stderr
    assert len(srv.tracked) >= 1 + WORKERS + 1  # master, workers, scheduler


def _scrape(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310 (http://127.0.0.1)
        return r.read().decode()


def _sign_in_pages(text: str) -> float:
    wanted = ('route="/entrar"', 'method="GET"', 'status="200"')
    for line in text.splitlines():
        if line.startswith("credencia_http_requests_total{") and all(w in line for w in wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_sum_every_worker(server: Server) -> None:
    """Requests spread over the workers; any worker's /metrics counts them all."""
    for _ in range(20):
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/entrar", timeout=5) as r:
            assert r.status == 200
    scrapes = [_scrape(server.port) for _ in range(4)]
    assert [_sign_in_pages(text) for text in scrapes] == [20.0] * 4
    assert "credencia_tasks_open" in scrapes[0] and "credencia_outbox_messages" in scrapes[0]
    assert len(server.tracked) >= 1 + WORKERS


def test_sigterm_to_the_master_stops_web_and_scheduler(server: Server) -> None:
    """A service manager or `docker stop` signals the master only."""
    os.kill(server.proc.pid, signal.SIGTERM)
    _assert_stops_cleanly(server)


def test_sigterm_to_the_process_group_stops_web_and_scheduler(server: Server) -> None:
    """systemd (KillMode=control-group) and the load harness signal every process."""
    os.killpg(server.proc.pid, signal.SIGTERM)
    _assert_stops_cleanly(server)


def test_ctrl_c_stops_web_and_scheduler(server: Server) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group."""
    os.killpg(server.proc.pid, signal.SIGINT)
    _assert_stops_cleanly(server)


def test_when_the_master_is_killed_the_scheduler_and_workers_stop_by_themselves(
    server: Server,
) -> None:
    """SIGKILL (the OOM killer) cannot be handled: the scheduler notices its parent is gone
    and stops, as gunicorn's workers do."""
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    deadline = time.monotonic() + GRACEFUL_TIMEOUT + 5
    while server.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.alive() == [], [(p, _cmdline(p)) for p in server.alive()]
    assert "parent" in server.stderr and "gone: stopping" in server.stderr, server.stderr
    assert "web.cli.scheduler: scheduler stopped" in server.stderr


def test_gunicorn_cmd_args_apply_and_the_given_options_win(monkeypatch) -> None:
    from web.cli.serve import ServeApplication

    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--graceful-timeout 7 --workers 5 --bind 0.0.0.0:8000")
    defaults = {"bind": "127.0.0.1:5000", "workers": 2, "threads": 4, "keepalive": 5}
    from_env = ServeApplication(object(), defaults, {}, None).cfg
    assert from_env.graceful_timeout == 7 and from_env.workers == 5
    assert from_env.bind == ["0.0.0.0:8000"] and from_env.threads == 4
    given = ServeApplication(object(), defaults, {"workers": 3, "bind": "127.0.0.1:9000"}, None).cfg
    assert given.workers == 3 and given.bind == ["127.0.0.1:9000"] and given.graceful_timeout == 7


def test_a_gunicorn_config_file_applies_below_env_and_options(monkeypatch, tmp_path) -> None:
    from web.cli.serve import ServeApplication

    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("workers = 6\ntimeout = 45\ngraceful_timeout = 9\nnot_a_setting = 1\n")
    defaults = {"bind": "127.0.0.1:5000", "workers": 2, "threads": 4, "keepalive": 5}
    monkeypatch.setenv("GUNICORN_CMD_ARGS", f"-c {conf} --graceful-timeout 7")
    cfg = ServeApplication(object(), defaults, {}, None).cfg
    # the file over our defaults, GUNICORN_CMD_ARGS over the file
    assert cfg.workers == 6 and cfg.timeout == 45 and cfg.graceful_timeout == 7
    monkeypatch.delenv("GUNICORN_CMD_ARGS")
    cfg = ServeApplication(object(), defaults, {"config": str(conf), "workers": 3}, None).cfg
    assert cfg.workers == 3 and cfg.timeout == 45 and cfg.graceful_timeout == 9


def test_the_master_freezes_what_it_built_before_the_workers_fork(monkeypatch) -> None:
    """The app, the parsed processes and the modules go to the collector's permanent
    generation before the arbiter forks: the workers' collections never walk them."""
    import gc

    from web.cli import serve

    seen: list[int] = []
    monkeypatch.setattr(serve.ServeArbiter, "run", lambda self: seen.append(gc.get_freeze_count()))
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    gc.unfreeze()
    try:
        serve.ServeApplication(object(), {"bind": "127.0.0.1:5000"}, {}, None).run()
    finally:
        gc.unfreeze()
    assert seen and seen[0] > 0
