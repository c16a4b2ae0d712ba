"""Task completions per second for the whole credentialing process, from the library to HTTP.

Run ``.venv/bin/python bench/engine.py`` (``make bench``). Every scenario walks instances of
``processes/credenciamento-rnds.bpmn`` through the 12 completions of the happy path and
times each completion on its own with ``time.perf_counter``:

(a)  raw SpiffWorkflow in memory: set_data + run + do_engine_steps, no validation, no DB;
(a+s) the same, plus loading and saving the instance state around each completion as the
     engine does (spec-less JSON), still without a database;
(b)  the engine on SQLite: ``completion.complete`` inside ``db.write()``, one transaction each;
(c)  the same on PostgreSQL (a fresh database, dropped at the end);
(d)  the durable-write limit: single-row UPDATE + COMMIT through the same engine settings;
(e)  the completions through the Flask test client of the real app (HTTP/JSON overhead).

Set-up is not timed: starting an instance, storing its certificate and evidence files, and
finding the id of the next task (a read, as a client would from its inbox). Throughput is
completions divided by the time spent inside the completions. Warm-up instances run first
and are discarded. The analysis pass counts SQL statements per completion, splits the time
of a completion into its parts and profiles it with cProfile. Nothing here asserts timings.

Options: ``--instances N``, ``--quick`` (smoke run), ``--write-doc`` (update
docs/PERFORMANCE.md between its generated markers), ``--json PATH``, ``--no-postgres``.
PostgreSQL is taken from CREDENCIA_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test); when unreachable its scenarios are skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder heads sys.path and ``bench/engine.py`` would shadow the
# ``engine`` package: put the repository root there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.task import Task as SpiffTask  # noqa: E402
from SpiffWorkflow.task import TaskState  # noqa: E402
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, event, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

import engine.models  # noqa: E402, F401  (every table on Base.metadata)
from engine import db as db_mod  # noqa: E402
from engine import forms, identifiers  # noqa: E402
from engine.access.actor import SYSTEM, Actor  # noqa: E402
from engine.accounts import service as accounts  # noqa: E402
from engine.accounts.models import User  # noqa: E402
from engine.audit import service as audit  # noqa: E402
from engine.completion import service as completion  # noqa: E402
from engine.db import Base, Database, make_engine  # noqa: E402
from engine.definitions import service as definitions  # noqa: E402
from engine.demo import samples  # noqa: E402
from engine.establishments import service as establishments  # noqa: E402
from engine.establishments.models import Establishment, Portfolio  # noqa: E402
from engine.files import service as files  # noqa: E402
from engine.runtime import instances as runtime_instances  # noqa: E402
from engine.runtime import tasks as runtime_tasks  # noqa: E402
from engine.runtime.install import install  # noqa: E402
from engine.runtime.models import COMPLETED, READY, ProcessInstance, Task  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.workflow import spiff  # noqa: E402

PROCESS_KEY = "credenciamento-rnds"
PROCESSES_DIR = ROOT / "processes"
BPMN_PATH = PROCESSES_DIR / f"{PROCESS_KEY}.bpmn"
DOC_PATH = ROOT / "docs" / "PERFORMANCE.md"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
HAPPY_PATH = samples.PRODUCTION_PATH
PORTFOLIOS = ("REL", "RIA", "RIRA", "RAC")
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

log = logging.getLogger("bench")


# ------------------------------------------------------------------------- results


class Samples(list):
    """Wall-clock seconds per operation, with this process's CPU seconds alongside."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: list[float] = []

    def record(self, wall: float, cpu: float) -> None:
        self.append(wall)
        self.cpu.append(cpu)


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


@dataclass
class Result:
    key: str
    label: str
    samples: list[float]  # seconds, one per completion (or per commit for the write limit)
    unit: str = "completions"
    note: str = ""

    @property
    def rate(self) -> float:
        total = sum(self.samples)
        return len(self.samples) / total if total else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.samples, q) * 1000

    @property
    def cpu_ms(self) -> float:
        """Mean CPU time of this Python process per operation (the database server's is not
        included); less sensitive than wall time to other load on the machine."""
        cpu = getattr(self.samples, "cpu", [])
        return 1000 * sum(cpu) / len(cpu) if cpu else 0.0

    @property
    def max_ms(self) -> float:
        return max(self.samples) * 1000 if self.samples else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "n": len(self.samples),
            "per_second": round(self.rate, 1),
            "p50_ms": round(self.pct(50), 3),
            "p95_ms": round(self.pct(95), 3),
            "max_ms": round(self.max_ms, 3),
            "cpu_ms_mean": round(self.cpu_ms, 3),
            "note": self.note,
        }


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    experiments: list[Result] = field(default_factory=list)
    analysis: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    machine: dict[str, str] = field(default_factory=dict)
    command: str = ""
    seed: int = 0
    instances: int = 0
    warmup: int = 0
    durable_iterations: int = 0
    postgres: str = ""
    elapsed: float = 0.0

    def get(self, key: str) -> Result | None:
        return next((r for r in self.results if r.key == key), None)


