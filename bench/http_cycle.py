"""The task cycle over HTTP against a real ``credencia serve``: read the task, complete it, find
the next — what a client of the API does per task — with one and four clients, on SQLite and
on PostgreSQL.

Each run:

- builds a fresh database (SQLite file / PostgreSQL database ``credencia_bench_<random>``) with
  the process deployed, one organization, establishments with gestores and integradores scoped
  to them and API tokens (``bench/engine.py``'s world), and starts ``--instances`` instances of
  ``credenciamento-rnds`` with their certificate and evidence files stored (not timed);
- starts ``credencia serve --workers 2`` (gunicorn, the app built in the master) on a loopback
  port, without the scheduler;
- for 1 and then 4 clients (separate processes, one keep-alive connection each, the instances
  split between them), walks every instance along the production path: ``GET
  /api/v1/tasks/<id>`` (the task and its form), ``POST /api/v1/tasks/<id>/complete`` with the
  real form data, then the next task: from the completion's answer (``next``) when it carries
  one, otherwise ``GET /api/v1/tasks?instance=…&state=ready`` — a third request;
- reads the CPU time (user + system, in nanoseconds: each thread's
  ``/proc/<pid>/task/<tid>/schedstat``) of the server's processes (gunicorn master and
  workers) and of PostgreSQL's backends serving the bench database before and after each
  phase, and divides by the requests of the phase;
- then splits a task's CPU between its requests: the task's read and the search for the next
  measured alone (the first tasks of ``--split`` more instances, read back to back on one
  connection), the completion as what is left of the one-client phase's CPU per task;
- and measures the completion request directly, without that subtraction: ``--instances``
  more instances walked by one client sending only their completions, back to back on one
  connection, each next task's id (and lane) read by the client from the database itself, not
  over HTTP — the same client whatever the server's answer carries, so that code without the
  answer's ``next`` is measured alike — the server's CPU divided by the completions;
- records a CPU-speed probe (a fixed pure-Python workload) with the figures, so runs on
  machines of different speed can be compared.

Nothing asserts timings. ``--json FILE`` writes the figures.

    .venv/bin/python bench/http_cycle.py                 # both databases, 1 and 4 clients
    .venv/bin/python bench/http_cycle.py --instances 24 --no-postgres
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench import engine as eb  # noqa: E402
from bench.load import harness  # noqa: E402
from engine.db import Database  # noqa: E402
from engine.demo import samples  # noqa: E402
from engine.files import service as files  # noqa: E402
from engine.runtime import instances as runtime_instances  # noqa: E402
from engine.runtime.models import READY, Task  # noqa: E402

# ------------------------------------------------------------------ CPU from /proc


def cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time of each thread of one process, in seconds, by thread id (empty when the
    process is gone): the scheduler's own count (``/proc/<pid>/task/<tid>/schedstat``, in
    nanoseconds), not ``/proc/<pid>/stat``'s clock ticks — a tick (10 ms) is more than one
    request costs, so per-request figures read in ticks moved by ±1 ms between runs."""
    times: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return times
    for tid in tids:
        try:
            times[int(tid)] = (
                int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9
            )
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile: its last reading stands
    return times


def total_cpu(pids: list[int]) -> float:
    return sum(sum(cpu_seconds(pid).values()) for pid in pids)


def server_pids(server: harness.WebServer) -> list[int]:
    return [server.proc.pid, *server.worker_pids()] if server.proc else []


# The bench client's own connection (``completions_alone`` reads the next task with it): its
# backend's CPU is the client's, not the server's.
CLIENT_NAME = "credencia-bench-client"


def postgres_backends(url: str) -> list[int]:
    name = url.rpartition("/")[2]
    with psycopg.connect(harness.admin_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND application_name <> %s",
            (name, CLIENT_NAME),
        ).fetchall()
    return [r[0] for r in rows]


