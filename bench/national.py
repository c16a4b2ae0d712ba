"""National scale on PostgreSQL: import the register, start one instance per establishment,
then time the inbox, the dashboard, the CSV export and a timer sweep.

Run ``.venv/bin/python bench/national.py [--count N] [--quick] [--samples S]`` (default
340,000 establishments, 200 samples per read). A fresh database is created on the server of
CREDENCIA_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) and dropped
at the end (``--keep`` keeps it and prints its URL). Steps:

1. ``bench/seed.py`` writes the register (seeded) to a temporary file;
   ``establishments.import_csv`` (the CLI's and the page's path) reads it as a stream and
   loads it in one transaction.
2. A sample of ``--sample-starts`` establishments is started one by one through
   ``runtime_instances.start_instance`` (the rate of the old path), the rest through
   ``bulk.start_all`` (the fast path). Portfolios alternate REL/RIA/RIRA/RAC by UF block.
3. ``--advance`` instances are walked a random number of steps along the happy path through
   ``completion.complete`` (the stage spread); everything else stays in its first stage.
4. Reads, each ``--samples`` times: the inbox page's queries for a DATASUS user and for a
   gestor of 20 establishments, the dashboard summary (stage x UF) and first page, the CSV
   export of every row (peak traced memory while consuming the stream), and one idle
   ``fire_due_timers`` sweep.

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's high-water mark), so
it is printed after each step. Nothing asserts timings; the machine is shared, so figures
are noisy.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
    sys.path.insert(1, str(ROOT / "bench"))
else:
    sys.path.insert(0, str(ROOT / "bench"))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402
import seed  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from engine import settings as settings_mod  # noqa: E402
from engine.access.actor import SYSTEM  # noqa: E402
from engine.accounts import service as accounts  # noqa: E402
from engine.accounts.models import User  # noqa: E402
from engine.audit import service as audit  # noqa: E402
from engine.completion import service as completion  # noqa: E402
from engine.dashboard import queries as dashboard  # noqa: E402
from engine.db import Base, Database  # noqa: E402
from engine.demo import samples  # noqa: E402
from engine.establishments import service as establishments  # noqa: E402
from engine.establishments.models import Establishment  # noqa: E402
from engine.files import service as files  # noqa: E402
from engine.runtime import (  # noqa: E402
    bulk,  # noqa: E402
    inbox,
    timers,  # noqa: E402
)
from engine.runtime import instances as runtime_instances  # noqa: E402
from engine.runtime.install import install  # noqa: E402
from engine.runtime.models import READY, ProcessInstance, Task  # noqa: E402

PROCESS_KEY = "credenciamento-rnds"
PROCESSES_DIR = ROOT / "processes"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
HAPPY_PATH = samples.PRODUCTION_PATH


# The demo certificates are self-signed: the ICP-Brasil chain check is off, as in the tests.
SETTINGS = dataclasses.replace(
    settings_mod.load(), certificate_require_icp_brasil=False, processes_dir=PROCESSES_DIR
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def say(msg: str) -> None:
    print(msg, flush=True)


def stats(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return {"p50": round(statistics.median(ms), 1), "p95": round(p95, 1),
            "max": round(ms[-1], 1), "n": len(ms)}  # fmt: skip


def timed(fn, n: int) -> dict[str, float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return stats(out)


def user(db: Database, email: str, role: str, cnes: list[str] = ()) -> Any:
    original = accounts.hash_password
    accounts.hash_password = lambda password: "bench:no-password-login"
    try:
        with db.write() as s:
            accounts.create_user(s, SYSTEM, email, org_slug="nacional", role=role,
                                 establishments=list(cnes))  # fmt: skip
    finally:
        accounts.hash_password = original
    with db.read() as s:
        return accounts.load_actor(s, s.scalar(select(User).where(User.email == email)))


def advance(db: Database, org_id: int, admin: Any, datasus: Any, count: int, rng: random.Random,
            catalogue: dict[str, Any]) -> tuple[int, float]:  # fmt: skip
    """Walk ``count`` instances 1..12 steps along the happy path through completion.complete.
    Each instance's gestor/integrador is a user scoped to its establishment."""
    with db.read() as s:
        picked = s.execute(
            select(ProcessInstance.id, Establishment.cnes, ProcessInstance.portfolio_code,
                   Establishment.id)
            .join(Establishment, Establishment.id == ProcessInstance.establishment_id)
            .order_by(ProcessInstance.id).limit(count * 50)
        ).all()  # fmt: skip
    picked = rng.sample(picked, min(count, len(picked)))
    done, spent = 0, 0.0
    for n, (iid, cnes, code, est_id) in enumerate(picked):
        with db.read() as s:
            est = s.get(Establishment, est_id).register_data()
        gestor = user(db, f"g{iid}@nacional.local", "gestor", [cnes])
        integ = user(db, f"i{iid}@nacional.local", "integrador", [cnes])
        who = {"Gestor": gestor, "Integrador": integ, "DATASUS": datasus}
        with db.write() as s:
            cert = files.store(s, gestor, org_id, "ecnpj.cer",
                               samples.demo_certificate(est["cnpj"], est["razao_social"][:40].upper()),
                               limit=10 << 20).id  # fmt: skip
            evidence = [files.store(s, integ, org_id, name, content, limit=10 << 20).id
                        for name, content in (("v.pdf", samples.tiny_pdf()),
                                              ("b.png", samples.tiny_png()))]  # fmt: skip
        ctx = {"estabelecimento": est, "portfolio": catalogue[code],
               "certificate_file": cert, "evidence_files": evidence,
               "identificador": 40000 + iid}  # fmt: skip
        for element in HAPPY_PATH[: rng.randint(1, len(HAPPY_PATH))]:
            with db.read() as s:
                row = s.execute(select(Task.id, Task.lane).where(
                    Task.instance_id == iid, Task.state == READY, Task.element_id == element
                )).first()  # fmt: skip
            if row is None:
                break
            t = time.perf_counter()
            with db.write() as s:
                completion.complete(
                    s, who[row.lane], row.id, samples.answer(element, ctx), settings=SETTINGS
                )
            spent += time.perf_counter() - t
            done += 1
        if n and n % 100 == 0:
            say(f"  advanced {n} instances, {done} completions")
    return done, spent


