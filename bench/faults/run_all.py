"""Every scripted fault run, one after the other, with a PASS/FAIL summary (about 6 minutes on
2 cores). See docs/RELIABILITY.md.

    .venv/bin/python bench/faults/run_all.py [--skip pg_restart] [--own-cluster]

``pg_restart`` restarts the local PostgreSQL cluster: anything else using it at that moment
(another test run) sees its connections cut — unless ``--own-cluster``, which restarts a
throwaway cluster created for the run.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import time  # noqa: E402

from bench.faults import (  # noqa: E402
    backup_restore,
    kill_worker,
    multi_host,
    pg_restart,
    smtp_down,
)

RUNS = {
    "kill_worker": kill_worker.run,
    "pg_restart": pg_restart.run,
    "smtp_down": smtp_down.run,
    "backup_restore": backup_restore.run,
    "multi_host": multi_host.run,  # needs root: namespaces, a bridge, its own cluster
}


def main() -> int:
    parser = argparse.ArgumentParser(description="all fault runs")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(RUNS))
    parser.add_argument(
        "--own-cluster", action="store_true",
        help="pg_restart restarts a throwaway cluster instead of the shared one",
    )  # fmt: skip
    args = parser.parse_args()
    results = {}
    for name, run in RUNS.items():
        if name in args.skip:
            continue
        print(f"\n=== {name} ===", flush=True)
        clock = time.perf_counter()
        try:
            if name == "pg_restart" and args.own_cluster:
                with pg_restart.own_cluster() as cluster:
                    results[name] = (run(cluster=cluster), time.perf_counter() - clock)
            else:
                results[name] = (run(), time.perf_counter() - clock)
        except Exception as exc:  # a run that crashed is a failure, the others still run
            print(f"FAIL: {name} crashed: {exc!r}")
            results[name] = (False, time.perf_counter() - clock)
    print("\n=== summary ===")
    for name, (ok, seconds) in results.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({seconds:.0f} s)")
    return 0 if all(ok for ok, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