class CpuMeter:
    """CPU seconds of a changing set of processes between ``start`` and ``stop``: a thread
    that appears meanwhile counts from zero; one that ends keeps its last reading."""

    def __init__(self, pids: Any) -> None:
        self._pids = pids  # () -> list[int]
        self._seen: dict[int, float] = {}
        self._start: dict[int, float] = {}

    def _read(self) -> None:
        for pid in self._pids():
            for tid, value in cpu_seconds(pid).items():
                if value:
                    self._seen[tid] = value

    def start(self) -> None:
        self._seen = {}
        self._read()
        self._start = dict(self._seen)

    def sample(self) -> None:
        self._read()

    def stop(self) -> float:
        self._read()
        return sum(v - self._start.get(tid, 0.0) for tid, v in self._seen.items())


class Meters:
    """The server's CPU meter, and PostgreSQL's backends' when ``url`` is PostgreSQL's, started
    at once; ``stop`` gives (server seconds, PostgreSQL seconds or None)."""

    def __init__(self, server: harness.WebServer, url: str) -> None:
        self.server = CpuMeter(lambda: server_pids(server))
        postgres = url.startswith("postgresql")
        self.postgres = CpuMeter(lambda: postgres_backends(url)) if postgres else None
        self.server.start()
        if self.postgres:
            self.postgres.start()

    def stop(self) -> tuple[float, float | None]:
        server_cpu = self.server.stop()
        return server_cpu, (self.postgres.stop() if self.postgres else None)


def cpu_probe() -> float:
    """Milliseconds of a fixed pure-Python workload (dict, str, hashing): the machine's speed
    for this kind of code, recorded beside every run (lower is faster)."""
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        acc: dict[str, int] = {}
        for i in range(60_000):
            key = hashlib.sha256(str(i).encode()).hexdigest()[:8]
            acc[key] = acc.get(key, 0) + len(key) * i % 7
        best = min(best, time.process_time() - t0)
    return best * 1000


# ------------------------------------------------------------------ the world


@dataclass
class Walk:
    """One instance to walk: its first task, the tokens of its lanes and the answers' context."""

    instance: int
    first_task: str
    tokens: dict[str, str]  # lane -> bearer token
    ctx: dict[str, Any]


def prepare(world: eb.World, count: int, seed: int) -> list[Walk]:
    """Start ``count`` instances with their files stored, through the services (not timed)."""
    rng = random.Random(seed)
    walks = []
    for _ in range(count):
        est = world.take_establishment()
        pair = est["pair"]
        code = rng.choice(eb.PORTFOLIOS)
        with world.db.write() as s:
            iid = runtime_instances.start_instance(
                s,
                world.actors["admin"],
                org_id=world.org_id,
                process_key=eb.PROCESS_KEY,
                establishment_cnes=est["cnes"],
                portfolio_code=code,
            ).id
            limit = world.settings.max_upload_bytes
            gestor, integrador = world.actors[f"Gestor#{pair}"], world.actors[f"Integrador#{pair}"]
            cert = files.store(
                s, gestor, world.org_id, "ecnpj.cer", world.certificates[est["cnes"]], limit=limit
            ).id
            evidence = [
                files.store(s, integrador, world.org_id, name, content, limit=limit).id
                for name, content in (
                    ("validador.pdf", samples.tiny_pdf()),
                    ("bundle.png", samples.tiny_png()),
                )
            ]
        with world.db.read() as s:
            first = s.scalar(select(Task.id).where(Task.instance_id == iid, Task.state == READY))
        register = {k: v for k, v in est.items() if k not in ("id", "pair")}
        walks.append(
            Walk(
                instance=iid,
                first_task=first,
                tokens={
                    "Gestor": world.tokens[f"Gestor#{pair}"],
                    "Integrador": world.tokens[f"Integrador#{pair}"],
                    "DATASUS": world.tokens["DATASUS"],
                    "admin": world.tokens["admin"],
                },
                ctx={
                    "estabelecimento": register,
                    "portfolio": world.catalogue[code],
                    "certificate_file": cert,
                    "evidence_files": evidence,
                    "identificador": 40000 + iid,
                },
            )
        )
    return walks


# ------------------------------------------------------------------ the clients