def main() -> None:  # noqa: C901
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=340_000)
    parser.add_argument("--quick", action="store_true", help="20,000 establishments, 50 samples")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--sample-starts", type=int, default=300)
    parser.add_argument("--advance", type=int, default=300)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--reuse", metavar="URL", help="only the reads, on a --keep database")
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args()
    if args.reuse:
        out0: dict[str, Any] = {"reuse": args.reuse, "samples": args.samples}
        db = Database(args.reuse)
        with db.read() as s:
            org_id = s.scalar(text("SELECT id FROM organization WHERE slug = 'nacional'"))
            admin, datasus = (accounts.load_actor(s, s.scalar(select(User).where(User.email == e)))
                              for e in ("admin@nacional.local", "datasus@nacional.local"))  # fmt: skip
        reads(db, org_id, admin, datasus, args, out0)
        db.dispose()
        if args.json:
            args.json.write_text(json.dumps(out0, indent=2, ensure_ascii=False))
        return
    if args.quick:
        args.count, args.samples, args.advance = 20_000, 50, 60
    base = os.environ.get("CREDENCIA_BENCH_POSTGRES_URL", DEFAULT_PG)
    name = f"credencia_bench_nat_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    out: dict[str, Any] = {"count": args.count, "samples": args.samples}
    try:
        run(url, args, out)
    finally:
        if args.keep:
            say(f"kept {url}")
        else:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))


