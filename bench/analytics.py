"""Process analytics at national scale on PostgreSQL (issue 17): a history of task rows with
realistic durations and rejections, the scheduler's refresh over it, and every analytics read.

Run ``.venv/bin/python bench/analytics.py [--count N] [--quick] [--samples S] [--json F]``
(default 340,000 establishments; ``--quick``: 20,000). A fresh database is created on the
server of CREDENCIA_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) and
dropped at the end. Steps:

1. The register: ``bench/seed.py`` through ``establishments.import_csv`` (as bench/national.py).
2. The history generator: one credenciamento per establishment, started at a random instant of
   the last two years and walked along the happy path, each task taking a log-normal time
   (medians per task below; the DATASUS analyses about 2.5 days), DATASUS rejecting 25 % of the
   homologation requests and 20 % of the production ones (reasons drawn from a list written
   several ways), the connector failing conformance 15 % of the time. Tasks that would start
   after "now" do not exist, and the one open at "now" stays ready: old instances are in
   production, recent ones on the way. Rows go in with COPY (the engine's completion path is
   measured by bench/engine.py; 4 million completions through it would take days).
3. The backfill: ``analytics.refresh`` runs until it has nothing left (what the scheduler does
   after the upgrade, run after run), timed.
4. An incremental run after 1,000 completions and 1,000 new ready tasks (the load of a busy
   five minutes), timed.
5. Reads, each ``--samples`` times: the element figures (whole organization; one UF; one
   município; one month), lead times with the cumulative flow, DATASUS response, the team
   view, the forecaster of a dashboard page; for a gestor of 20 establishments (computed on
   demand); and the three API endpoints and the Análises page through the Flask app.

Nothing asserts timings; the machine is shared, so figures are noisy.
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
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402
import seed  # noqa: E402
from lxml import etree  # noqa: E402
from national import DEFAULT_PG, PROCESSES_DIR, SETTINGS, rss_mb, say, timed, user  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from engine.access.actor import SYSTEM  # noqa: E402
from engine.accounts import service as accounts  # noqa: E402
from engine.analytics import queries as analytics  # noqa: E402
from engine.analytics import refresh as analytics_refresh  # noqa: E402
from engine.analytics.models import AnalyticsBucket  # noqa: E402
from engine.audit import service as audit  # noqa: E402
from engine.db import Base, Database  # noqa: E402
from engine.definitions.models import ProcessDefinition  # noqa: E402
from engine.establishments import service as establishments  # noqa: E402
from engine.establishments.models import Establishment  # noqa: E402
from engine.runtime.install import install  # noqa: E402
from engine.runtime.models import Task  # noqa: E402

PROCESS_KEY = "credenciamento-rnds"
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
SPIFF = "{http://spiffworkflow.org/bpmn/schema/1.0/core}"
YEARS = 2
PORTFOLIOS = ("REL", "RIA", "RIRA", "RAC")
# Median hours each task takes from ready to completed (log-normal, sigma 0.9).
MEDIAN_HOURS = {
    "obter_certificado_digital": 120, "criar_conta_govbr": 48, "ambientar_servicos": 72,
    "solicitar_acesso_homologacao": 24, "avaliar_solicitacao_acesso": 60,
    "ajustar_solicitacao_acesso": 48, "desenvolver_conector": 480, "obter_dados_acesso": 24,
    "verificar_conformidade": 72, "ajustar_conector": 120, "registrar_evidencias": 48,
    "solicitar_acesso_producao": 24, "avaliar_solicitacao_producao": 60,
    "decidir_apos_reprovacao_producao": 24, "registrar_novas_evidencias": 72,
    "colocar_em_producao": 48,
}  # fmt: skip
REASONS = (
    ("Faixa de IPs não corresponde ao servidor informado.", "faixa de ips nao corresponde"),
    ("Certificado vencido.", "CERTIFICADO VENCIDO"),
    ("Certificado  vencido", "certificado vencido!"),
    ("Evidências ilegíveis.", "evidencias ilegiveis"),
    ("Sistema não homologado.", "Sistema nao homologado"),
    ("CNES do estabelecimento divergente.", "cnes do estabelecimento divergente"),
)


def shape(session) -> tuple[int, dict[str, dict[str, str]], dict[str, str]]:
    """The definition's id, each user task's name/lane/stage, and the lanes' roles."""
    definition = session.scalar(
        select(ProcessDefinition).where(ProcessDefinition.key == PROCESS_KEY)
        .order_by(ProcessDefinition.version.desc()).limit(1)
    )  # fmt: skip
    root = etree.fromstring(definition.bpmn_xml.encode("utf-8"))
    lane_of = {}
    for lane in root.iter(f"{BPMN}lane"):
        for ref in lane.iter(f"{BPMN}flowNodeRef"):
            lane_of[ref.text] = lane.get("name")
    tasks = {}
    for node in root.iter(f"{BPMN}userTask"):
        stage = next((p.get("value") for p in node.iter(f"{SPIFF}property")
                      if p.get("name") == "stage"), "")  # fmt: skip
        tasks[node.get("id")] = {"name": node.get("name"), "lane": lane_of.get(node.get("id")),
                                 "stage": stage}  # fmt: skip
    return definition.id, tasks, dict(definition.manifest.get("lanes", {}))