def say(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------- the process data


def portfolio_catalogue() -> dict[str, dict[str, Any]]:
    items = json.loads((PROCESSES_DIR / "portfolios.json").read_text(encoding="utf-8"))
    return {
        item["code"]: Portfolio(
            code=item["code"], name=item["name"], operations=item.get("operations", [])
        ).as_data()
        for item in items
    }


def establishment_values(rng: random.Random, number: int) -> dict[str, Any]:
    return {
        "cnes": identifiers.generate_cnes(rng),
        "cnpj": identifiers.generate_cnpj(rng),
        "razao_social": f"Laboratório Bench {number} Ltda",
        "nome_fantasia": f"Lab Bench {number}",
        "uf": "PR",
        "municipio": "Curitiba",
        "cep": "80000000",
        "endereco": f"Rua XV de Novembro, {100 + number}",
        "telefone": "4133334444",
        "email": f"lab{number}@exemplo.gov.br",
    }


# ------------------------------------------------------------------------- (a) raw SpiffWorkflow


def bench_raw(instances: int, warmup: int, seed: int, *, roundtrip: bool) -> Result:
    """The library alone: parse once, run the happy path in memory, no validation, no DB."""
    bundle = definitions.read_bundle(BPMN_PATH)
    spec, subs = spiff.parse(bundle.bpmn_xml, bundle.key)
    loaded = spiff.LoadedSpec(
        process_key=bundle.key,
        spec=spec,
        subprocess_specs=subs,
        files=bundle.files,
        manifest=bundle.manifest,
    )
    catalogue = portfolio_catalogue()
    rng = random.Random(seed)
    out = Samples()
    for i in range(warmup + instances):
        est = Establishment(**establishment_values(rng, i)).register_data()
        portfolio = catalogue[rng.choice(PORTFOLIOS)]
        ctx = {
            "estabelecimento": est,
            "portfolio": portfolio,
            "certificate_file": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "evidence_files": [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in "ab"],
        }
        start = {
            "possui_certificado_valido": False,
            "possui_conta_govbr": False,
            "estabelecimento": est,
            "portfolio": portfolio,
        }
        workflow = spiff.new_workflow(loaded, start)
        state = spiff.dump_state(workflow) if roundtrip else ""
        for element in HAPPY_PATH:
            ready = workflow.get_tasks(state=TaskState.READY, manual=True)
            task_id = next(t.id for t in ready if t.task_spec.bpmn_id == element)
            data = samples.answer(element, ctx)
            t0 = clocks()
            if roundtrip:
                workflow = spiff.load_state(loaded, state)
            task = workflow.get_task_from_id(task_id)
            task.set_data(**data)
            task.run()
            workflow.do_engine_steps()
            if roundtrip:
                state = spiff.dump_state(workflow)
            dt = since(t0)
            if i >= warmup:
                out.record(*dt)
        if not workflow.is_completed():
            raise RuntimeError("raw run: the workflow did not complete on the happy path")
    if roundtrip:
        return Result("a+s", "SpiffWorkflow in memory + state load/dump", out)
    return Result("a", "SpiffWorkflow in memory (ceiling)", out)


# ------------------------------------------------------------------------- the engine world


@dataclass
class World:
    """The bench organization. Every instance gets an establishment of its own: a second
    credentialing of an establishment whose certificate is on file skips the certificate
    task, and the happy path must be the same 12 completions every time. A gestor and an
    integrador are scoped to each group of ``EST_PER_PAIR`` establishments."""

    db: Database
    url: str
    org_id: int
    actors: dict[str, Actor]  # "admin", "DATASUS", "Gestor#<pair>", "Integrador#<pair>"
    tokens: dict[str, str]
    establishments: list[dict[str, Any]]  # register data, with "id" and "pair"
    certificates: dict[str, bytes]
    catalogue: dict[str, dict[str, Any]]
    settings: Settings
    rng: random.Random
    used: list[int] = field(default_factory=lambda: [0])  # shared by copies of the world

    def with_db(self, db: Database) -> World:
        return dataclasses.replace(self, db=db)

    def take_establishment(self) -> dict[str, Any]:
        if self.used[0] >= len(self.establishments):
            add_establishments(self, EST_BATCH)
        est = self.establishments[self.used[0]]
        self.used[0] += 1
        return est


EST_PER_PAIR = 5
EST_BATCH = 25


@contextmanager
def cheap_password_hashes() -> Iterator[None]:
    """Set-up only: nobody logs in with a password here (the API uses tokens), and argon2's
    deliberate ~0.4 s per user would dominate creating a few dozen users."""
    original = accounts.hash_password
    accounts.hash_password = lambda password: "bench:no-password-login"
    try:
        yield
    finally:
        accounts.hash_password = original


def _user(world: World, key: str, email: str, role: str, scoped: list[str]) -> None:
    db = world.db
    with cheap_password_hashes(), db.write() as s:
        accounts.create_user(s, SYSTEM, email, org_slug="bench", role=role, establishments=scoped)
        if key not in world.tokens:
            world.tokens[key] = accounts.create_token(s, SYSTEM, email, name="bench")
    with db.read() as s:
        user = s.scalar(select(User).where(User.email == email))
        world.actors[key] = accounts.load_actor(s, user)


def add_establishments(world: World, count: int) -> None:
    first = len(world.establishments)
    with world.db.write() as s:
        for number in range(first, first + count):
            values = establishment_values(world.rng, number)
            est = establishments.create(s, SYSTEM, world.org_id, values)
            world.establishments.append(
                {**est.register_data(), "id": est.id, "pair": number // EST_PER_PAIR}
            )
    new = world.establishments[first:]
    for pair in sorted({e["pair"] for e in new}):
        cnes = [e["cnes"] for e in world.establishments if e["pair"] == pair]
        for lane, role in (("Gestor", "gestor"), ("Integrador", "integrador")):
            _user(world, f"{lane}#{pair}", f"{role}{pair}@bench.credencia.local", role, cnes)
    for e in new:
        world.certificates[e["cnes"]] = samples.demo_certificate(
            e["cnpj"], e["razao_social"].upper()
        )


def build_world(db: Database, url: str, seed: int) -> World:
    """Schema, deployed process, one organization, its org-wide users, and a first batch of
    establishments with their gestores and integradores."""
    Base.metadata.create_all(db.engine)
    db.on_denied = audit.record_denial
    install(db, PROCESSES_DIR)
    with db.write() as s:
        org_id = accounts.create_org(s, SYSTEM, "bench", "Secretaria de Saúde (benchmark)").id
    world = World(
        db=db,
        url=url,
        org_id=org_id,
        actors={},
        tokens={},
        establishments=[],
        certificates={},
        catalogue=portfolio_catalogue(),
        settings=bench_settings(url),
        rng=random.Random(seed),
    )
    for key, role in (("admin", "admin"), ("DATASUS", "datasus")):
        _user(world, key, f"{role}@bench.credencia.local", role, [])
    add_establishments(world, EST_BATCH)
    return world


def bench_settings(url: str) -> Settings:
    """Settings for the bench database. The demo certificates are self-signed, so the
    ICP-Brasil chain requirement is off (as in the tests and the demo data)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    wanted: dict[str, Any] = {
        "database_url": url,
        "processes_dir": PROCESSES_DIR,
        "certificate_require_icp_brasil": False,
        "secret_key": secrets.token_hex(16),
    }
    return Settings(**{k: v for k, v in wanted.items() if k in names})


_COMPLETE_TAKES_SETTINGS = "settings" in inspect.signature(completion.complete).parameters


def engine_complete(
    session: Any, world: World, who: str, task_id: str, payload: dict[str, Any]
) -> None:
    """``completion.complete`` as the API calls it (with the app's settings when it takes them)."""
    if _COMPLETE_TAKES_SETTINGS:
        completion.complete(session, world.actors[who], task_id, payload, settings=world.settings)
    else:
        completion.complete(session, world.actors[who], task_id, payload)


Completer = Callable[[str, str, dict[str, Any]], None]


def service_completer(world: World) -> Completer:
    def complete(task_id: str, who: str, payload: dict[str, Any]) -> None:
        with world.db.write() as s:
            engine_complete(s, world, who, task_id, payload)

    return complete


def http_completer(world: World) -> Completer:
    from web import create_app

    app = create_app(world.settings, world.db)
    client = app.test_client()

    def complete(task_id: str, who: str, payload: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {world.tokens[who]}"}
        res = client.post(
            f"/api/v1/tasks/{task_id}/complete", json={"data": payload}, headers=headers
        )
        if res.status_code != 200:
            raise RuntimeError(f"HTTP completion failed: {res.status_code} {res.get_json()}")

    return complete


@dataclass
class Hooks:
    """Optional callbacks around each timed completion (the analysis pass uses them)."""

    before: Callable[[str], None] | None = None
    after: Callable[[str, int], None] | None = None


def run_instances(
    world: World,
    complete: Completer,
    instances: int,
    warmup: int,
    seed: int,
    *,
    setup_times: dict[str, list[float]] | None = None,
    hooks: Hooks | None = None,
) -> list[float]:
    """Start ``warmup + instances`` instances and complete their happy path; the completion
    times of the non-warm-up instances, in seconds."""
    db = world.db
    rng = random.Random(seed)
    out = Samples()
    for i in range(warmup + instances):
        est = world.take_establishment()
        pair = est["pair"]
        code = rng.choice(PORTFOLIOS)
        t0 = time.perf_counter()
        with db.write() as s:
            iid = runtime_instances.start_instance(
                s,
                world.actors["admin"],
                org_id=world.org_id,
                process_key=PROCESS_KEY,
                establishment_cnes=est["cnes"],
                portfolio_code=code,
            ).id
        t1 = time.perf_counter()
        limit = world.settings.max_upload_bytes
        with db.write() as s:
            cert = files.store(
                s,
                world.actors[f"Gestor#{pair}"],
                world.org_id,
                "ecnpj.cer",
                world.certificates[est["cnes"]],
                limit=limit,
            ).id
            evidence = [
                files.store(
                    s, world.actors[f"Integrador#{pair}"], world.org_id, name, content, limit=limit
                ).id
                for name, content in (
                    ("validador.pdf", samples.tiny_pdf()),
                    ("bundle.png", samples.tiny_png()),
                )
            ]
        t2 = time.perf_counter()
        if setup_times is not None and i >= warmup:
            setup_times["start"].append(t1 - t0)
            setup_times["uploads"].append(t2 - t1)
        register = {k: v for k, v in est.items() if k not in ("id", "pair")}
        ctx = {
            "estabelecimento": register,
            "portfolio": world.catalogue[code],
            "certificate_file": cert,
            "evidence_files": evidence,
            "identificador": 40000 + iid,
        }
        for element in HAPPY_PATH:
            with db.read() as s:
                row = s.execute(
                    select(Task.id, Task.lane).where(
                        Task.instance_id == iid, Task.state == READY, Task.element_id == element
                    )
                ).one()
            payload = samples.answer(element, ctx)
            if hooks and hooks.before:
                hooks.before(element)
            t0 = clocks()
            who = f"{row.lane}#{pair}" if row.lane in ("Gestor", "Integrador") else row.lane
            complete(row.id, who, payload)
            dt = since(t0)
            if hooks and hooks.after:
                hooks.after(element, iid)
            if i >= warmup:
                out.record(*dt)
        with db.read() as s:
            status = s.scalar(select(ProcessInstance.status).where(ProcessInstance.id == iid))
        if status != COMPLETED:
            raise RuntimeError(f"instance {iid} did not complete (status {status})")
    return out


# ------------------------------------------------------------------------- (d) durable writes


def bench_durable(eng: Any, iterations: int, warmup: int, *, held: bool = False) -> list[float]:
    """Single-row UPDATE + COMMIT, each in a transaction of its own opened like db.write()."""
    meta = MetaData()
    table = Table(
        "bench_counter",
        meta,
        Column("id", Integer, primary_key=True),
        Column("n", Integer, nullable=False),
    )
    meta.create_all(eng)
    with eng.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert().values(id=1, n=0))
    stmt = table.update().where(table.c.id == 1).values(n=table.c.n + 1)
    out = Samples()
    if held:  # one connection for the whole loop: no connect/pool checkout per commit
        with eng.connect() as conn:
            conn.execution_options(credencia_write=True)
            for i in range(warmup + iterations):
                t0 = clocks()
                with conn.begin():
                    conn.execute(stmt)
                if i >= warmup:
                    out.record(*since(t0))
        return out
    for i in range(warmup + iterations):
        t0 = clocks()
        with eng.connect() as conn:
            conn.execution_options(credencia_write=True)  # BEGIN IMMEDIATE on SQLite, as db.write()
            with conn.begin():
                conn.execute(stmt)
        if i >= warmup:
            out.record(*since(t0))
    return out


# ------------------------------------------------------------------------- analysis


SQL_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


def is_transaction_control(sql: str) -> bool:
    """BEGIN/COMMIT/ROLLBACK: not counted as statements (psycopg sends its BEGIN without a
    cursor, so counting SQLite's BEGIN IMMEDIATE would make the databases look different)."""
    return sql.lstrip().split(" ", 1)[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK")


def statement_kind(sql: str) -> str:
    """``VERB table`` of a statement. A row-lock SELECT is marked ``[FOR UPDATE]`` only where
    the SQL says so: SQLAlchemy drops FOR UPDATE on SQLite, whose BEGIN IMMEDIATE locks."""
    text = " ".join(sql.split())
    verb = text.split(" ", 1)[0].upper()
    # The statement's own table: the first one named outside parentheses (a scalar subquery
    # among a SELECT's columns names its table before the statement's FROM).
    table = next((m for m in SQL_TABLE.finditer(text) if _depth(text, m.start()) == 0), None)
    kind = f"{verb} {table.group(1) if table else '?'}"
    if "FOR UPDATE" in text.upper():
        kind += " … FOR UPDATE"
    if "ON CONFLICT" in text.upper():
        kind += " ON CONFLICT"
    return kind


def _depth(text: str, at: int) -> int:
    return text.count("(", 0, at) - text.count(")", 0, at)


class Timers:
    """Inclusive wall time of wrapped functions, counted only while ``active`` and only at
    the outermost call of each name (so recursive or nested calls are not counted twice)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.depth: dict[str, int] = defaultdict(int)
        self.active = False
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.active or self.depth[name]:
                return original(*args, **kwargs)
            self.depth[name] += 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[name] += time.perf_counter() - t0
                self.depth[name] -= 1

        self.totals[name] = 0.0
        self._undo.append((owner, attr, original))
        setattr(owner, attr, wrapper)

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


@contextmanager
def sql_listener(eng: Any, on_statement: Callable[[str, float], None]) -> Iterator[None]:
    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        on_statement(
            statement, time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        )

    event.listen(eng, "before_cursor_execute", before)
    event.listen(eng, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(eng, "before_cursor_execute", before)
        event.remove(eng, "after_cursor_execute", after)


def analyse(world: World, instances: int, seed: int) -> dict[str, Any]:
    """Statements per completion, time split of a completion, saved-state size."""
    db = world.db
    per_completion: list[Counter[str]] = []
    current: Counter[str] = Counter()
    sql_time = [0.0]
    timers = Timers()
    parts: dict[str, list[float]] = defaultdict(list)
    state_sizes: list[int] = []
    by_element: dict[str, list[int]] = defaultdict(list)
    counting = [False]

    def on_statement(sql: str, seconds: float) -> None:
        if counting[0]:
            sql_time[0] += seconds
            if not is_transaction_control(sql):
                current[statement_kind(sql)] += 1

    # Split each db.write() into entering (connection + BEGIN), the body and leaving (COMMIT).
    def complete(task_id: str, who: str, payload: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        with db.write() as s:
            t1 = time.perf_counter()
            engine_complete(s, world, who, task_id, payload)
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        parts["open connection + BEGIN"].append(t1 - t0)
        parts["complete() body"].append(t2 - t1)
        parts["COMMIT + close"].append(t3 - t2)

    def before(element: str) -> None:
        current.clear()
        sql_time[0] = 0.0
        for name in timers.totals:
            timers.totals[name] = 0.0
        counting[0] = True
        timers.active = True

    def after(element: str, iid: int) -> None:
        counting[0] = False
        timers.active = False
        per_completion.append(Counter(current))
        by_element[element].append(sum(current.values()))
        parts["SQL statements (driver + server)"].append(sql_time[0])
        for name, seconds in timers.totals.items():
            parts[name].append(seconds)
        with db.read() as s:
            state = s.scalar(select(ProcessInstance.state).where(ProcessInstance.id == iid))
        state_sizes.append(len(state.encode("utf-8")))

    timers.wrap(spiff, "load_state", "spiff.load_state (JSON parse + restore)")
    timers.wrap(spiff, "dump_state", "spiff.dump_state (to dict + JSON)")
    timers.wrap(forms, "validate_form", "forms.validate_form (incl. file/UF lookups)")
    timers.wrap(audit, "record", "audit.record (hash chain, incl. its SQL)")
    timers.wrap(runtime_tasks, "sync", "runtime.sync (incl. dump_state + flush)")
    timers.wrap(BpmnWorkflow, "do_engine_steps", "spiff: run + do_engine_steps")
    timers.wrap(SpiffTask, "run", "spiff: run + do_engine_steps")
    try:
        with sql_listener(db.engine, on_statement):
            run_instances(world, complete, instances, 0, seed, hooks=Hooks(before, after))
    finally:
        timers.restore()
    totals = [sum(c.values()) for c in per_completion]
    mean_kinds = {
        k: v / len(per_completion) for k, v in sum(per_completion, Counter()).most_common()
    }
    return {
        "completions": len(per_completion),
        "statements_mean": sum(totals) / len(totals),
        "statements_min": min(totals),
        "statements_max": max(totals),
        "statements_by_kind": mean_kinds,
        "statements_by_element": {e: sum(v) / len(v) for e, v in by_element.items()},
        "parts_ms": {name: 1000 * sum(v) / len(v) for name, v in parts.items()},
        "state_bytes_mean": sum(state_sizes) / len(state_sizes),
        "state_bytes_max": max(state_sizes),
    }


def count_statements(
    world: World, complete: Completer, instances: int, seed: int
) -> dict[str, Any]:
    """SQL statements per completion through ``complete`` (any path: service or HTTP)."""
    counts: list[int] = []
    current = [0]
    counting = [False]

    def on_statement(sql: str, seconds: float) -> None:
        if counting[0] and not is_transaction_control(sql):
            current[0] += 1

    def before(element: str) -> None:
        current[0] = 0
        counting[0] = True

    def after(element: str, iid: int) -> None:
        counting[0] = False
        counts.append(current[0])

    with sql_listener(world.db.engine, on_statement):
        run_instances(world, complete, instances, 0, seed, hooks=Hooks(before, after))
    return {"mean": sum(counts) / len(counts), "min": min(counts), "max": max(counts)}


def area_of(func: tuple[str, int, str]) -> str:
    """A coarse owner for a profiled function: library, engine module or C built-in."""
    filename, _, name = func
    if filename == "~":  # built-ins
        lowered = name.lower()
        for key, area in (
            ("sqlite3", "sqlite3 driver (C)"),
            ("psycopg", "psycopg (C)"),
            ("_json", "json (C)"),
            ("json", "json (C)"),
            ("sha256", "hashlib"),
            ("hashlib", "hashlib"),
            ("lxml", "lxml"),
        ):
            if key in lowered:
                return area
        return "other built-ins"
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0]
    if str(ROOT) in path:
        rel = Path(path).resolve().relative_to(ROOT).as_posix()
        parts = rel.split("/")
        return "/".join(parts[:2]) if parts[0] in ("engine", "web") else parts[0]
    match = re.search(r"/python3\.\d+/([^/]+)", path)
    if match:
        return "stdlib " + match.group(1).removesuffix(".py")
    return "other"


def profile_completions(world: World, instances: int, seed: int, top: int = 15) -> dict[str, Any]:
    profiler = cProfile.Profile()
    db = world.db

    def complete(task_id: str, who: str, payload: dict[str, Any]) -> None:
        profiler.enable()
        try:
            with db.write() as s:
                engine_complete(s, world, who, task_id, payload)
        finally:
            profiler.disable()

    run_instances(world, complete, instances, 0, seed)
    stats = pstats.Stats(profiler)
    raw = stats.stats
    completions = instances * len(HAPPY_PATH)
    total = sum(v[2] for v in raw.values())
    areas: dict[str, float] = defaultdict(float)
    for func, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        areas[area_of(func)] += tottime
    by_tottime = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    by_cumtime = sorted(
        (
            (f, v)
            for f, v in raw.items()
            if area_of(f).startswith(("engine", "SpiffWorkflow", "jsonschema"))
        ),
        key=lambda kv: kv[1][3],
        reverse=True,
    )

    def label(func: tuple[str, int, str]) -> str:
        filename, line, name = func
        if filename == "~":
            return name
        path = filename.replace("\\", "/")
        short = path.split("/site-packages/", 1)[-1] if "/site-packages/" in path else path
        if short.startswith(str(ROOT)):
            short = short[len(str(ROOT)) + 1 :]
        stdlib = re.search(r"/python3\.\d+/(.+)$", short)
        if stdlib and "/site-packages/" not in path:
            short = stdlib.group(1)
        return f"{short}:{line}({name})"

    return {
        "completions": completions,
        "profiled_ms_per_completion": 1000 * total / completions,
        "areas_ms": {
            k: 1000 * v / completions for k, v in sorted(areas.items(), key=lambda kv: -kv[1])
        },
        "top_tottime": [
            (label(f), 1000 * v[2] / completions, v[1] / completions) for f, v in by_tottime
        ],
        "top_cumtime": [(label(f), 1000 * v[3] / completions) for f, v in by_cumtime[:top]],
    }


# ------------------------------------------------------------------------- databases


@contextmanager
def sqlite_database(tmp: Path) -> Iterator[str]:
    path = tmp / "bench.db"
    yield f"sqlite:///{path}"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    try:
        conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        say(f"PostgreSQL unreachable at {admin_url}: {exc}".strip())
        say("Skipping the PostgreSQL scenarios.")
        yield None
        return
    name = f"credencia_bench_{uuid.uuid4().hex[:10]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def nullpool_sqlite_engine(url: str) -> Any:
    """Experiment: the engine's SQLite settings with a new connection per transaction, as
    engine/db.py had them before commit edf4b4d (NullPool). Closing the only connection to a
    WAL database checkpoints the WAL into the main file and deletes it."""
    eng = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, poolclass=NullPool
    )
    db_mod._configure_sqlite(eng)
    return eng


def nullpool_sqlite_database(url: str) -> Database:
    db = Database(url)
    db.engine.dispose()
    db.engine = nullpool_sqlite_engine(url)
    db.session_factory = sessionmaker(db.engine, expire_on_commit=False, autoflush=True)
    return db


# ------------------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    def cpuinfo(key: str) -> str:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "unknown"

    def mem() -> str:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
        except OSError:
            pass
        return "unknown"

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpus": str(cpus),
        "cpu": cpuinfo("model name"),
        "ram": mem(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "spiffworkflow": metadata.version("spiffworkflow"),
        "sqlalchemy": metadata.version("sqlalchemy"),
        "psycopg": metadata.version("psycopg"),
        "flask": metadata.version("flask"),
    }


def cpu_busy_seconds() -> float | None:
    """Seconds of CPU time all processes have used since boot (/proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def fdatasync_us(folder: Path, count: int = 300) -> float:
    """Median time of one 4 KiB write + fdatasync in ``folder``: what a durable commit costs
    the storage at least."""
    path = folder / "fsync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    out = []
    try:
        for _ in range(count):
            os.pwrite(fd, b"x" * 4096, 0)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            out.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return percentile(out, 50) * 1e6


def postgres_facts(url: str) -> dict[str, str]:
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            facts = {
                "postgresql": conn.exec_driver_sql("SHOW server_version").scalar_one(),
                "pg_synchronous_commit": conn.exec_driver_sql(
                    "SHOW synchronous_commit"
                ).scalar_one(),
                "pg_fsync": conn.exec_driver_sql("SHOW fsync").scalar_one(),
                "pg_wal_sync_method": conn.exec_driver_sql("SHOW wal_sync_method").scalar_one(),
            }
            host = conn.exec_driver_sql("SELECT inet_server_addr()::text").scalar_one()
            facts["pg_host"] = host or "unix socket"
            return facts
    finally:
        eng.dispose()


# ------------------------------------------------------------------------- output


def fmt_rate(r: Result) -> str:
    return f"{r.rate:,.0f}" if r.rate >= 100 else f"{r.rate:,.1f}"


def table_rows(report: Report, results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        rows.append(
            [
                f"({r.key}) {r.label}",
                r.unit,
                fmt_rate(r),
                f"{r.pct(50):.2f}",
                f"{r.pct(95):.2f}",
                f"{r.max_ms:.2f}",
                f"{r.cpu_ms:.2f}",
                str(len(r.samples)),
            ]
        )
    return rows


HEADER = ["Scenario", "Unit", "Per second", "p50 ms", "p95 ms", "max ms", "CPU ms", "Samples"]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = []
    for n, row in enumerate([HEADER, *rows]):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ratios(report: Report) -> list[str]:
    out = []
    for engine_key, durable_key, db_name in (
        ("b", "d-sqlite", "SQLite"),
        ("c", "d-pg", "PostgreSQL"),
    ):
        eng, dur = report.get(engine_key), report.get(durable_key)
        if eng and dur and dur.rate:
            out.append(
                f"({engine_key})/(d) on {db_name}: {eng.rate:,.1f} / {dur.rate:,.0f} = "
                f"{eng.rate / dur.rate:.3f} of the durable-write limit"
            )
    for http_key, engine_key, db_name in (("e-sqlite", "b", "SQLite"), ("e-pg", "c", "PostgreSQL")):
        http, eng = report.get(http_key), report.get(engine_key)
        if http and eng:
            out.append(
                f"HTTP/JSON overhead on {db_name}: p50 {http.pct(50) - eng.pct(50):+.2f} ms "
                f"({http.rate / eng.rate:.2f}x the throughput of the service call)"
            )
    a, b = report.get("a"), report.get("b")
    if a and b:
        out.append(
            f"Engine on SQLite vs raw SpiffWorkflow: {a.rate / b.rate:.1f}x slower per completion"
        )
    return out


def analysis_lines(report: Report, markdown: bool) -> list[str]:
    dbs = {k: v for k, v in report.analysis.items() if not k.startswith("profile")}
    lines: list[str] = []
    for db_name, data in dbs.items():
        summary = (
            f"{db_name}: {data['statements_mean']:.1f} SQL statements per completion, "
            "besides BEGIN and COMMIT "
            f"(min {data['statements_min']}, max {data['statements_max']}; "
            f"{data['completions']} completions)"
        )
        if "http_statements_mean" in data:
            summary += f", {data['http_statements_mean']:.1f} through HTTP (token lookup included)"
        summary += (
            f"; saved state {data['state_bytes_mean'] / 1024:.1f} KiB on average, "
            f"{data['state_bytes_max'] / 1024:.1f} KiB at most"
        )
        lines.append(f"- {summary}." if markdown else summary)
    if not dbs:
        return lines
    names = list(dbs)
    merged: dict[str, dict[str, float]] = {}
    for n, d in dbs.items():
        for kind, count in d["statements_by_kind"].items():
            row = merged.setdefault(kind.replace(" … FOR UPDATE", ""), {})
            row[n] = row.get(n, 0.0) + count
    labels = {}
    for k in merged:
        locking = {
            n: d["statements_by_kind"][f"{k} … FOR UPDATE"]
            for n, d in dbs.items()
            if f"{k} … FOR UPDATE" in d["statements_by_kind"]
        }
        note = ", ".join(f"{c:.2f} … FOR UPDATE on {n}" for n, c in locking.items())
        labels[k] = f"{k} [{note}]" if note else k
    kinds = list(merged)
    parts = list(dict.fromkeys(k for d in dbs.values() for k in d["parts_ms"]))
    if markdown:
        lines += ["", "| Statements of an average completion | " + " | ".join(names) + " |"]
        lines.append("|---|" + "---:|" * len(names))
        for kind in kinds:
            cells = [f"{merged[kind].get(n, 0):.2f}" for n in names]
            lines.append(f"| `{labels[kind]}` | " + " | ".join(cells) + " |")
        lines += ["", "| Time of a completion, ms (mean; inclusive, parts overlap) | "]
        lines[-1] += " | ".join(names) + " |"
        lines.append("|---|" + "---:|" * len(names))
        for part in parts:
            cells = [f"{dbs[n]['parts_ms'].get(part, 0):.2f}" for n in names]
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
        lines.append("")
        return lines
    width = max(len(k) for k in list(labels.values()) + parts)
    lines.append(
        "  " + "statements per completion".ljust(width) + "".join(f"{n:>12}" for n in names)
    )
    for kind in kinds:
        cells = "".join(f"{merged[kind].get(n, 0):12.2f}" for n in names)
        lines.append("  " + labels[kind].ljust(width) + cells)
    lines.append(
        "  " + "time split, ms (inclusive)".ljust(width) + "".join(f"{n:>12}" for n in names)
    )
    for part in parts:
        cells = "".join(f"{dbs[n]['parts_ms'].get(part, 0):12.2f}" for n in names)
        lines.append("  " + part.ljust(width) + cells)
    lines.append("")
    return lines


def profile_lines(report: Report, markdown: bool) -> list[str]:
    prof = report.analysis.get("profile (SQLite)")
    if not prof:
        return []
    lines = [
        f"cProfile of {prof['completions']} completions on SQLite "
        f"({prof['profiled_ms_per_completion']:.1f} ms per completion under the profiler):"
    ]
    if markdown:
        lines += ["", "| Own time by area | ms per completion |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in list(prof["areas_ms"].items())[:14]]
        lines += [
            "",
            "| Function (own time) | ms per completion | calls per completion |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| `{name}` | {ms:.2f} | {calls:.0f} |" for name, ms, calls in prof["top_tottime"]
        ]
        lines += [
            "",
            "| Function (cumulative, engine/SpiffWorkflow/jsonschema) | ms per completion |",
            "|---|---:|",
        ]
        lines += [f"| `{name}` | {ms:.2f} |" for name, ms in prof["top_cumtime"]]
    else:
        lines.append("  own time by area (ms per completion):")
        lines += [f"    {v:7.2f}  {k}" for k, v in list(prof["areas_ms"].items())[:14]]
        lines.append("  top functions by own time (ms per completion, calls per completion):")
        lines += [f"    {ms:7.2f}  {calls:7.0f}  {name}" for name, ms, calls in prof["top_tottime"]]
        lines.append("  top functions by cumulative time (engine, SpiffWorkflow, jsonschema):")
        lines += [f"    {ms:7.2f}  {name}" for name, ms in prof["top_cumtime"]]
    return lines


def print_report(report: Report) -> None:
    say("")
    say(
        f"Task completions, credentialing happy path ({len(HAPPY_PATH)} completions per instance), "
        f"{report.instances} timed instances per scenario after {report.warmup} warm-up; seed {report.seed}"
    )
    say(text_table(table_rows(report, report.results)))
    say("")
    for line in ratios(report):
        say(line)
    if report.setup:
        say(
            "Not counted above (mean ms): "
            + ", ".join(f"{k} {1000 * sum(v) / len(v):.1f}" for k, v in report.setup.items() if v)
        )
    if report.experiments:
        say("")
        say("Experiments (engine settings changed inside the benchmark only):")
        say(text_table(table_rows(report, report.experiments)))
    say("")
    for line in analysis_lines(report, markdown=False):
        say(line)
    for line in profile_lines(report, markdown=False):
        say(line)
    say(
        f"\nTotal run time {report.elapsed:.0f} s; load average {report.machine.get('load', '?')}; "
        f"other processes (PostgreSQL server included) used {report.machine.get('other_cpu', '?')} "
        "of the CPUs"
    )


def generated_block(report: Report) -> str:
    m = report.machine
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    pg = (
        f"PostgreSQL {m.get('postgresql', '?')} on {m.get('pg_host', '?')} "
        f"(synchronous_commit={m.get('pg_synchronous_commit', '?')}, fsync={m.get('pg_fsync', '?')}, "
        f"wal_sync_method={m.get('pg_wal_sync_method', '?')})"
        if "postgresql" in m
        else "PostgreSQL: not measured (unreachable)"
    )
    lines = [
        BEGIN,
        "<!-- Generated by `.venv/bin/python bench/engine.py --write-doc`; edit outside the markers. -->",
        "",
        f"Measured on {today} with `{report.command}` ({report.instances} timed instances of "
        f"{len(HAPPY_PATH)} completions per scenario after {report.warmup} warm-up instances; "
        f"{report.durable_iterations} commits for (d); seed {report.seed}; whole run {report.elapsed:.0f} s).",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['ram']} RAM, {m['os']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}; {pg}; SpiffWorkflow {m['spiffworkflow']}, SQLAlchemy {m['sqlalchemy']}, "
        f"psycopg {m['psycopg']}, Flask {m['flask']}. One 4 KiB write + fdatasync in the temp "
        f"folder takes {m.get('fdatasync', '?')} (median). Load average (1/5/15 min): "
        f"{m.get('load', '?')}; other processes, the PostgreSQL server included, used "
        f"{m.get('other_cpu', '?')} of the CPUs during the run.",
        "",
        md_table(table_rows(report, report.results)),
        "",
    ]
    lines += [f"- {line}" for line in ratios(report)]
    if report.setup:
        lines.append(
            "- Not counted in the table (mean per instance): "
            + ", ".join(
                f"{k} {1000 * sum(v) / len(v):.1f} ms" for k, v in report.setup.items() if v
            )
        )
    if report.experiments:
        lines += [
            "",
            "Experiments — engine settings changed inside the benchmark only, not in `engine/`:",
            "",
        ]
        lines.append(md_table(table_rows(report, report.experiments)))
    lines += ["", "### Statements and time per completion", ""]
    lines += analysis_lines(report, markdown=True)
    lines += ["### Profile", ""]
    lines += profile_lines(report, markdown=True)
    lines += ["", END]
    return "\n".join(lines)


SKELETON = f"""# Performance

How fast Credencia completes the tasks of the credentialing process, measured by
`bench/engine.py` (`make bench`).

## Figures

{BEGIN}
{END}

## Scheduler sweep

Measured by later work.

## National scale

Measured by later work.
"""


def write_doc(report: Report) -> None:
    text = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else SKELETON
    if BEGIN not in text or END not in text:
        text = text.rstrip() + "\n\n## Figures\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(head + generated_block(report) + tail, encoding="utf-8")
    say(f"Wrote {DOC_PATH.relative_to(ROOT)}")


# ------------------------------------------------------------------------- main


def run_database(
    report: Report,
    name: str,
    url: str,
    args: argparse.Namespace,
    *,
    engine_key: str,
    durable_key: str,
) -> None:
    n, warm, seed = args.instances, args.warmup, args.seed
    say(f"[{name}] building the schema, deploying the process, creating users")
    spiff.clear_cache()  # definition ids restart in every database
    db = Database(url)
    try:
        world = build_world(db, url, seed)
        say(f"[{name}] (d) durable-write limit: {args.durable} commits")
        eng = make_engine(url)
        try:
            samples_d = bench_durable(eng, args.durable, max(50, args.durable // 10))
        finally:
            eng.dispose()
        report.results.append(
            Result(
                durable_key,
                f"durable write limit, {name}: UPDATE + COMMIT",
                samples_d,
                unit="commits",
            )
        )
        gc.collect()
        say(f"[{name}] ({engine_key}) engine service calls: {n} instances")
        out = run_instances(
            world, service_completer(world), n, warm, seed, setup_times=report.setup
        )
        report.results.append(Result(engine_key, f"engine, {name}: complete() in db.write()", out))
        gc.collect()
        say(f"[{name}] (e) through the Flask test client: {n} instances")
        try:
            via_http: Completer | None = http_completer(world)
        except Exception as exc:  # the web app is someone else's work in progress
            say(f"[{name}] (e) skipped: the web app did not start: {exc!r}")
            via_http = None
        if via_http is not None:
            out = run_instances(world, via_http, n, warm, seed + 1)
            key = "e-sqlite" if name == "SQLite" else "e-pg"
            report.results.append(
                Result(key, f"engine, {name}: POST /api/v1/tasks/…/complete", out)
            )
        gc.collect()
        say(f"[{name}] analysis: statements, time split")
        report.analysis[name] = analyse(world, args.analysis, seed + 2)
        if via_http is not None:
            http = count_statements(world, via_http, 1, seed + 5)
            report.analysis[name]["http_statements_mean"] = http["mean"]
        if name == "SQLite":
            say(f"[{name}] cProfile of {args.analysis} instances")
            report.analysis["profile (SQLite)"] = profile_completions(
                world, args.analysis, seed + 3
            )
        if not args.no_experiments:
            run_experiments(report, name, url, world, args)
        with db.read() as s:
            checked, broken = audit.verify(s)
        if broken is not None:
            raise RuntimeError(f"[{name}] the audit chain is broken after the run: {broken}")
        say(f"[{name}] audit chain verified: {checked} events")
    finally:
        db.dispose()


def run_experiments(
    report: Report, name: str, url: str, world: World, args: argparse.Namespace
) -> None:
    """Engine settings changed inside the benchmark only, each against a baseline run just
    before it (the database has grown since the main scenario)."""
    n = max(1, args.instances // 2)
    iterations = args.durable
    warm = max(50, iterations // 10)
    short = "b" if name == "SQLite" else "c"
    seed = args.seed + 10

    def engine_run(label: str, key: str, db: Database | None = None) -> None:
        target = world.with_db(db) if db is not None else world
        say(f"[{name}] experiment: {label}, {n} instances")
        out = run_instances(target, service_completer(target), n, args.warmup, seed)
        report.experiments.append(Result(key, f"engine, {name}, {label}", out))

    engine_run("baseline (as (" + short + "), at this point of the run)", f"{short}=")
    if name == "SQLite":
        # No other connection may stay open, or closing would not be the last close.
        world.db.engine.dispose()
        eng = nullpool_sqlite_engine(url)
        try:
            out = bench_durable(eng, iterations, warm)
        finally:
            eng.dispose()
        report.experiments.append(
            Result(
                "d*",
                "durable write, SQLite, new connection per transaction (NullPool, before edf4b4d)",
                out,
                unit="commits",
            )
        )
        db = nullpool_sqlite_database(url)
        db.on_denied = audit.record_denial
        try:
            engine_run("new connection per transaction (NullPool, before edf4b4d)", "b*", db)
        finally:
            db.dispose()
    else:
        eng = make_engine(url, pool_pre_ping=False)
        try:
            out = bench_durable(eng, iterations, warm)
        finally:
            eng.dispose()
        report.experiments.append(
            Result("d*", "durable write, PostgreSQL, pool_pre_ping=False", out, unit="commits")
        )
        db = Database(url, pool_pre_ping=False)
        db.on_denied = audit.record_denial
        try:
            engine_run("pool_pre_ping=False", "c*", db)
        finally:
            db.dispose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--instances",
        type=int,
        default=None,
        help="timed instances per scenario (default 50; 2 with --quick)",
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up instances per scenario")
    parser.add_argument(
        "--durable", type=int, default=None, help="commits timed for the write limit"
    )
    parser.add_argument(
        "--analysis", type=int, default=None, help="instances for the analysis pass"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few instances of each")
    parser.add_argument("--write-doc", action="store_true", help="update docs/PERFORMANCE.md")
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures as JSON here"
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL scenarios")
    parser.add_argument(
        "--no-experiments", action="store_true", help="skip the engine-setting experiments"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.instances = args.instances if args.instances is not None else (2 if quick else 50)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.durable = args.durable if args.durable is not None else (200 if quick else 3000)
    args.analysis = args.analysis if args.analysis is not None else (1 if quick else 4)
    args.raw_instances = max(args.instances * 4, 4)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()

    def load_after() -> str:
        return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"

    load_before = load_after()
    busy_before, own_before = cpu_busy_seconds(), sum(os.times()[:2])
    report = Report(
        seed=args.seed,
        instances=args.instances,
        warmup=args.warmup,
        durable_iterations=args.durable,
        machine=machine(),
    )
    report.command = ".venv/bin/python bench/engine.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    report.command = report.command.strip()
    say(f"(a) raw SpiffWorkflow: {args.raw_instances} instances")
    report.results.append(bench_raw(args.raw_instances, args.warmup, args.seed, roundtrip=False))
    say(f"(a+s) raw SpiffWorkflow with state load/dump: {args.raw_instances} instances")
    report.results.append(bench_raw(args.raw_instances, args.warmup, args.seed, roundtrip=True))
    with (
        tempfile.TemporaryDirectory(prefix="credencia-bench-") as tmp,
        sqlite_database(Path(tmp)) as url,
    ):
        if hasattr(os, "fdatasync"):
            report.machine["fdatasync"] = f"{fdatasync_us(Path(tmp)):.0f} µs"
        run_database(report, "SQLite", url, args, engine_key="b", durable_key="d-sqlite")
    if args.no_postgres:
        say("PostgreSQL scenarios skipped (--no-postgres).")
    else:
        admin = os.environ.get("CREDENCIA_BENCH_POSTGRES_URL", DEFAULT_PG)
        with postgres_database(admin) as url:
            if url is not None:
                report.machine.update(postgres_facts(url))
                run_database(report, "PostgreSQL", url, args, engine_key="c", durable_key="d-pg")
    order = ["a", "a+s", "b", "c", "e-sqlite", "e-pg", "d-sqlite", "d-pg"]
    report.results.sort(key=lambda r: order.index(r.key))
    report.elapsed = time.perf_counter() - started
    if hasattr(os, "getloadavg"):
        report.machine["load"] = f"{load_before} before, {load_after()} after"
    busy_after = cpu_busy_seconds()
    if busy_before is not None and busy_after is not None:
        others = (busy_after - busy_before) - (sum(os.times()[:2]) - own_before)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        share = max(0.0, others) / (report.elapsed * (cpus or 1))
        report.machine["other_cpu"] = f"{100 * share:.0f}%"
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": report.command,
                    "machine": report.machine,
                    "seed": report.seed,
                    "results": [r.as_dict() for r in report.results],
                    "experiments": [r.as_dict() for r in report.experiments],
                    "analysis": report.analysis,
                },
                indent=2,
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
    if args.write_doc:
        write_doc(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
