"""Fault run: restart PostgreSQL under load; requests must fail cleanly and recover by
themselves.

    .venv/bin/python bench/faults/pg_restart.py [--cluster 15/main] [--after 20]
    .venv/bin/python bench/faults/pg_restart.py --own-cluster   # a throwaway cluster instead
    .venv/bin/python bench/faults/pg_restart.py --down-for 10   # stop, wait 10 s, start

A fresh database is seeded; gunicorn (4 workers x 2 threads) and one scheduler run on it;
client threads complete tasks through the API and signed-in people load their inbox and the
dashboard. Then ``pg_ctlcluster --skip-systemctl-redirect 15 main restart`` (a fast shutdown:
every connection is cut, open transactions roll back). Checked:

- during the outage every answer is a success or a 503 carrying the message "Banco de dados
  indisponível no momento; …" and a Retry-After header — never a 500, never a request left
  without an answer or slower than the client's timeout;
- after it, with the same gunicorn and scheduler processes (nothing restarted), every
  request succeeds again, and a scheduler job completes;
- the data are consistent (bench/faults/consistency.py) and ``credencia audit verify`` passes.

PostgreSQL is started again at the end whatever happens (try/finally). Note: the restart
cuts every other user of that cluster too (other test runs on the machine).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402

from bench.faults.clients import Completer, Outcome, PageSession, Record  # noqa: E402
from bench.faults.consistency import check  # noqa: E402
from bench.load import harness  # noqa: E402

MESSAGE = "Banco de dados indisponível no momento; tente de novo em instantes. Nada foi alterado."
OK_STATUSES = {200, 201, 302, 409}
TIMEOUT = 15.0  # the clients' timeout: an answer slower than this is a hang


def default_cluster() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if p.name.isdigit())
    return f"{versions[-1]}/main" if versions else "15/main"


def pg_ctl(cluster: str, action: str, timeout: float = 120) -> subprocess.CompletedProcess:
    version, name = cluster.split("/")
    tool = harness.pg_tool("pg_ctlcluster") or "pg_ctlcluster"
    return subprocess.run(
        [tool, "--skip-systemctl-redirect", version, name, action],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def ensure_running(cluster: str) -> None:
    """Start the cluster if it is not running (the finally of every run)."""
    if pg_ctl(cluster, "status").returncode != 0:
        pg_ctl(cluster, "start")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(harness.admin_url(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            time.sleep(0.5)


class PageReader(threading.Thread):
    """A signed-in person reloading pages (inbox; the dashboard for admins)."""

    def __init__(self, base: str, account: dict[str, Any], record: Record, stop: threading.Event, seed: int):  # fmt: skip
        super().__init__(daemon=True, name=f"pages-{seed}")
        self.base, self.account, self.record, self.stop_event = base, account, record, stop
        self.rng = random.Random(seed)  # noqa: S311
        self.paths = ["/", "/painel"] if account["role"] in ("admin", "auditor") else ["/"]

    def run(self) -> None:
        session = PageSession(self.base, timeout=TIMEOUT)
        while not self.stop_event.is_set() and not session.login(
            self.account["email"], self.account["password"]
        ):
            time.sleep(0.5)
        while not self.stop_event.is_set():
            path = self.rng.choice(self.paths)
            start = time.monotonic()
            status, headers, page, error = session.request("GET", path)
            message = error
            if status == 503:
                message = MESSAGE if MESSAGE in page else page[:200]
            self.record.add(
                Outcome(start, f"page {path}", status, time.monotonic() - start, message,
                        headers.get("retry-after"))
            )  # fmt: skip
            time.sleep(self.rng.uniform(0.05, 0.3))


def _scheduler_ok_since(url: str, since_wall: float) -> list[str]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT name FROM scheduler_job WHERE last_ok_at > to_timestamp(%s)", (since_wall,)
        ).fetchall()
    return [r[0] for r in rows]


@contextlib.contextmanager
def own_cluster() -> Iterator[str]:
    """A throwaway cluster of the newest installed version on a free loopback port (trust
    auth), so the restart cuts nobody else; dropped at the end."""
    version = default_cluster().split("/")[0]
    name = f"credencia_faults_{os.getpid()}"
    port = harness.free_port()
    create = [
        harness.pg_tool("pg_createcluster") or "pg_createcluster", version, name,
        "--port", str(port), "--start", "--",
        "--auth-local=trust", "--auth-host=trust",
    ]  # fmt: skip
    subprocess.run(create, check=True, capture_output=True, timeout=120)
    previous = os.environ.get("CREDENCIA_BENCH_POSTGRES_URL")
    os.environ["CREDENCIA_BENCH_POSTGRES_URL"] = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        yield f"{version}/{name}"
    finally:
        if previous is None:
            os.environ.pop("CREDENCIA_BENCH_POSTGRES_URL", None)
        else:
            os.environ["CREDENCIA_BENCH_POSTGRES_URL"] = previous
        subprocess.run(
            [harness.pg_tool("pg_dropcluster") or "pg_dropcluster", "--stop", version, name],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip


def run(
    *,
    cluster: str | None = None,
    before: float = 8.0,
    after: float = 20.0,
    clients: int = 6,
    readers: int = 4,
    grace: float = 3.0,
    down_for: float = 0.0,
    log: Any = print,
) -> bool:
    cluster = cluster or default_cluster()
    info = harness.machine()
    log(f"machine: {harness.describe(info)}")
    work = Path(tempfile.mkdtemp(prefix="credencia-pgrestart-"))
    url = harness.create_database("credencia_fault_pg")
    web = sched = None
    stop = threading.Event()
    try:
        from bench.load.seed import seed

        seeded = seed(url, establishments=400, instances=150, log=log)
        accounts = [a.__dict__ for a in seeded.accounts]
        web = harness.WebServer(url, work, workers=4, threads=2).start()
        sched = harness.scheduler(url, work)
        record = Record()
        page_accounts = [a for a in accounts if a["role"] in ("admin", "datasus", "gestor")]
        threads: list[threading.Thread] = [
            Completer(web.base, accounts, record, stop, seed=i, timeout=TIMEOUT)
            for i in range(clients)
        ]
        threads += [
            PageReader(web.base, page_accounts[i % len(page_accounts)], record, stop, seed=i)
            for i in range(readers)
        ]
        for t in threads:
            t.start()
        time.sleep(before)
        down = time.monotonic()
        if down_for > 0:
            log(f"stopping PostgreSQL {cluster} under load for {down_for:.0f} s …")
            restarted = pg_ctl(cluster, "stop")
            time.sleep(down_for)
            if restarted.returncode == 0:
                restarted = pg_ctl(cluster, "start")
        else:
            log(f"restarting PostgreSQL {cluster} under load …")
            restarted = pg_ctl(cluster, "restart")
        up = time.monotonic()
        up_wall = time.time()
        log(f"  PostgreSQL back (exit {restarted.returncode}) after {up - down:.2f} s")
        time.sleep(after)
        scheduler_ok: list[str] = []
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not scheduler_ok:
            scheduler_ok = _scheduler_ok_since(url, up_wall)
            if not scheduler_ok:
                time.sleep(1)
        stop.set()
        for t in threads:
            t.join(TIMEOUT + 10)
        scheduler_alive = sched.alive()
        web_alive = web.proc.alive() if web.proc else False
        web.stop()
        sched.stop()

        # By when the answer came: a request sent just before the restart may be cut by it.
        outcomes = sorted(record.outcomes, key=lambda o: o.at + o.seconds)
        during = [o for o in outcomes if down <= o.at + o.seconds < up + grace]
        later = [o for o in outcomes if o.at + o.seconds >= up + grace]
        earlier = [o for o in outcomes if o.at + o.seconds < down]
        bad_during = [
            o for o in during
            if not (o.status in OK_STATUSES or (o.status == 503 and o.message == MESSAGE and o.retry_after))
            or o.seconds >= TIMEOUT
        ]  # fmt: skip
        bad_later = [o for o in later if o.status not in OK_STATUSES]
        five03 = [o for o in outcomes if o.status == 503]
        first_ok = next((o for o in outcomes if o.at >= up and o.status in OK_STATUSES), None)
        last_503 = max((o.at + o.seconds for o in outcomes if o.status == 503), default=None)
        statuses = harness.count_statuses(web.access_log)

        from engine.db import Database

        db = Database(url)
        try:
            report = check(db, record.acked)
        finally:
            db.dispose()
        verify = subprocess.run(
            [harness.PYTHON, "-m", "web.cli", "audit", "verify"],
            cwd=ROOT, env=harness.app_env(url), capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        log("")
        log(f"before the restart: {dict(Counter(o.status for o in earlier))}")
        log(
            f"during the outage (+{grace:.0f} s): {dict(Counter(o.status for o in during))}; "
            f"slowest {max((o.seconds for o in during), default=0):.2f} s"
        )
        log(f"after it: {dict(Counter(o.status for o in later))}")
        log(
            f"503 answers: {len(five03)}, all with the message and Retry-After: "
            f"{all(o.message == MESSAGE and o.retry_after for o in five03)}; "
            f"kinds: {dict(Counter(o.kind for o in five03))}"
        )
        if first_ok:
            log(
                f"first success {first_ok.at + first_ok.seconds - up:.2f} s after PostgreSQL was back"
            )
        if last_503 is not None:
            log(
                f"503s from {min(o.at + o.seconds for o in five03) - down:.2f} s to "
                f"{last_503 - down:.2f} s after the restart began "
                f"(PostgreSQL was back after {up - down:.2f} s)"
            )
        log(f"server status codes (access log): {dict(sorted(statuses.items()))}")
        log(f"gunicorn still the same process: {web_alive}; scheduler too: {scheduler_alive}; "
            f"scheduler jobs completed after the restart: {scheduler_ok}")  # fmt: skip
        for o in (bad_during + bad_later)[:8]:
            log(f"  BAD: {o.kind} {o.status} after {o.seconds:.2f} s: {o.message[:200]}")
        log(f"completions acknowledged: {len(record.acked)}; no answer: {len(record.ambiguous)}")
        for line in report.lines():
            log("  " + line)
        log(f"  credencia audit verify: exit {verify.returncode}: {(verify.stdout + verify.stderr).strip()}")  # fmt: skip
        ok = (
            restarted.returncode == 0
            and not bad_during
            and not bad_later
            and bool(five03)
            and bool(later)
            and web_alive
            and scheduler_alive
            and bool(scheduler_ok)
            and statuses.get(500, 0) == 0
            and report.ok
            and verify.returncode == 0
        )
        if not five03:
            log("  (no request hit the outage: nothing was shown about it)")
        log(f"{'PASS' if ok else 'FAIL'}: PostgreSQL restart under load")
        return ok
    finally:
        stop.set()
        ensure_running(cluster)
        for p in (web, sched):
            if p is not None:
                p.stop()
        harness.drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description="restart PostgreSQL under load")
    parser.add_argument("--cluster", default=None, help="VERSION/NAME (default: newest/main)")
    parser.add_argument("--before", type=float, default=8.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of load after")
    parser.add_argument(
        "--own-cluster", action="store_true",
        help="create a throwaway cluster on a free port and restart that one instead of the "
        "shared one (nothing else using PostgreSQL on the machine is disturbed)",
    )  # fmt: skip
    parser.add_argument(
        "--down-for", type=float, default=0.0,
        help="stop PostgreSQL for this many seconds, then start it (default: a restart)",
    )  # fmt: skip
    args = parser.parse_args()
    options = {"before": args.before, "after": args.after, "down_for": args.down_for}
    if args.own_cluster:
        with own_cluster() as cluster:
            return 0 if run(cluster=cluster, **options) else 1
    return 0 if run(cluster=args.cluster, **options) else 1


if __name__ == "__main__":
    sys.exit(main())