@dataclass
class ClientResult:
    read_ms: list[float] = field(default_factory=list)
    complete_ms: list[float] = field(default_factory=list)
    find_ms: list[float] = field(default_factory=list)
    cycle_ms: list[float] = field(default_factory=list)
    next_from_answer: int = 0
    errors: list[str] = field(default_factory=list)


def _call(conn: http.client.HTTPConnection, method: str, path: str, token: str, body=None):
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    t0 = time.perf_counter()
    conn.request(method, path, body=payload, headers=headers)
    res = conn.getresponse()
    data = res.read()
    dt = (time.perf_counter() - t0) * 1000
    return res.status, (json.loads(data) if data else None), dt


def walk_all(port: int, walks: list[Walk], out: Any) -> None:
    """A client process: walk each instance to its end, one task cycle after another."""
    result = ClientResult()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for walk in walks:
        task_id: str | None = walk.first_task
        while task_id:
            t0 = time.perf_counter()
            status, task, dt = _call(conn, "GET", f"/api/v1/tasks/{task_id}", walk.tokens["admin"])
            if status != 200:
                result.errors.append(f"read {status}")
                break
            result.read_ms.append(dt)
            lane, element = task["lane"], task["element"]
            token = walk.tokens[lane]
            data = samples.answer(element, walk.ctx)
            status, done, dt = _call(
                conn, "POST", f"/api/v1/tasks/{task_id}/complete", token, {"data": data}
            )
            if status != 200:
                result.errors.append(f"complete {element} {status} {done}")
                break
            result.complete_ms.append(dt)
            ready = done.get("next") if isinstance(done, dict) else None
            if ready is not None:
                result.next_from_answer += 1
                task_id = ready[0]["id"] if ready else None
            else:
                status, page, dt = _call(
                    conn,
                    "GET",
                    f"/api/v1/tasks?instance={walk.instance}&state=ready",
                    walk.tokens["admin"],
                )
                result.find_ms.append(dt)
                items = page["items"] if status == 200 else []
                task_id = items[0]["id"] if items else None
            result.cycle_ms.append((time.perf_counter() - t0) * 1000)
    conn.close()
    out.put(result)


@contextmanager
def _next_ready(url: str) -> Iterator[Any]:
    """A function (instance id) -> (task id, lane, element) of its ready task, or None, read from
    the database by the client itself (a read: it changes nothing the server caches); its
    connection is closed when the block ends."""
    query = "SELECT id, lane, element_id FROM task WHERE instance_id = {0} AND state = {0}"
    if url.startswith("sqlite:///"):
        import sqlite3

        conn: Any = sqlite3.connect(f"file:{url[len('sqlite:///') :]}?mode=ro", uri=True)
        marker = "?"
    else:
        conn = psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://"),
            autocommit=True,
            application_name=CLIENT_NAME,
        )
        marker = "%s"
    statement = query.format(marker)
    try:
        # (fetchall: the statement runs to its end, so the client holds no read transaction
        # that would keep SQLite's checkpoints from resetting the WAL)
        yield lambda iid: next(iter(conn.execute(statement, (iid, READY)).fetchall()), None)
    finally:
        conn.close()


def complete_all(port: int, walks: list[Walk], out: Any, url: str) -> None:
    """A client process that sends only completions: each instance walked to its end, the
    next task found in the database (see ``completions_alone``)."""
    result = ClientResult()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    with _next_ready(url) as next_ready:
        for walk in walks:
            found = next_ready(walk.instance)
            while found:
                task_id, lane, element = found
                data = samples.answer(element, walk.ctx)
                status, done, dt = _call(
                    conn, "POST", f"/api/v1/tasks/{task_id}/complete", walk.tokens[lane],
                    {"data": data},
                )  # fmt: skip
                if status != 200:
                    result.errors.append(f"complete {element} {status} {done}")
                    break
                result.complete_ms.append(dt)
                found = next_ready(walk.instance)
    conn.close()
    out.put(result)


