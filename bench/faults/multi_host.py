"""Fault run: two application hosts behind nginx, one PostgreSQL host; one app host dies under
load and comes back.

    sudo .venv/bin/python bench/faults/multi_host.py [--before 15] [--down 20] [--after 25]

Three "hosts" on one machine, each a Linux network namespace on a bridge (10.77.0.0/24):
``db`` (10.77.0.10) runs a PostgreSQL cluster of its own; ``app1`` (.11) and ``app2`` (.12)
each run ``credencia serve --with-scheduler`` on that database. Debian's nginx in the root
namespace balances over the two (the site of docs/deploy, with the same retry rule: a request
the dead host never received goes to the other, one it received is not sent twice). An
aiosmtpd sink on the bridge receives the mail of both schedulers.

Client threads complete tasks through nginx without pause while e-mails are written to the
outbox. After ``--before`` seconds every process of ``app1`` is killed with SIGKILL (the host
is gone); after ``--down`` seconds it is started again. Checked afterwards: only requests in
flight on the dead host failed (figures by phase); every completion answered 200 is a
completed task with one audit event, none answered twice (bench/faults/consistency.py); every
e-mail arrived, each exactly once (by ``X-Credencia-Outbox-Id``) — the dead host's leased
messages are taken over by the other scheduler when their lease ends; no reminder row twice;
``credencia audit verify`` passes; both hosts serve at the end.

Needs root (namespaces, a bridge, a cluster run as postgres) and Debian's nginx and
PostgreSQL. Everything it made is removed at the end (processes stopped by PID and checked
gone, namespaces, bridge, cluster).
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
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402

from bench.faults.clients import Completer, Record  # noqa: E402
from bench.faults.consistency import check  # noqa: E402
from bench.faults.smtp_down import Sink, _enqueue  # noqa: E402
from bench.load import harness  # noqa: E402

NET = "10.77.0"
HOSTS = {"db": 10, "app1": 11, "app2": 12}
APP_PORT = 8000
# Not 5432: the clusters of the machine share the Unix socket folder, whatever the namespace.
PG_PORT = 55432
TIMEOUT = 30.0


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-600:]}"
        )
    return done


def ns_pids(ns: str) -> list[int]:
    done = sh("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in done.stdout.split()]


def kill_namespace(ns: str) -> list[int]:
    """SIGKILL every process of the namespace (the host is gone); returns their pids."""
    pids = ns_pids(ns)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while ns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


@contextlib.contextmanager
def network() -> Iterator[dict[str, str]]:
    """A bridge with 10.77.0.1 and one namespace per host, each with its veth and address."""
    tag = f"cr{os.getpid() % 100000}"
    bridge = f"{tag}br"
    names = {host: f"{tag}-{host}" for host in HOSTS}
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{NET}.1/24", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        for host, last in HOSTS.items():
            ns, outside, inside = names[host], f"{tag}{host}o", f"{tag}{host}i"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "link", "set", outside, "master", bridge)
            sh("ip", "link", "set", outside, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NET}.{last}/24", "dev", inside)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", f"{NET}.1")
        yield names
    finally:
        for ns in names.values():
            kill_namespace(ns)
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", bridge, check=False)


@contextlib.contextmanager
def database_host(ns: str) -> Iterator[str]:
    """A PostgreSQL cluster of its own, listening only on the db host's address."""
    version = sorted(p.name for p in Path("/usr/lib/postgresql").iterdir())[-1]
    name = f"credencia_multi_{os.getpid()}"
    create = harness.pg_tool("pg_createcluster") or "pg_createcluster"
    ctl = harness.pg_tool("pg_ctlcluster") or "pg_ctlcluster"
    sh(create, version, name, "--port", str(PG_PORT),
       "--", "--auth-local=trust", "--auth-host=trust")  # fmt: skip
    conf = Path(f"/etc/postgresql/{version}/{name}/postgresql.conf")
    conf.write_text(
        conf.read_text() + f"listen_addresses = '{NET}.{HOSTS['db']}'\nmax_connections = 200\n"
    )
    hba = Path(f"/etc/postgresql/{version}/{name}/pg_hba.conf")
    hba.write_text(hba.read_text() + f"host all all {NET}.0/24 trust\n")
    try:
        sh("ip", "netns", "exec", ns, ctl, "--skip-systemctl-redirect", version, name, "start")
        admin = f"postgresql://postgres@{NET}.{HOSTS['db']}:{PG_PORT}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute('CREATE DATABASE "credencia_multi"')
        yield f"postgresql://postgres@{NET}.{HOSTS['db']}:{PG_PORT}/credencia_multi"
    finally:
        sh("ip", "netns", "exec", ns, ctl, "--skip-systemctl-redirect", version, name, "stop",
           "-m", "immediate", check=False)  # fmt: skip
        sh(harness.pg_tool("pg_dropcluster") or "pg_dropcluster", version, name, check=False)


