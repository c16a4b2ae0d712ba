"""Instructions per task, counted: the task cycle's CPU work as a number that does not move
with the machine's load.

On a shared machine the CPU time of the same request moves by ±20–40 % between runs, more
than most single changes to the hot path are worth. Valgrind's callgrind counts the
instructions a process executes instead of timing it: the same code, data and hash seed
give the same count (to a few parts in ten thousand), whatever else the machine is doing.

Each run of a child (``--child``) builds ``bench/engine.py``'s world on a fresh database, walks
``--warmup`` instances of ``credenciamento-rnds`` along the happy path through the real app
(Flask's test client: the task's GET, then its completion — what ``bench/http_cycle.py``'s
client does, without gunicorn and the socket), then ``n`` more. Two children under
callgrind, with ``n`` = ``--short`` and ``--long`` instances, differ only in the
``long − short`` instances walked: their difference, divided by the tasks, is the cost of one
task in steady state, set-up and warm-up cancelled out. A third and fourth pair walk the same
instances with the completion alone (no GET), which splits the cycle into its two requests.

The database's own work is counted on SQLite (it runs in the process); on PostgreSQL
(``--postgres``) only the application's side is (the server's is in other processes:
``bench/http_cycle.py`` reads it from ``/proc``).

    .venv/bin/python bench/instructions.py                 # SQLite, ~5 min on 2 cores
    .venv/bin/python bench/instructions.py --postgres

Needs ``valgrind`` (Debian's package). Nothing here asserts anything: it prints the counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
TASKS_PER_INSTANCE = 12  # the happy path's completions (bench/engine.py's HAPPY_PATH)


# ------------------------------------------------------------------ the child


def child(instances: int, warmup: int, with_get: bool, postgres: bool) -> None:
    """Build the world, walk ``warmup`` then ``instances`` instances through the app."""
    import gc
    import logging

    from bench import engine as eb
    from engine.db import Database
    from engine.workflow import spiff
    from web import create_app

    logging.disable(logging.INFO)  # the request log line is the same in every run; no noise

    def walk(url: str) -> None:
        spiff.clear_cache()
        db = Database(url)
        try:
            world = eb.build_world(db, url, 7)
            client = create_app(world.settings, db).test_client()

            def complete(task_id: str, who: str, payload: dict) -> None:
                headers = {"Authorization": f"Bearer {world.tokens[who]}"}
                if with_get:
                    res = client.get(f"/api/v1/tasks/{task_id}", headers=headers)
                    if res.status_code != 200:
                        raise RuntimeError(f"GET task: {res.status_code}")
                res = client.post(
                    f"/api/v1/tasks/{task_id}/complete", json={"data": payload}, headers=headers
                )
                if res.status_code != 200:
                    raise RuntimeError(f"complete: {res.status_code} {res.get_json()}")

            eb.run_instances(world, complete, warmup, 0, 11)
            # No collection in the counted part: when the collector runs depends on every
            # allocation before it, so a collection (up to tens of millions of instructions)
            # lands in one child's counted part and not in the other's, and a change that
            # only moves an allocation moves the count by more than it is worth. What this
            # counts is the code's own work; the collector's in a served worker was measured
            # on its own (docs/PERFORMANCE.md: after ``gc.freeze``, ~50-85 ms per ~1,700
            # requests).
            gc.collect()
            gc.freeze()
            gc.disable()
            eb.run_instances(world, complete, instances, 0, 12)
        finally:
            db.dispose()

    if postgres:
        with eb.postgres_database(
            os.environ.get("CREDENCIA_BENCH_POSTGRES_URL", eb.DEFAULT_PG)
        ) as url:
            if url is None:
                raise SystemExit("PostgreSQL unreachable")
            walk(url)
    else:
        with tempfile.TemporaryDirectory(prefix="credencia-instr-") as tmp:
            walk(f"sqlite:///{Path(tmp) / 'bench.db'}")


# ------------------------------------------------------------------ the parent


def counted(instances: int, args: argparse.Namespace, with_get: bool) -> int:
    """Instructions of one child under callgrind."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, str(Path(__file__).resolve()), "--child", str(instances),
        "--warmup", str(args.warmup),
    ]  # fmt: skip
    if not with_get:
        command.append("--no-get")
    if args.postgres:
        command.append("--postgres")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    found = COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise SystemExit(f"the child failed ({done.returncode}):\n{tail}")
    return int(found[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=1, help="instances of the short child")
    parser.add_argument("--long", type=int, default=3, help="instances of the long child")
    parser.add_argument("--warmup", type=int, default=2, help="instances before either")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--no-split", action="store_true", help="the cycle only (two children)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-get", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.warmup, not args.no_get, args.postgres)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if args.long <= args.short:
        raise SystemExit("--long must be more than --short")
    runs = [(args.short, True), (args.long, True)]
    if not args.no_split:
        runs += [(args.short, False), (args.long, False)]
    workers = max(1, min(len(runs), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        counts = list(pool.map(lambda run: counted(run[0], args, run[1]), runs))
    tasks = (args.long - args.short) * TASKS_PER_INSTANCE
    cycle = (counts[1] - counts[0]) / tasks
    database = "PostgreSQL (the application's side)" if args.postgres else "SQLite"
    print(f"{database}: {tasks} tasks counted ({args.long} − {args.short} instances, "
          f"{args.warmup} warm-up), callgrind, PYTHONHASHSEED=0")  # fmt: skip
    print(f"  per task (GET + complete): {cycle / 1e6:8.2f} M instructions")
    if not args.no_split:
        complete = (counts[3] - counts[2]) / tasks
        print(f"  per complete request:      {complete / 1e6:8.2f} M instructions")
        print(f"  per GET of the task:       {(cycle - complete) / 1e6:8.2f} M instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