def completions_alone(server: harness.WebServer, url: str, walks: list[Walk]) -> dict[str, Any]:
    """The completion request's server CPU measured directly: one client sending only
    completions, back to back (``complete_all``); the server's CPU (and PostgreSQL's) over the
    phase divided by the completions."""
    meters = Meters(server, url)
    [result], _wall = run_clients(server.port, walks, 1, complete_all, url)
    server_cpu, pg_cpu = meters.stop()
    done = len(result.complete_ms)
    return {
        "alone_completions": done,
        "alone_errors": result.errors[:3],
        "alone_complete_median_ms": median(result.complete_ms),
        "alone_complete_cpu_ms": server_cpu * 1000 / done if done else None,
        "alone_complete_postgres_cpu_ms": (pg_cpu * 1000 / done)
        if (pg_cpu is not None and done)
        else None,
    }


def run_clients(
    port: int, walks: list[Walk], clients: int, client: Any = None, *extra: Any
) -> tuple[list[ClientResult], float]:
    """``clients`` client processes (``client``, ``walk_all`` by default, called with the port,
    its share of ``walks``, the result queue and ``extra``): their results and the wall time."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    shares = [walks[i::clients] for i in range(clients)]
    target = client or walk_all
    procs = [ctx.Process(target=target, args=(port, share, queue, *extra)) for share in shares]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    return results, wall


# ------------------------------------------------------------------ one database


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank): what a client waits for one request in twenty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def phase(
    server: harness.WebServer, url: str, walks: list[Walk], clients: int, label: str
) -> dict[str, Any]:
    meters = Meters(server, url)
    results, wall = run_clients(server.port, walks, clients)
    server_cpu, pg_cpu = meters.stop()
    merged = ClientResult()
    for r in results:
        for name in ("read_ms", "complete_ms", "find_ms", "cycle_ms", "errors"):
            getattr(merged, name).extend(getattr(r, name))
        merged.next_from_answer += r.next_from_answer
    completions = len(merged.complete_ms)
    requests = completions + len(merged.read_ms) + len(merged.find_ms)
    figures = {
        "database": label,
        "clients": clients,
        "instances": len(walks),
        "completions": completions,
        "requests": requests,
        "requests_per_task": requests / completions if completions else None,
        "next_from_answer": merged.next_from_answer,
        "errors": merged.errors[:3],
        "error_count": len(merged.errors),
        "wall_s": wall,
        "completions_per_s": completions / wall if wall else None,
        "complete_median_ms": median(merged.complete_ms),
        "read_median_ms": median(merged.read_ms),
        "find_median_ms": median(merged.find_ms),
        "cycle_median_ms": median(merged.cycle_ms),
        # With several clients SQLite's writers queue for its one lock: the tail and the mean
        # say how the wait is shared out, which the median alone does not.
        "complete_p95_ms": p95(merged.complete_ms),
        "cycle_mean_ms": statistics.fmean(merged.cycle_ms) if merged.cycle_ms else float("nan"),
        "cycle_p95_ms": p95(merged.cycle_ms),
        "server_cpu_ms_per_request": server_cpu * 1000 / requests if requests else None,
        "server_cpu_ms_per_task": server_cpu * 1000 / completions if completions else None,
        "postgres_cpu_ms_per_task": (pg_cpu * 1000 / completions)
        if (pg_cpu is not None and completions)
        else None,
    }
    return figures


def _reads_cpu(
    server: harness.WebServer, url: str, paths: list[tuple[str, str]], rounds: int
) -> tuple[float, float | None, int]:
    """Server CPU (and PostgreSQL's) of ``rounds`` passes over ``paths`` ((path, token) GETs)
    sent back to back on one connection: seconds per request, and the requests."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        _call(conn, "GET", *paths[0])  # the connection open before the readings
        meters = Meters(server, url)
        sent = 0
        for _ in range(rounds):
            for path, token in paths:
                status, _, _ = _call(conn, "GET", path, token)
                if status != 200:
                    raise RuntimeError(f"GET {path}: {status}")
                sent += 1
        server_cpu, pg_cpu = meters.stop()
    finally:
        conn.close()
    return server_cpu / sent, (pg_cpu / sent if pg_cpu is not None else None), sent


def request_split(
    server: harness.WebServer, url: str, walks: list[Walk], one_client: dict[str, Any]
) -> dict[str, float | None]:
    """A task's CPU split between its requests: the task's read and the search for the next
    (a third request, only where the completion's answer does not carry ``next``) measured
    alone — the same GETs back to back on one connection, as in a walk — and the completion
    as what is left of the one-client phase's CPU per task. Every figure comes from a run of
    requests sent as a client walking a process sends them: reading the CPU around single
    requests instead lets the worker go idle between them, which costs it more than a client
    going straight on does (~0.3–1 ms per request, measured)."""
    rounds = 24
    reads = [(f"/api/v1/tasks/{w.first_task}", w.tokens["admin"]) for w in walks]
    finds = [(f"/api/v1/tasks?instance={w.instance}&state=ready", w.tokens["admin"]) for w in walks]
    read_cpu, read_pg, _ = _reads_cpu(server, url, reads, rounds)
    find_cpu, find_pg, _ = _reads_cpu(server, url, finds, rounds)
    finds_per_task = one_client["requests_per_task"] - 2
    complete_cpu = (
        one_client["server_cpu_ms_per_task"] / 1000 - read_cpu - finds_per_task * find_cpu
    )
    complete_pg = None
    if read_pg is not None and find_pg is not None:
        complete_pg = (
            one_client["postgres_cpu_ms_per_task"] / 1000 - read_pg - finds_per_task * find_pg
        )
    return {
        "read_cpu_ms": read_cpu * 1000,
        "find_cpu_ms": find_cpu * 1000,
        "complete_cpu_ms": complete_cpu * 1000,
        "read_postgres_cpu_ms": read_pg * 1000 if read_pg is not None else None,
        "complete_postgres_cpu_ms": complete_pg * 1000 if complete_pg is not None else None,
    }


def run_database(label: str, url: str, args: argparse.Namespace, log_dir: Path) -> list[dict]:
    # The schema by the migrations, as on a real installation (the server checks the revision).
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "web.cli", "db", "upgrade"],
        cwd=ROOT,
        env=harness.app_env(url, CREDENCIA_SECRET_KEY=args.secret),
        check=True,
        capture_output=True,
    )
    db = Database(url)
    world = eb.build_world(db, url, args.seed)
    eb.say(f"{label}: starting {args.instances * 4 + args.split} instances (not timed)")
    sets = {
        "warmup": prepare(world, max(2, args.instances // 4), args.seed),
        "one": prepare(world, args.instances, args.seed + 1),
        "four": prepare(world, args.instances * 2, args.seed + 2),
        "split": prepare(world, args.split, args.seed + 3),
        "alone": prepare(world, args.instances, args.seed + 4),
    }
    db.engine.dispose()
    server = harness.WebServer(
        url=url,
        log_dir=log_dir,
        workers=2,
        mode="serve",
        # The default log level (INFO), as an installation runs: its logging cost counts.
        extra_env={"CREDENCIA_SECRET_KEY": args.secret},
    )
    try:
        server.start()
    except RuntimeError:
        if server.proc is not None:
            print(server.proc.log_path.read_text()[-3000:], file=sys.stderr)
        server.stop()
        raise
    rows = []
    try:
        run_clients(server.port, sets["warmup"], 2)
        rows.append(phase(server, url, sets["one"], 1, label))
        eb.say(_line(rows[-1]))
        rows.append(phase(server, url, sets["four"], 4, label))
        eb.say(_line(rows[-1]))
        split = request_split(server, url, sets["split"], rows[0])
        rows[0].update(split)
        eb.say(
            f"{label}: server CPU per request: read {_f(split['read_cpu_ms'])} ms, complete "
            f"{_f(split['complete_cpu_ms'])} ms, find {_f(split['find_cpu_ms'])} ms; "
            f"PostgreSQL per completion {_f(split['complete_postgres_cpu_ms'])} ms"
        )
        alone = completions_alone(server, url, sets["alone"])
        rows[0].update(alone)
        eb.say(
            f"{label}: completions alone ({alone['alone_completions']}): server CPU "
            f"{_f(alone['alone_complete_cpu_ms'])} ms per complete request, PostgreSQL "
            f"{_f(alone['alone_complete_postgres_cpu_ms'])} ms, median "
            f"{_f(alone['alone_complete_median_ms'])} ms, errors {len(alone['alone_errors'])}"
        )
        if any(r["error_count"] or r.get("alone_errors") for r in rows) and server.proc:
            text = server.proc.log_path.read_text(errors="replace")
            start = text.find("Traceback")
            print(text[start : start + 6000] if start >= 0 else text[-3000:], file=sys.stderr)
    finally:
        stop_checked(server)
    return rows


def stop_checked(server: harness.WebServer) -> None:
    """Stop the server by its pid and make sure it is gone (a zombie awaiting its reaping
    counts as gone)."""
    server.stop()
    pid = server.proc.pid if server.proc else None
    stat = Path(f"/proc/{pid}/stat") if pid is not None else None
    if stat is not None and stat.exists() and stat.read_text().split()[2] != "Z":
        raise RuntimeError(f"server {pid} still running after stop")


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['database']}, {row['clients']} client(s): {row['completions']} completions, "
        f"{row['completions_per_s']:.1f}/s, complete median {_f(row['complete_median_ms'])} ms, "
        f"cycle median {_f(row['cycle_median_ms'])} ms, {row['requests_per_task']:.2f} "
        f"requests/task, server CPU {_f(row['server_cpu_ms_per_task'])} ms/task, PostgreSQL "
        f"CPU {_f(row['postgres_cpu_ms_per_task'])} ms/task, errors {row['error_count']}"
    )


