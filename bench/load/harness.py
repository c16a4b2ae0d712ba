"""Processes and databases for the load and fault runs: everything on 127.0.0.1, bounded, and
cleaned up (databases dropped, process groups killed) whatever happens.

Used by ``bench/load/run_load.py``, the scripts in ``bench/faults/`` and ``tests/faults``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    """The PostgreSQL database used to create and drop the runs' own databases."""
    return os.environ.get(
        "CREDENCIA_BENCH_POSTGRES_URL",
        os.environ.get("CREDENCIA_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
    )


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def create_database(prefix: str = "credencia_load") -> str:
    admin = admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(admin, name)


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"refusing to drop {name!r}")
    with psycopg.connect(admin_url(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_database(prefix: str = "credencia_load") -> Iterator[str]:
    url = create_database(prefix)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            drop_database(url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    pg = ""
    with contextlib.suppress(Exception), psycopg.connect(admin_url(), connect_timeout=5) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg,
        "loadavg": os.getloadavg(),
    }


def describe(info: dict[str, Any]) -> str:
    load = "/".join(f"{x:.2f}" for x in info["loadavg"])
    return (
        f"{info['date']}; {info['nproc']} CPU, {info['ram_gib']} GiB RAM; Python "
        f"{info['python']}; PostgreSQL {info['postgresql']}; load average before {load}"
    )


# ---------------------------------------------------------------- processes


def app_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a web or scheduler process on ``url``."""
    env = dict(os.environ)
    env.update(
        CREDENCIA_DATABASE_URL=url,
        # Same key in every process (sessions, encrypted secrets); a fixed one for the runs.
        CREDENCIA_SECRET_KEY=env.get("CREDENCIA_SECRET_KEY") or _run_key(),
        # The runs' certificates are self-signed (engine.samples.demo_certificate).
        CREDENCIA_CERTIFICATE_REQUIRE_ICP_BRASIL="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


_KEY: list[str] = []


def _run_key() -> str:
    if not _KEY:
        from engine import secrets as secret_store

        _KEY.append(secret_store.generate_key())
    return _KEY[0]


@dataclass
class Proc:
    """A child process in a process group of its own, with its output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = None
    _log: Any = None

    def start(self) -> Proc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the whole group, SIGKILL after ``timeout``."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        # Stragglers of the group (a worker orphaned by a killed master).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


@dataclass
class WebServer:
    """gunicorn serving ``web:create_app()`` (or ``credencia serve``) on a loopback port."""

    url: str
    log_dir: Path
    workers: int = 4
    threads: int = 2
    mode: str = "gunicorn"  # or "serve": `credencia serve` (the app built in the master)
    timeout: int = 30
    keep_alive: int = 2  # gunicorn's default
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: Proc | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.log_dir / f"access-{self.port}.log"

    def start(self, ready_timeout: float = 60.0) -> WebServer:
        if self.mode == "serve":
            args = [
                PYTHON, "-m", "web.cli", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.workers),
            ]  # fmt: skip
        else:
            args = [
                PYTHON, "-m", "gunicorn", "-w", str(self.workers), "--threads",
                str(self.threads), "-b", f"127.0.0.1:{self.port}", "--timeout", str(self.timeout),
                "--graceful-timeout", "10", "--keep-alive", str(self.keep_alive),
                "--access-logfile", str(self.access_log),
                "--access-logformat", '%(t)s "%(r)s" %(s)s %(b)s %(L)s %(p)s',
                "web:create_app()",
            ]  # fmt: skip
        self.proc = Proc(
            "web",
            args,
            app_env(self.url, **self.extra_env),
            self.log_dir / f"web-{self.port}.log",
        ).start()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"gunicorn exited; see {self.proc.log_path}")
            status, _ = http_json("GET", self.base + "/healthz", timeout=2)
            if status == 200 and len(self.worker_pids()) >= self.workers:
                return self
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn not ready after {ready_timeout}s; see {self.proc.log_path}")

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc and self.proc.alive() else []

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def scheduler(url: str, log_dir: Path, **extra_env: str) -> Proc:
    return Proc(
        "scheduler",
        [PYTHON, "-m", "web.cli", "scheduler", "--log-level", "INFO"],
        app_env(url, **extra_env),
        log_dir / "scheduler.log",
    ).start()


def count_statuses(access_log: Path) -> dict[int, int]:
    """Status codes in a gunicorn access log written with the format above."""
    counts: dict[int, int] = {}
    if not access_log.exists():
        return counts
    for line in access_log.read_text(errors="replace").splitlines():
        found = re.search(r'" (\d{3}) ', line)
        if found:
            code = int(found.group(1))
            counts[code] = counts.get(code, 0) + 1
    return counts


def server_errors(access_log: Path) -> list[str]:
    return [
        line
        for line in (
            access_log.read_text(errors="replace").splitlines() if access_log.exists() else []
        )
        if re.search(r'" 5\d\d ', line)
    ]


# ---------------------------------------------------------------- HTTP


def http_json(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    timeout: float = 30.0,
    raw: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, Any]:
    """One request on a fresh connection; (status, parsed JSON or text). Status 0: no answer
    (refused, reset, timed out) — the error text is the second value."""
    # loopback only, or the private bridge of bench/faults/multi_host.py
    assert url.startswith(("http://127.0.0.1:", "http://10.77.0.")), url
    host_port, _, path = url[len("http://") :].partition("/")
    host, _, port = host_port.partition(":")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = raw
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif content_type:
        headers["Content-Type"] = content_type
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, "/" + path, body=payload, headers=headers)
        res = conn.getresponse()
        data = res.read()
        kind = res.getheader("Content-Type", "")
        if "json" in kind:
            try:
                return res.status, json.loads(data)
            except ValueError:
                return res.status, data.decode(errors="replace")
        return res.status, data.decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def multipart(field_name: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def pg_tool(name: str) -> str | None:
    """pg_dump / pg_restore / pg_ctlcluster, from PATH or the Debian layout."""
    found = shutil.which(name)
    if found:
        return found
    for path in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(path)
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