def run(url: str, args: argparse.Namespace, out: dict[str, Any]) -> None:  # noqa: C901
    db = Database(url)
    Base.metadata.create_all(db.engine)
    db.on_denied = audit.record_denial
    install(db, PROCESSES_DIR)
    with db.write() as s:
        org_id = accounts.create_org(s, SYSTEM, "nacional", "Ministério (benchmark)").id
    admin = user(db, "admin@nacional.local", "admin")
    datasus = user(db, "datasus@nacional.local", "datasus")
    say(f"database {url}; rss {rss_mb():.0f} MB")

    # 1. import: the register goes to a file, read back as a stream (as the CLI does)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cnes.csv"
        t = time.perf_counter()
        with path.open("w", encoding="utf-8", newline="") as fh:
            seed.write(fh, args.count)
        gen_s = time.perf_counter() - t
        t = time.perf_counter()
        with db.write() as s, path.open(encoding="utf-8-sig") as lines:
            report = establishments.import_csv(s, admin, org_id, lines)
        import_s = time.perf_counter() - t
    gc.collect()
    out["import"] = {"generate_s": round(gen_s, 1), "import_s": round(import_s, 1),
                     "created": report.created, "peak_rss_mb": round(rss_mb())}  # fmt: skip
    say(f"import: {report.created} created in {import_s:.1f} s (CSV generated in {gen_s:.1f} s); "
        f"peak RSS {rss_mb():.0f} MB")  # fmt: skip

    # 2. start: the one-by-one rate on a sample, then the fast path
    with db.read() as s:
        rows = s.execute(select(Establishment.cnes, Establishment.uf).where(
            Establishment.org_id == org_id).order_by(Establishment.id).limit(args.sample_starts)).all()  # fmt: skip
    portfolios = ("REL", "RIA", "RIRA", "RAC")
    t = time.perf_counter()
    for cnes, uf in rows:
        with db.write() as s:
            runtime_instances.start_instance(s, admin, org_id=org_id, process_key=PROCESS_KEY,
                                   establishment_cnes=cnes,
                                   portfolio_code=portfolios[sum(map(ord, uf)) % 4])  # fmt: skip
    one_s = time.perf_counter() - t
    one_rate = len(rows) / one_s
    say(
        f"start_instance one by one: {len(rows)} in {one_s:.1f} s = {one_rate:.0f}/s "
        f"(all {args.count} would take {args.count / one_rate / 60:.1f} min)"
    )
    t = time.perf_counter()
    last = [t]
    code = "REL"  # the bulk pass opens REL for every establishment not running REL yet

    def progress(c: bulk.BulkStartCounts) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            say(f"  bulk {code}: {c.started} started, rss {rss_mb():.0f} MB")

    counts = bulk.start_all(db, admin, org_id, process_key=PROCESS_KEY, portfolio_code=code,
                            progress=progress, batch=2000)  # fmt: skip
    bulk_s = time.perf_counter() - t
    out["start"] = {"one_by_one_per_s": round(one_rate), "one_by_one_n": len(rows),
                    "bulk_started": counts.started, "bulk_s": round(bulk_s, 1),
                    "bulk_per_s": round(counts.started / bulk_s),
                    "peak_rss_mb": round(rss_mb())}  # fmt: skip
    say(
        f"bulk start_all: {counts.started} in {bulk_s:.1f} s = {counts.started / bulk_s:.0f}/s; "
        f"peak RSS {rss_mb():.0f} MB; import + start {import_s + one_s + bulk_s:.0f} s"
    )

    # 3. stage spread through real completions
    catalogue = {p["code"]: p for p in json.loads((PROCESSES_DIR / "portfolios.json").read_text())}
    catalogue = {k: {"code": v["code"], "name": v["name"], "operations": v.get("operations", [])}
                 for k, v in catalogue.items()}  # fmt: skip
    t = time.perf_counter()
    done, spent = advance(db, org_id, admin, datasus, args.advance, random.Random(7), catalogue)
    out["advance"] = {"instances": args.advance, "completions": done,
                      "completion_ms": round(spent * 1000 / max(done, 1), 1),
                      "wall_s": round(time.perf_counter() - t, 1)}  # fmt: skip
    say(
        f"advanced {args.advance} instances by {done} completions "
        f"({spent * 1000 / max(done, 1):.0f} ms each) in {time.perf_counter() - t:.0f} s"
    )
    with db.write() as s:
        s.execute(text("ANALYZE"))
    with db.read() as s:
        spread = s.execute(select(ProcessInstance.stage, func.count()).group_by(
            ProcessInstance.stage)).all()  # fmt: skip
        out["stages"] = {k: v for k, v in spread}
        say(f"stages: {out['stages']}")
        checked, broken = audit.verify(s)
    say(f"audit verify: {checked} events, {'ok' if broken is None else broken}")
    out["audit"] = {"events": checked, "ok": broken is None}

    reads(db, org_id, admin, datasus, args, out)
    db.dispose()


