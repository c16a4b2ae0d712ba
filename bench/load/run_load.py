"""Load run: gunicorn (several workers) + one scheduler on a seeded PostgreSQL, driven by
locust headless with a realistic mix for a fixed time; prints throughput, p50/p95/p99 per
request kind, errors, and the server's own count of 5xx.

    .venv/bin/pip install -e '.[load]'
    .venv/bin/python bench/load/run_load.py                  # 90 s, 24 users, 4 workers x 2 threads
    .venv/bin/python bench/load/run_load.py --duration 30 --establishments 1000 --instances 300

Everything runs on 127.0.0.1: a fresh database ``credencia_load_<random>`` (dropped at the
end unless ``--keep``), gunicorn and the scheduler in process groups of their own (killed at
the end), locust bounded by ``--duration``. After the run the acknowledged completions are
checked (bench/faults/consistency.py) and ``credencia audit verify`` runs on the database.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.load import harness  # noqa: E402
from bench.load.seed import seed  # noqa: E402


def _locust_stats(prefix: Path) -> list[dict[str, Any]]:
    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        return []
    rows = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            rows.append(
                {
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": float(row["Requests/s"]),
                    "p50": row["50%"],
                    "p95": row["95%"],
                    "p99": row["99%"],
                    "max": round(float(row["Max Response Time"] or 0)),
                }
            )
    return rows


def _locust_failures(prefix: Path) -> list[dict[str, Any]]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open() as fh:
        return [
            {"name": r["Name"], "error": r["Error"][:300], "count": int(r["Occurrences"])}
            for r in csv.DictReader(fh)
        ]


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"| {'request':<34} | {'count':>6} | {'fail':>4} | {'req/s':>6} | {'p50 ms':>6} | {'p95 ms':>6} | {'p99 ms':>6} | {'max ms':>6} |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        lines.append(
            f"| {r['name']:<34} | {r['requests']:>6} | {r['failures']:>4} | {r['rps']:>6.1f} | "
            f"{r['p50']:>6} | {r['p95']:>6} | {r['p99']:>6} | {r['max']:>6} |"
        )
    return "\n".join(lines)


def _tracebacks(log: Path, limit: int = 5) -> list[str]:
    """The first lines of the server's logged exceptions (file/line of each 500)."""
    if not log.exists():
        return []
    out, lines = [], log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            tail = [
                x for x in lines[i : i + 80] if x.startswith('  File "') or not x.startswith(" ")
            ]
            out.append("\n".join(tail[-6:]))
            if len(out) >= limit:
                break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Credencia load run (locust headless)")
    parser.add_argument("--duration", type=int, default=90, help="seconds of load")
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--spawn-rate", type=float, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--server", choices=["gunicorn", "serve"], default="gunicorn",
        help="gunicorn 'web:create_app()' (default) or `credencia serve` (app built in the master)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-alive", type=int, default=5,
        help="gunicorn --keep-alive seconds (default 5, as `credencia serve`; gunicorn's own 2 "
             "gives connection resets, see docs/RELIABILITY.md)",
    )  # fmt: skip
    parser.add_argument("--establishments", type=int, default=4000)
    parser.add_argument("--instances", type=int, default=1200)
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    info = harness.machine()
    print(f"machine: {harness.describe(info)}")
    work = Path(tempfile.mkdtemp(prefix="credencia-load-"))
    url = harness.create_database("credencia_load")
    web = scheduler = None
    result: dict[str, Any] = {"machine": info, "args": vars(args) | {"json": str(args.json)}}
    ok = False
    try:
        clock = time.perf_counter()
        print(f"seeding {args.establishments} establishments, {args.instances} instances …")
        seeded = seed(url, establishments=args.establishments, instances=args.instances)
        result["seed"] = {
            "seconds_total": round(time.perf_counter() - clock, 1),
            "seconds": seeded.seconds,
            "instances": seeded.instances,
            "by_stage": seeded.by_stage,
            "ready_by_lane": seeded.ready_by_lane,
            "errors": seeded.errors,
            "schema_drift": seeded.schema_drift,
        }
        print(
            f"  seeded in {result['seed']['seconds_total']} s; ready tasks {seeded.ready_by_lane}"
        )

        # Same SMTP sink setting as `make run` (nothing listens: mail waits in the outbox).
        web = harness.WebServer(
            url, work, workers=args.workers, threads=args.threads, mode=args.server,
            keep_alive=args.keep_alive,
        ).start()  # fmt: skip
        if not args.no_scheduler:
            scheduler = harness.scheduler(url, work)
        config = work / "config.json"
        config.write_text(json.dumps({"accounts": [a.__dict__ for a in seeded.accounts]}))
        out = work / "locust-out.json"
        prefix = work / "locust"
        cmd = [
            harness.PYTHON, "-m", "locust", "-f", str(ROOT / "bench/load/locustfile.py"),
            "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
            "-t", f"{args.duration}s", "--host", web.base, "--csv", str(prefix),
            "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING",
        ]  # fmt: skip
        print(f"locust: {args.users} users for {args.duration} s against {web.base} "
              f"({args.server}, {args.workers} workers x {args.threads if args.server == 'gunicorn' else 4} threads)")  # fmt: skip
        clock = time.perf_counter()
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env=harness.app_env(
                url, CREDENCIA_LOAD_CONFIG=str(config), CREDENCIA_LOAD_OUT=str(out)
            ),
            capture_output=True,
            text=True,
            timeout=args.duration + 120,
            check=False,
        )
        elapsed = time.perf_counter() - clock
        stats = _locust_stats(prefix)
        failures = _locust_failures(prefix)
        counters = json.loads(out.read_text()) if out.exists() else {"counts": {}, "acked": []}
        # `credencia serve` writes its access log to its output (combined format).
        access = web.access_log if args.server == "gunicorn" else web.proc.log_path
        statuses = harness.count_statuses(access)
        five = harness.server_errors(access)
        total = next((r for r in stats if r["name"] == "Aggregated"), None)
        completions = next((r for r in stats if r["name"] == "api: complete"), None)

        print()
        print(_table(stats))
        print()
        if total:
            print(
                f"throughput: {total['rps']:.1f} requests/s overall; "
                f"{len(counters['acked']) / args.duration:.1f} acknowledged completions/s "
                f"({len(counters['acked'])} in {args.duration} s); locust ran {elapsed:.0f} s"
            )
        load_after = "/".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average after the run: {load_after} (the machine's other users count too)")
        print(f"server status codes (access log): {dict(sorted(statuses.items()))}")
        print(f"counters: {counters['counts']}")
        if failures:
            print("failures reported by locust:")
            for f in failures:
                print(f"  {f['count']} x {f['name']}: {f['error']}")
        if five:
            print(f"5xx lines in the access log: {len(five)}; first: {five[:3]}")
        traces = _tracebacks(web.proc.log_path) if web.proc else []
        if traces:
            print("exceptions logged by the server (last frames):")
            for t in traces:
                print("  " + t.replace("\n", "\n  "))
        if proc.returncode not in (0, 1):
            print(f"locust exited {proc.returncode}: {proc.stderr[-2000:]}")

        # Stop the load, then check what it left behind.
        web.stop()
        if scheduler:
            scheduler.stop()
        from bench.faults.consistency import check
        from engine.db import Database

        db = Database(url)
        try:
            report = check(db, counters["acked"])
        finally:
            db.dispose()
        verify = subprocess.run(
            [harness.PYTHON, "-m", "web.cli", "audit", "verify"],
            cwd=ROOT, env=harness.app_env(url), capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        print("consistency after the run:")
        for line in report.lines():
            print("  " + line)
        print(
            f"  credencia audit verify: exit {verify.returncode}: {verify.stdout.strip()}{verify.stderr.strip()}"
        )
        server_5xx = sum(n for code, n in statuses.items() if code >= 500)
        result.update(
            stats=stats,
            failures=failures,
            statuses=statuses,
            counters=counters["counts"],
            acked=len(counters["acked"]),
            completions_per_s=round(len(counters["acked"]) / args.duration, 2),
            consistency=report.lines(),
            audit_verify=verify.stdout.strip() or verify.stderr.strip(),
            tracebacks=traces,
            server_5xx=server_5xx,
            loadavg_after=load_after,
        )
        ok = (
            bool(total)
            and server_5xx == 0
            and report.ok
            and verify.returncode == 0
            and bool(completions and completions["requests"])
        )
        print(f"\n{'PASS' if ok else 'FAIL'}: {server_5xx} server 5xx, "
              f"{sum(f['count'] for f in failures)} client-side failures, consistency "
              f"{'ok' if report.ok else 'BROKEN'}")  # fmt: skip
    finally:
        for p in (web, scheduler):
            if p is not None:
                p.stop()
        if args.keep:
            print(f"database kept: {url}; logs in {work}")
        else:
            harness.drop_database(url)
            print(f"database dropped; logs in {work}")
        if args.json:
            args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