def table(rows: list[dict[str, Any]], probe: float) -> str:
    lines = [
        f"CPU-speed probe: {probe:.1f} ms (lower is faster)",
        "",
        "| database | clients | completions/s | complete p50 ms | cycle p50 ms | requests/task "
        "| server CPU ms/task | PostgreSQL CPU ms/task | server CPU ms/complete request "
        "(task − reads) | (completions alone) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['database']} | {r['clients']} | {r['completions_per_s']:.1f} | "
            f"{_f(r['complete_median_ms'])} | {_f(r['cycle_median_ms'])} | "
            f"{r['requests_per_task']:.2f} | {_f(r['server_cpu_ms_per_task'])} | "
            f"{_f(r['postgres_cpu_ms_per_task'])} | {_f(r.get('complete_cpu_ms'))} | "
            f"{_f(r.get('alone_complete_cpu_ms'))} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=16, help="instances for one client")
    parser.add_argument("--split", type=int, default=8, help="instances for the CPU split")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from engine import secrets as secret_store

    args.secret = secret_store.generate_key()
    os.environ["CREDENCIA_SECRET_KEY"] = args.secret
    probe = cpu_probe()
    info = harness.machine()
    eb.say(f"{harness.describe(info)}; CPU-speed probe {probe:.1f} ms")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="credencia-http-") as tmp:
        log_dir = Path(tmp)
        if not args.no_sqlite:
            url = f"sqlite:///{log_dir / 'bench.db'}"
            rows += run_database("SQLite", url, args, log_dir)
        if not args.no_postgres:
            try:
                with harness.temporary_database("credencia_bench") as url:
                    rows += run_database("PostgreSQL", url, args, log_dir)
            except psycopg.OperationalError as exc:
                eb.say(f"PostgreSQL unreachable, skipped: {exc}")
    print()
    print(table(rows, probe))
    for r in rows:
        for e in [*r["errors"], *r.get("alone_errors", [])]:
            print(f"error ({r['database']}, {r['clients']} clients): {e}"[:400])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"machine": info, "cpu_probe_ms": probe, "rows": rows}, indent=2)
        )
    return 1 if any(r["error_count"] or r.get("alone_errors") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