def reads(db: Database, org_id: int, admin: Any, datasus: Any, args: argparse.Namespace,
          out: dict[str, Any]) -> None:  # fmt: skip
    with db.read() as s:
        gestor_cnes = list(s.scalars(select(Establishment.cnes).where(
            Establishment.uf == "PE").order_by(Establishment.id).limit(20)))  # fmt: skip
    try:
        gestor = user(db, "gestor@nacional.local", "gestor", gestor_cnes)
    except Exception:  # --reuse: made by an earlier run
        with db.read() as s:
            gestor = accounts.load_actor(s, s.scalar(select(User).where(
                User.email == "gestor@nacional.local")))  # fmt: skip
    reads = out["reads"] = {}

    def inbox_page(who):
        def go() -> None:
            with db.read() as s:
                inbox.inbox(s, who, org_id)
                inbox.lanes(s, who, org_id)

        return go

    def inbox_counts(who):
        def go() -> None:
            with db.read() as s:
                inbox.counts(s, who, org_id)

        return go

    def summary() -> None:
        with db.read() as s:
            dashboard.summary(s, admin, org_id)

    def summary_uf() -> None:
        with db.read() as s:
            dashboard.summary(s, admin, org_id, dashboard.Filters(uf="BA"))

    def first_page() -> None:
        with db.read() as s:
            dashboard.page(s, admin, org_id)

    for label, fn in (("inbox DATASUS (inbox+lanes)", inbox_page(datasus)),
                      ("inbox gestor 20 est. (inbox+lanes)", inbox_page(gestor)),
                      ("inbox counts DATASUS", inbox_counts(datasus)),
                      ("dashboard summary stage x UF", summary),
                      ("dashboard summary, UF=BA", summary_uf),
                      ("dashboard first page (100 rows + total)", first_page)):  # fmt: skip
        reads[label] = timed(fn, args.samples)
        say(f"{label}: {reads[label]}")

    # idle timer sweep
    loads0 = timers.workflows_loaded()
    t = time.perf_counter()
    sweep = timers.fire_due_timers(db)
    out["timer_sweep"] = {"ms": round((time.perf_counter() - t) * 1000, 1),
                          "fired": sweep.fired, "loaded": timers.workflows_loaded() - loads0}  # fmt: skip
    say(f"timer sweep: {out['timer_sweep']}")

    # CSV export of every row: time, and traced peak while consuming the stream
    if args.no_export:
        return
    gc.collect()
    tracemalloc.start()
    t = time.perf_counter()
    n = size = 0
    first_at = None
    with db.read() as s:
        for chunk in dashboard.csv_lines(s, admin, org_id):
            n += 1
            size += len(chunk)
            if n == 1000:
                first_at = tracemalloc.get_traced_memory()[1]
    export_s = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out["export"] = {"lines": n - 1, "mb": round(size / 2**20, 1), "s": round(export_s, 1),
                     "traced_peak_after_1000_lines_mb": round((first_at or 0) / 2**20, 1),
                     "traced_peak_mb": round(peak / 2**20, 1), "peak_rss_mb": round(rss_mb())}  # fmt: skip
    say(f"CSV export: {out['export']}")


if __name__ == "__main__":
    main()