def path(rng: random.Random) -> list[tuple[str, dict | None]]:
    """One instance's tasks in order, with the data of the rejecting answers."""
    steps: list[tuple[str, dict | None]] = [
        (e, None) for e in ("obter_certificado_digital", "criar_conta_govbr",
                            "ambientar_servicos", "solicitar_acesso_homologacao")
    ]  # fmt: skip
    for _ in range(3):
        if rng.random() >= 0.25:
            break
        text_ = rng.choice(rng.choice(REASONS))
        steps += [("avaliar_solicitacao_acesso", {"decision": "reprovada", "motivo": text_}),
                  ("ajustar_solicitacao_acesso", None)]  # fmt: skip
    steps += [("avaliar_solicitacao_acesso", None), ("desenvolver_conector", None),
              ("obter_dados_acesso", None), ("verificar_conformidade", None)]  # fmt: skip
    while rng.random() < 0.15:
        steps += [("ajustar_conector", None), ("verificar_conformidade", None)]
    steps += [("registrar_evidencias", None), ("solicitar_acesso_producao", None)]
    for _ in range(2):
        if rng.random() >= 0.2:
            break
        text_ = rng.choice(rng.choice(REASONS))
        steps += [("avaliar_solicitacao_producao", {"decision": "reprovada", "motivo": text_}),
                  ("decidir_apos_reprovacao_producao", None),
                  ("registrar_novas_evidencias", None)]  # fmt: skip
    steps += [("avaliar_solicitacao_producao", None), ("colocar_em_producao", None)]
    return steps


def generate(db: Database, org_id: int, users: dict[str, int], rng: random.Random,
             now: datetime) -> dict[str, Any]:  # fmt: skip
    """Insert the instances and their task rows with COPY; returns the counts."""
    with db.read() as s:
        definition_id, tasks, roles = shape(s)
        ests = s.execute(select(Establishment.id).where(Establishment.org_id == org_id)
                         .order_by(Establishment.id)).scalars().all()  # fmt: skip
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    url = url.replace("postgresql+psycopg://", "postgresql://")
    span = YEARS * 365 * 86400
    n_tasks = n_done = 0
    t = time.perf_counter()
    with psycopg.connect(url) as conn:
        cur = conn.cursor()
        first_id = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM process_instance").fetchone()[
            0
        ]
        inst_rows, task_rows = [], []
        for k, est_id in enumerate(ests):
            iid = first_id + k
            started = now - timedelta(seconds=rng.random() * span)
            when, stage, status, ended = started, "", "running", None
            for element, data in path(rng):
                spec = tasks[element]
                hours = MEDIAN_HOURS[element] * math.exp(rng.gauss(0, 0.9))
                done_at = when + timedelta(hours=hours)
                lane = spec["lane"]
                role = roles.get(lane)
                due = when + timedelta(days=3 if role == "datasus" else 10)
                closed = done_at <= now
                claimed = (
                    when + timedelta(hours=hours * rng.random()) if rng.random() < 0.6 else None
                )
                task_rows.append((
                    str(uuid.UUID(int=rng.getrandbits(128))), iid, org_id, est_id, element,
                    spec["name"], lane, role, "completed" if closed else "ready", spec["stage"],
                    users[role] if (claimed and (closed or claimed <= now)) else None, due, when,
                    claimed if (claimed and claimed <= now) else None,
                    done_at if closed else None, users[role] if closed else None,
                    json.dumps(data) if (data and closed) else None,
                ))  # fmt: skip
                n_tasks += 1
                stage = spec["stage"] or stage
                if not closed:
                    break
                n_done += 1
                when = done_at
            else:
                status, ended = "completed", when
            inst_rows.append((iid, org_id, definition_id, PROCESS_KEY, est_id,
                              PORTFOLIOS[k % len(PORTFOLIOS)], status, stage, when, "{}",
                              started, ended))  # fmt: skip
            if len(task_rows) >= 200_000:
                _copy(cur, inst_rows, task_rows)
                inst_rows, task_rows = [], []
        _copy(cur, inst_rows, task_rows)
        cur.execute(f"SELECT setval('process_instance_id_seq', {first_id + len(ests)})")
        conn.commit()
        cur.execute("ANALYZE task")
        cur.execute("ANALYZE process_instance")
    return {"instances": len(ests), "tasks": n_tasks, "completed": n_done,
            "seconds": round(time.perf_counter() - t, 1)}  # fmt: skip


