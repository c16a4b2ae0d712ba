"""The server's own cost of a request: ``GET /healthz`` (no database, no session) sent back to
back on one kept-alive connection to a real ``credencia serve --workers 1``, and the server's
CPU per request read from each of its threads' ``/proc/<pid>/task/<tid>/schedstat``.

What a request costs before the application does anything: gunicorn's worker (parsing,
handing the connection between its threads), Flask's request context, the app's hooks (request
id, log line, metrics, security headers). ``GUNICORN_CMD_ARGS`` variants are measured one
after the other, each on a fresh server (stopped by its pid, and checked gone):

    .venv/bin/python bench/small_request.py                              # credencia serve
    .venv/bin/python bench/small_request.py "" "--worker-class gthread"  # vs plain gthread
    .venv/bin/python bench/small_request.py --requests 20000 "" "--threads 1"

Nothing asserts timings: it prints the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import http.client  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.http_cycle import cpu_probe, server_pids, stop_checked, total_cpu  # noqa: E402
from bench.load import harness  # noqa: E402
from engine import secrets as secret_store  # noqa: E402


def measure(gunicorn_args: str, requests: int, secret: str) -> tuple[float, float]:
    """(server CPU ms per request, wall ms per request) for one server configuration."""
    with tempfile.TemporaryDirectory(prefix="credencia-small-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        subprocess.run(
            [sys.executable, "-m", "web.cli", "db", "upgrade"],
            cwd=ROOT,
            env=harness.app_env(url, CREDENCIA_SECRET_KEY=secret),
            check=True,
            capture_output=True,
        )
        env = {"CREDENCIA_SECRET_KEY": secret}
        if gunicorn_args:
            env["GUNICORN_CMD_ARGS"] = gunicorn_args
        server = harness.WebServer(url=url, log_dir=Path(tmp), workers=1, mode="serve",
                                   extra_env=env)  # fmt: skip
        server.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            for _ in range(300):  # warm-up
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            before = total_cpu(server_pids(server))
            t0 = time.perf_counter()
            for _ in range(requests):
                conn.request("GET", "/healthz")
                res = conn.getresponse()
                res.read()
                if res.status != 200:
                    raise RuntimeError(f"/healthz answered {res.status}")
            wall = time.perf_counter() - t0
            cpu = total_cpu(server_pids(server)) - before
            conn.close()
        finally:
            stop_checked(server)
    return cpu * 1000 / requests, wall * 1000 / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "variants",
        nargs="*",
        default=[""],
        help='GUNICORN_CMD_ARGS of each server ("" for credencia serve as is)',
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2, help="each variant, interleaved")
    args = parser.parse_args()  # fmt: skip
    secret = secret_store.generate_key()
    print(f"CPU-speed probe: {cpu_probe():.1f} ms (lower is faster)")
    for round_ in range(1, args.rounds + 1):
        for variant in args.variants:
            cpu, wall = measure(variant, args.requests, secret)
            label = variant or "credencia serve"
            print(f"round {round_}: {label:32s} {cpu:.3f} ms CPU/request, {wall:.3f} ms wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