class AppHost:
    """``credencia serve --with-scheduler`` inside a host's namespace."""

    def __init__(self, ns: str, address: str, url: str, work: Path, env: dict[str, str]):
        self.ns, self.address, self.work = ns, address, work
        self.env = harness.app_env(url, **env)
        self.proc: harness.Proc | None = None
        self.starts = 0

    def start(self, ready_timeout: float = 90.0) -> AppHost:
        self.starts += 1
        args = ["ip", "netns", "exec", self.ns, harness.PYTHON, "-m", "web.cli", "serve",
                "--host", self.address, "--port", str(APP_PORT), "--workers", "2",
                "--with-scheduler"]  # fmt: skip
        log_path = self.work / f"{self.ns}-{self.starts}.log"
        self.proc = harness.Proc(self.ns, args, self.env, log_path).start()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            status, _ = harness.http_json(
                "GET", f"http://{self.address}:{APP_PORT}/healthz", timeout=2
            )
            if status == 200:
                return self
            if not self.proc.alive():
                raise RuntimeError(f"{self.ns} exited; see {log_path}")
            time.sleep(0.3)
        raise RuntimeError(f"{self.ns} not ready in {ready_timeout} s; see {log_path}")


def nginx_site(port: int, work: Path) -> Path:
    """docs/deploy's upstream and proxy rules, on plain HTTP on loopback for the run."""
    temp = work / "nginx-temp"
    temp.mkdir(exist_ok=True)
    upstreams = "\n".join(
        f"        server {NET}.{HOSTS[h]}:{APP_PORT} max_fails=1 fail_timeout=5s;"
        for h in ("app1", "app2")
    )
    conf = work / "nginx.conf"
    conf.write_text(f"""pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log {work}/nginx-access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    upstream credencia_web {{
{upstreams}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 11m;
        location / {{
            proxy_pass http://credencia_web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $request_id;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
""")
    return conf