def _copy(cur, inst_rows: list[tuple], task_rows: list[tuple]) -> None:
    with cur.copy(
        "COPY process_instance (id, org_id, definition_id, process_key, establishment_id, "
        "portfolio_code, status, stage, stage_since, state, started_at, ended_at, "
        "numero_solicitacao, identificador_solicitante, last_rejection_reason, version, "
        "cancel_reason, is_latest) FROM STDIN"
    ) as copy:
        for row in inst_rows:
            copy.write_row((*row, "", "", "", 1, "", True))
    with cur.copy(
        "COPY task (id, instance_id, org_id, establishment_id, element_id, name, lane, role, "
        "state, stage, assignee_id, due_at, created_at, claimed_at, completed_at, "
        "completed_by_id, data) FROM STDIN"
    ) as copy:
        for row in task_rows:
            copy.write_row(row)


def activity(db: Database, now: datetime, n: int) -> None:
    """A busy five minutes: ``n`` ready tasks completed and ``n`` new ones ready, all 90
    seconds ago (older than the refresh's lag)."""
    at = now - timedelta(seconds=90)
    with db.write() as s:
        ids = s.scalars(select(Task.id).where(Task.state == "ready").limit(n)).all()
        rows = s.execute(select(Task).where(Task.id.in_(ids))).scalars().all()
        for row in rows:
            row.state, row.completed_at = "completed", at
            s.add(Task(id=str(uuid.uuid4()), instance_id=row.instance_id, org_id=row.org_id,
                       establishment_id=row.establishment_id, element_id=row.element_id,
                       name=row.name, lane=row.lane, role=row.role, state="ready",
                       stage=row.stage, due_at=at + timedelta(days=3), created_at=at))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=340_000)
    parser.add_argument("--quick", action="store_true", help="20,000 establishments")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.count = 20_000
    base = os.environ.get("CREDENCIA_BENCH_POSTGRES_URL", DEFAULT_PG)
    name = f"credencia_bench_an_{uuid.uuid4().hex[:8]}"
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
    say(json.dumps(out, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))


def run(url: str, args: argparse.Namespace, out: dict[str, Any]) -> None:
    db = Database(url)
    Base.metadata.create_all(db.engine)
    db.on_denied = audit.record_denial
    install(db, PROCESSES_DIR)
    with db.write() as s:
        org_id = accounts.create_org(s, SYSTEM, "nacional", "Ministério (benchmark)").id
    admin = user(db, "admin@nacional.local", "admin")
    auditor = user(db, "auditor@nacional.local", "auditor")
    people = {role: user(db, f"{role}@nacional.local", role).user_id
              for role in ("gestor", "integrador", "datasus")}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "cnes.csv"
        with file.open("w", encoding="utf-8", newline="") as fh:
            seed.write(fh, args.count)
        t = time.perf_counter()
        with db.write() as s, file.open(encoding="utf-8-sig") as lines:
            establishments.import_csv(s, admin, org_id, lines)
    say(f"register: {args.count} establishments in {time.perf_counter() - t:.1f} s")
    rng = random.Random(2026)
    now = datetime.now(UTC)
    out["history"] = generate(db, org_id, people, rng, now)
    say(f"history: {out['history']}; rss {rss_mb():.0f} MB")

    # 3. the backfill, run after run as the scheduler would
    runs, rows, t = 0, 0, time.perf_counter()
    per_run = []
    while True:
        r0 = time.perf_counter()
        result = analytics_refresh.refresh(db, SETTINGS, now=now + timedelta(seconds=61))
        per_run.append(time.perf_counter() - r0)
        runs += 1
        rows += result.rows
        if result.rows == 0:
            break
    with db.read() as s:
        buckets = s.scalar(select(func.count()).select_from(AnalyticsBucket))
        by_kind = dict(s.execute(select(AnalyticsBucket.kind, func.count())
                                 .group_by(AnalyticsBucket.kind)).all())  # fmt: skip
        size = s.scalar(text("SELECT pg_total_relation_size('analytics_bucket')"))
    out["backfill"] = {"runs": runs, "rows": rows, "seconds": round(time.perf_counter() - t, 1),
                       "slowest_run_s": round(max(per_run), 1), "buckets": buckets,
                       "by_kind": by_kind, "table_mb": round(size / 2**20, 1),
                       "peak_rss_mb": round(rss_mb())}  # fmt: skip
    say(f"backfill: {out['backfill']}")

    # 4. incremental runs, each after a busy five minutes (a simulated clock: each run's
    # activity must be newer than the marks the run before left)
    incremental, incremental_rows = [], 0
    clock = datetime.now(UTC)
    for _ in range(3):
        clock += timedelta(minutes=5)
        activity(db, clock, 1000)
        r0 = time.perf_counter()
        result = analytics_refresh.refresh(db, SETTINGS, now=clock)
        incremental.append(time.perf_counter() - r0)
        incremental_rows += result.rows
    out["incremental"] = {"rows_per_run": incremental_rows / 3,
                          "seconds": [round(x, 2) for x in incremental]}  # fmt: skip
    say(f"incremental: {out['incremental']}")

    # 5. reads
    tz = SETTINGS.timezone
    with db.read() as s:
        uf, municipio = s.execute(
            select(Establishment.uf, Establishment.municipio).where(Establishment.uf == "SP")
            .group_by(Establishment.uf, Establishment.municipio)
            .order_by(func.count().desc()).limit(1)
        ).one()  # fmt: skip
        ests = s.scalars(select(Establishment.cnes).where(Establishment.org_id == org_id)
                         .order_by(Establishment.id).limit(20)).all()  # fmt: skip
    gestor = user(db, "gestor20@nacional.local", "gestor", list(ests))
    month = (now - timedelta(days=60)).strftime("%Y-%m")
    base = analytics.Filters(process_key=PROCESS_KEY)
    variants = {
        "elements (organization)": (auditor, base),
        "elements (UF SP)": (auditor, analytics.Filters(process_key=PROCESS_KEY, uf=uf)),
        f"elements (município {municipio})": (
            auditor, analytics.Filters(process_key=PROCESS_KEY, uf=uf, municipio=municipio)),
        f"elements (month {month})": (
            auditor, analytics.Filters(process_key=PROCESS_KEY, period_from=month, period_to=month)),
        "elements (gestor of 20 establishments)": (gestor, base),
    }  # fmt: skip
    reads: dict[str, Any] = {}
    for label, (who, f) in variants.items():

        def call(who=who, f=f):
            with db.read() as s:
                analytics.elements(s, who, org_id, f, tz=tz)

        reads[label] = timed(call, args.samples)
    for label, fn in (("lead times + cumulative flow", analytics.lead_times),
                      ("DATASUS response + reasons", analytics.datasus_response),
                      ("team view", analytics.team)):  # fmt: skip

        def call(fn=fn):
            with db.read() as s:
                fn(s, auditor, org_id, base, tz=tz)

        reads[label] = timed(call, args.samples)

    def forecaster():
        with db.read() as s:
            analytics.Forecaster(s, org_id, SETTINGS.analytics_forecast_min_history)

    reads["forecaster (per dashboard page)"] = timed(forecaster, args.samples)

    from web import create_app

    app = create_app(SETTINGS, db)
    with db.write() as s:
        token = accounts.create_token(s, SYSTEM, "auditor@nacional.local", "bench")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for label, path_ in (
        ("GET /api/v1/analytics/elements", f"/api/v1/analytics/elements?process={PROCESS_KEY}"),
        ("GET /api/v1/analytics/lead-times", "/api/v1/analytics/lead-times"),
        ("GET /api/v1/analytics/datasus-response", "/api/v1/analytics/datasus-response"),
    ):

        def call(path_=path_):
            res = client.get(path_, headers=headers)
            assert res.status_code == 200, res.get_data(as_text=True)[:300]

        reads[label] = timed(call, args.samples)
    reads["GET /analises (page, engine calls only)"] = _page_reads(db, auditor, org_id, tz, args)
    out["reads"] = reads
    for label, figures in reads.items():
        say(f"{label}: {figures}")
    db.dispose()


def _page_reads(db: Database, who: Any, org_id: int, tz: str, args: argparse.Namespace) -> Any:
    """What the Análises page asks of the engine (its template adds a few ms)."""
    f = analytics.Filters(process_key=PROCESS_KEY)

    def call():
        with db.read() as s:
            analytics.elements(s, who, org_id, f, tz=tz)
            analytics.lead_times(s, who, org_id, f, tz=tz)
            analytics.datasus_response(s, who, org_id, f, tz=tz)
            analytics.team(s, who, org_id, f, tz=tz)

    return timed(call, args.samples)


if __name__ == "__main__":
    main()