def run(*, before: float = 15.0, down: float = 20.0, after: float = 25.0, clients: int = 6,
        log: Any = print) -> bool:  # fmt: skip
    from aiosmtpd.controller import Controller
    from sqlalchemy import func, select

    from bench.load.seed import seed
    from engine.accounts.models import User
    from engine.db import Database
    from engine.notifications.models import SENT, OutboxMessage
    from engine.reminders.models import Reminder

    if os.geteuid() != 0:
        log("FAIL: needs root (network namespaces, a bridge, a PostgreSQL cluster)")
        return False
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    log(f"machine: {harness.describe(harness.machine())}")
    work = Path(tempfile.mkdtemp(prefix="credencia-multihost-"))
    stop = threading.Event()
    smtp_port = harness.free_port()
    mail_from = "Credencia <noreply@credencia.test>"
    with network() as names, database_host(names["db"]) as url:
        hosts: dict[str, AppHost] = {}
        proxy = controller = None
        db = Database(url)
        try:
            seeded = seed(url, establishments=400, instances=150, log=log)
            accounts = [a.__dict__ for a in seeded.accounts]
            with db.read() as s:
                user_ids = list(s.scalars(select(User.id).order_by(User.id)))
            sink = Sink()
            controller = Controller(sink, hostname=f"{NET}.1", port=smtp_port)
            controller.start()
            env = {
                "CREDENCIA_TRUSTED_PROXIES": "1",
                "CREDENCIA_SMTP_HOST": f"{NET}.1",
                "CREDENCIA_SMTP_PORT": str(smtp_port),
                "CREDENCIA_MAIL_FROM": mail_from,
                # the dead host's leased messages go to the other scheduler when the lease ends
                "CREDENCIA_OUTBOX_LEASE_SECONDS": "30",
                "CREDENCIA_SMTP_TIMEOUT_SECONDS": "5",
                "CREDENCIA_OUTBOX_BASE_DELAY_SECONDS": "2",
                "CREDENCIA_OUTBOX_MAX_DELAY_SECONDS": "10",
            }
            for host in ("app1", "app2"):
                hosts[host] = AppHost(names[host], f"{NET}.{HOSTS[host]}", url, work, env).start()
            port = harness.free_port()
            proxy = harness.Proc(
                "nginx", [nginx, "-p", str(work), "-c", str(nginx_site(port, work)), "-g", "daemon off;"],
                dict(os.environ), work / "nginx.log",
            ).start()  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while harness.http_json("GET", base + "/healthz", timeout=2)[0] != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx not answering")
                time.sleep(0.2)
            log(f"3 hosts up: db {NET}.10, app1 {NET}.11, app2 {NET}.12; nginx on {base}")

            record = Record()
            threads = [Completer(base, accounts, record, stop, seed=i, timeout=TIMEOUT)
                       for i in range(clients)]  # fmt: skip
            for t in threads:
                t.start()
            mail_ids: list[int] = []

            def write_mail(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    mail_ids.extend(_enqueue(db, user_ids, 2, mail_from))
                    time.sleep(1.0)

            write_mail(before)
            killed_at = time.monotonic()
            killed = kill_namespace(names["app1"])
            log(f"app1 killed (SIGKILL to {len(killed)} processes: master, workers, scheduler)")
            write_mail(down)
            restart_at = time.monotonic()
            hosts["app1"].start()
            back_at = time.monotonic()
            log(f"app1 started again; serving after {back_at - restart_at:.1f} s")
            write_mail(after)
            stop.set()
            for t in threads:
                t.join(TIMEOUT + 10)
            deadline = time.monotonic() + 90
            unsent = None
            while time.monotonic() < deadline:
                with db.read() as s:
                    unsent = s.scalar(select(func.count()).where(OutboxMessage.status != SENT))
                if unsent == 0:
                    break
                time.sleep(1.0)
            both_serve = all(
                harness.http_json("GET", f"http://{h.address}:{APP_PORT}/healthz", timeout=3)[0] == 200
                for h in hosts.values()
            )  # fmt: skip

            outcomes = record.outcomes
            phases = {
                "before": [o for o in outcomes if o.at + o.seconds < killed_at],
                "while app1 was down": [o for o in outcomes if killed_at <= o.at + o.seconds < back_at],
                "after": [o for o in outcomes if o.at + o.seconds >= back_at],
            }  # fmt: skip
            # In flight on app1 when it died: sent before the kill, no (good) answer after it.
            in_flight = [
                o for o in outcomes if o.at < killed_at <= o.at + o.seconds and o.status in (0, 502)
            ]
            failed = [o for o in outcomes if o.status == 0 or o.status >= 500]
            not_in_flight = [o for o in failed if o not in in_flight]
            report = check(db, record.acked)
            received = sink.ids
            missing = sorted(set(mail_ids) - set(received))
            twice = sorted(i for i, n in received.items() if n > 1)
            with db.read() as s:
                reminders_twice = s.execute(
                    select(Reminder.kind, Reminder.subject, func.count())
                    .group_by(
                        Reminder.kind, Reminder.subject, Reminder.recipient, Reminder.occurrence
                    )
                    .having(func.count() > 1)
                ).all()
            verify = subprocess.run(
                [harness.PYTHON, "-m", "web.cli", "audit", "verify"], cwd=ROOT,
                env=harness.app_env(url), capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            log("")
            for phase, items in phases.items():
                log(
                    f"{phase}: {len(items)} requests, statuses {dict(sorted(Counter(o.status for o in items).items()))}"
                )
            log(f"failed requests: {len(failed)}, of which in flight on app1 when it died: "
                f"{len(failed) - len(not_in_flight)}; failed otherwise: {len(not_in_flight)}")  # fmt: skip
            for o in not_in_flight[:8]:
                log(f"  BAD: {o.kind} {o.status}, sent {o.at - killed_at:+.2f} s from the kill, "
                    f"answered after {o.seconds:.2f} s: {o.message[:160]}")  # fmt: skip
            log(f"completions acknowledged: {len(record.acked)}; unanswered then retried: "
                f"{len(record.ambiguous)}")  # fmt: skip
            for line in report.lines():
                log("  " + line)
            log(f"e-mails written: {len(mail_ids)}; received {sum(received.values())} "
                f"({len(received)} distinct), missing {len(missing)}, twice {len(twice)}; "
                f"outbox not sent at the end: {unsent}")  # fmt: skip
            log(
                f"reminder rows twice: {len(reminders_twice)}; both hosts serve at the end: {both_serve}"
            )
            log(
                f"credencia audit verify: exit {verify.returncode}: {(verify.stdout + verify.stderr).strip()[:200]}"
            )
            ok = (
                bool(phases["while app1 was down"])
                and not not_in_flight
                and report.ok
                and not missing
                and not twice
                and unsent == 0
                and not reminders_twice
                and both_serve
                and verify.returncode == 0
            )
            log(f"{'PASS' if ok else 'FAIL'}: an app host killed under load and restarted")
            return ok
        finally:
            stop.set()
            for proc in [proxy, *(h.proc for h in hosts.values())]:
                if proc is not None:
                    proc.stop()
            if controller is not None:
                controller.stop()
            db.dispose()
            apps = [names["app1"], names["app2"]]
            deadline = time.monotonic() + 15  # the workers and schedulers finishing their stop
            while any(ns_pids(ns) for ns in apps) and time.monotonic() < deadline:
                time.sleep(0.2)
            left = [p for ns in apps for p in ns_pids(ns)]
            if proxy is not None and proxy.alive():
                left.append(proxy.pid)
            if left:
                log(f"processes still running at the end: {left} (killed)")


def main() -> int:
    parser = argparse.ArgumentParser(description="two app hosts behind nginx; one dies")
    parser.add_argument(
        "--before", type=float, default=15.0, help="seconds of load before the kill"
    )
    parser.add_argument("--down", type=float, default=20.0, help="seconds app1 stays down")
    parser.add_argument("--after", type=float, default=25.0, help="seconds of load after")
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args()
    return (
        0 if run(before=args.before, down=args.down, after=args.after, clients=args.clients) else 1
    )


if __name__ == "__main__":
    sys.exit(main())
