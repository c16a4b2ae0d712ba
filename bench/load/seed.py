"""Seed a PostgreSQL database for the load and fault runs, through the product's own paths.

- schema: ``credencia db upgrade`` (Alembic), processes deployed, portfolio catalogue loaded;
- one organization; N establishments over the 27 UFs imported with the CSV import (bulk
  ``INSERT``), as ``credencia establishments import`` does;
- users: an admin, an auditor, two DATASUS analysts, and a gestor and an integrador per
  *slice* of the establishments (each scoped to its slice), each with an API token;
- instances of ``credenciamento-rnds`` on M establishments, each walked to a stage by the
  engine's services (``runtime_instances.start_instance`` / ``completion.complete`` with the sample answers,
  certificates and evidence files stored like uploads), in one transaction per step as the
  API does, by several processes at once. The scripts are the demo's (``engine.demo.SCRIPTS``):
  every stage of the process, rejections included.

Run alone: ``.venv/bin/python bench/load/seed.py --url postgresql://…/db`` (the database must
exist and be empty); ``run_load.py`` and the fault scripts create, seed and drop their own.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import func, select  # noqa: E402

CAPITALS = {
    "AC": "Rio Branco", "AL": "Maceió", "AM": "Manaus", "AP": "Macapá", "BA": "Salvador",
    "CE": "Fortaleza", "DF": "Brasília", "ES": "Vitória", "GO": "Goiânia", "MA": "São Luís",
    "MG": "Belo Horizonte", "MS": "Campo Grande", "MT": "Cuiabá", "PA": "Belém",
    "PB": "João Pessoa", "PE": "Recife", "PI": "Teresina", "PR": "Curitiba",
    "RJ": "Rio de Janeiro", "RN": "Natal", "RO": "Porto Velho", "RR": "Boa Vista",
    "RS": "Porto Alegre", "SC": "Florianópolis", "SE": "Aracaju", "SP": "São Paulo",
    "TO": "Palmas",
}  # fmt: skip
# Rough weight of each UF in the CNES register (more establishments in SP, MG, …).
UF_WEIGHTS = {"SP": 22, "MG": 12, "RJ": 8, "PR": 7, "RS": 7, "BA": 6, "SC": 5, "GO": 4, "PE": 4}
ORG_SLUG = "sesa-carga"
PROCESS_KEY = "credenciamento-rnds"
PORTFOLIOS = ["REL", "RIA", "RIRA", "RAC"]


@dataclass
class Account:
    email: str
    password: str
    token: str
    role: str
    slice: int | None = None


@dataclass
class Seeded:
    url: str
    org_slug: str
    establishments: int
    instances: int
    accounts: list[Account]
    by_stage: dict[str, int] = field(default_factory=dict)
    ready_by_lane: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    schema_drift: list[str] = field(default_factory=list)

    def of_role(self, role: str) -> list[Account]:
        return [a for a in self.accounts if a.role == role]

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["accounts"] = [dataclasses.asdict(a) for a in self.accounts]
        return out


def _settings(url: str) -> Any:
    from engine import settings as settings_mod

    return settings_mod.Settings(database_url=url, certificate_require_icp_brasil=False)


def _csv(n: int, rng: random.Random) -> tuple[str, list[str]]:
    from engine import identifiers
    from engine.establishments.models import UFS

    weights = [UF_WEIGHTS.get(uf, 2) for uf in UFS]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["cnes", "cnpj", "razao_social", "nome_fantasia", "uf", "municipio", "cep", "endereco",
         "telefone", "email"]
    )  # fmt: skip
    seen: set[str] = set()
    cnes_list = []
    while len(cnes_list) < n:
        cnes = identifiers.generate_cnes(rng)
        if cnes in seen:
            continue
        seen.add(cnes)
        cnes_list.append(cnes)
        uf = rng.choices(UFS, weights)[0]
        city = CAPITALS[uf] if rng.random() < 0.4 else f"Município {uf}-{rng.randint(1, 60):03d}"
        number = len(cnes_list)
        kind = rng.choice(["Hospital", "Laboratório", "Unidade Básica de Saúde", "Clínica"])
        writer.writerow([
            cnes, identifiers.generate_cnpj(rng), f"{kind} {city} {number} Ltda",
            f"{kind} {number}", uf, city, f"{rng.randint(10000000, 99999999)}",
            f"Rua {number}, {rng.randint(1, 2000)}", f"{rng.randint(11, 99)}3{rng.randint(1000000, 9999999)}",
            f"ti.{number}@estabelecimento.example.gov.br",
        ])  # fmt: skip
    return out.getvalue(), cnes_list


def prepare_schema(url: str) -> list[str]:
    """Migrations, processes and portfolio catalogue — what an installation does first.
    Refuses to go on when the migrations do not build the models' schema."""
    from engine.db import Database
    from engine.runtime.install import install
    from web.cli import upgrade_database

    upgrade_database(url)
    settings = _settings(url)
    db = Database(url)
    try:
        missing = _schema_drift(db)
        if missing:
            # The figures of a run on a schema the models do not match would mean nothing.
            raise RuntimeError(
                "the migrations do not build the models' schema (run `credencia db upgrade` "
                f"on a fresh database to see it): missing {', '.join(missing)}"
            )
        install(db, settings.processes_dir)
    finally:
        db.dispose()
    return missing


def _schema_drift(db: Any) -> list[str]:
    """Tables and columns of the models that the migrations did not build."""
    from sqlalchemy import inspect

    import engine.models  # noqa: F401  (every table on Base.metadata)
    from engine.db import Base

    inspector = inspect(db.engine)
    present = set(inspector.get_table_names())
    missing = []
    for name, table in sorted(Base.metadata.tables.items()):
        if name not in present:
            missing.append(name)
            continue
        columns = {c["name"] for c in inspector.get_columns(name)}
        missing += [f"{name}.{c.name}" for c in table.columns if c.name not in columns]
    return missing


def _accounts(db: Any, cnes_list: list[str], slices: int) -> list[Account]:
    from engine.access.actor import SYSTEM
    from engine.accounts import service as accounts

    wanted: list[tuple[str, str, int | None, list[str]]] = [
        ("admin", "admin@carga.credencia.local", None, []),
        ("auditor", "auditor@carga.credencia.local", None, []),
        ("datasus", "datasus1@carga.credencia.local", None, []),
        ("datasus", "datasus2@carga.credencia.local", None, []),
    ]
    for k in range(slices):
        mine = cnes_list[k::slices]
        wanted.append(("gestor", f"gestor{k}@carga.credencia.local", k, mine))
        wanted.append(("integrador", f"integrador{k}@carga.credencia.local", k, mine))
    out = []
    with db.write() as session:
        for role, email, k, scope in wanted:
            password = f"carga-{email.split('@')[0]}-2026"
            accounts.create_user(
                session, SYSTEM, email, org_slug=ORG_SLUG, role=role, establishments=scope,
                password=password, name=email.split("@")[0],
            )  # fmt: skip
            token = accounts.create_token(session, SYSTEM, email, "carga")
            out.append(Account(email=email, password=password, token=token, role=role, slice=k))
    return out


def _worker(url: str, jobs: list[tuple[str, int, str, list[str]]], out: Any) -> None:
    """Walk instances to their stage; one transaction per step, like the API."""
    from engine.accounts import service as accounts
    from engine.accounts.models import User
    from engine.completion import service as completion
    from engine.db import Database
    from engine.demo import samples
    from engine.establishments import service as establishments
    from engine.establishments.models import Establishment
    from engine.files import service as files
    from engine.runtime import instances as runtime_instances
    from engine.runtime.models import READY, Task

    settings = _settings(url)
    db = Database(url)
    done, errors = 0, []
    actors: dict[str, Any] = {}

    def actor(email: str) -> Any:
        if email not in actors:
            with db.read() as s:
                actors[email] = accounts.load_actor(
                    s, s.scalar(select(User).where(User.email == email))
                )
        return actors[email]

    try:
        with db.read() as s:
            org_id = accounts.get_org(s, ORG_SLUG).id
        for cnes, k, portfolio_code, script in jobs:
            lane_actor = {
                "Gestor": actor(f"gestor{k}@carga.credencia.local"),
                "Integrador": actor(f"integrador{k}@carga.credencia.local"),
                "DATASUS": actor(f"datasus{1 + k % 2}@carga.credencia.local"),
            }
            try:
                with db.write() as s:
                    inst = runtime_instances.start_instance(
                        s, actor("admin@carga.credencia.local"), org_id=org_id,
                        process_key=PROCESS_KEY, establishment_cnes=cnes,
                        portfolio_code=portfolio_code,
                    )  # fmt: skip
                    instance_id = inst.id
                    est = s.scalar(
                        select(Establishment).where(
                            Establishment.org_id == org_id, Establishment.cnes == cnes
                        )
                    )
                    ctx: dict[str, Any] = {
                        "estabelecimento": est.register_data(),
                        "portfolio": establishments.get_portfolio(s, portfolio_code).as_data(),
                    }
                for step in script:
                    negative, element = step.startswith("!"), step.lstrip("!")
                    with db.write() as s:
                        task = s.scalar(
                            select(Task).where(
                                Task.instance_id == instance_id,
                                Task.state == READY,
                                Task.element_id == element,
                            )
                        )
                        if task is None:
                            raise RuntimeError(f"{element} is not ready for {cnes}")
                        who = lane_actor[task.lane]
                        if element == "obter_certificado_digital":
                            cert = samples.demo_certificate(ctx["estabelecimento"]["cnpj"])
                            ctx["certificate_file"] = files.store(
                                s, who, org_id, "certificado.cer", cert,
                                limit=settings.max_upload_bytes,
                            ).id  # fmt: skip
                        if element == "registrar_evidencias":
                            ctx["evidence_files"] = [
                                files.store(s, who, org_id, name, content,
                                            limit=settings.max_upload_bytes).id
                                for name, content in (("validador.pdf", samples.tiny_pdf()),
                                                      ("bundle.png", samples.tiny_png()))
                            ]  # fmt: skip
                        completion.complete(
                            s, who, task.id, samples.answer(element, ctx, negative=negative),
                            settings=settings,
                        )  # fmt: skip
                done += 1
            except Exception as exc:  # reported, the seed goes on
                errors.append(f"{cnes}: {type(exc).__name__}: {exc}")
        out.put({"done": done, "errors": errors})
    except BaseException as exc:
        out.put({"done": done, "errors": [*errors, f"worker: {exc!r}"]})
        raise
    finally:
        db.dispose()


def _collect(procs: list[Any], results: Any, *, timeout: float) -> list[dict[str, Any]]:
    """One result per worker; a worker that died without one is an error, not a hang."""
    import queue

    outcomes: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(procs):
        try:
            outcomes.append(results.get(timeout=1))
            continue
        except queue.Empty:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"seeding workers still running after {timeout}s")
        if all(not p.is_alive() for p in procs) and results.empty():
            codes = [p.exitcode for p in procs]
            raise RuntimeError(f"seeding workers exited without a result (exit codes {codes})")
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.kill()
    return outcomes


def seed(
    url: str,
    *,
    establishments: int = 4000,
    instances: int = 1500,
    slices: int = 20,
    workers: int = 2,
    rng_seed: int = 7,
    log: Any = print,
) -> Seeded:
    from engine.access.actor import SYSTEM
    from engine.accounts import service as accounts
    from engine.db import Database
    from engine.demo import loader as demo
    from engine.establishments import service as est_service
    from engine.runtime.models import READY, ProcessInstance, Task

    rng = random.Random(rng_seed)  # noqa: S311 (reproducible data, not secrets)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    drift = prepare_schema(url)
    seconds["schema"] = time.perf_counter() - clock

    db = Database(url)
    try:
        clock = time.perf_counter()
        with db.write() as s:
            org = accounts.create_org(s, SYSTEM, ORG_SLUG, "Secretaria de Saúde (carga)")
            text, cnes_list = _csv(establishments, rng)
            est_service.import_csv(s, SYSTEM, org.id, text)
        seconds["establishments"] = time.perf_counter() - clock
        log(f"  {establishments} establishments imported in {seconds['establishments']:.1f} s")

        clock = time.perf_counter()
        acc = _accounts(db, cnes_list, slices)
        seconds["users"] = time.perf_counter() - clock

        clock = time.perf_counter()
        scripts = demo.SCRIPTS
        slice_of = {cnes: i % slices for i, cnes in enumerate(cnes_list)}
        chosen = rng.sample(cnes_list, min(instances, len(cnes_list)))
        jobs = [
            (cnes, slice_of[cnes], PORTFOLIOS[i % len(PORTFOLIOS)], scripts[i % len(scripts)])
            for i, cnes in enumerate(chosen)
        ]
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(url, jobs[w::workers], results), daemon=True)
            for w in range(workers)
        ]
        for p in procs:
            p.start()
        outcomes = _collect(procs, results, timeout=900)
        seconds["instances"] = time.perf_counter() - clock
        errors = [e for o in outcomes for e in o["errors"]]
        done = sum(o["done"] for o in outcomes)
        log(f"  {done} instances walked to their stage in {seconds['instances']:.1f} s"
            f" ({len(errors)} errors)")  # fmt: skip
        with db.read() as s:
            by_stage = dict(
                s.execute(
                    select(ProcessInstance.stage, func.count()).group_by(ProcessInstance.stage)
                ).all()
            )
            ready = dict(
                s.execute(
                    select(Task.lane, func.count()).where(Task.state == READY).group_by(Task.lane)
                ).all()
            )
    finally:
        db.dispose()
    return Seeded(
        url=url,
        org_slug=ORG_SLUG,
        establishments=establishments,
        instances=done,
        accounts=acc,
        by_stage=by_stage,
        ready_by_lane={k or "": v for k, v in ready.items()},
        seconds={k: round(v, 1) for k, v in seconds.items()},
        errors=errors[:20],
        schema_drift=drift,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="an existing, empty PostgreSQL database")
    parser.add_argument("--establishments", type=int, default=4000)
    parser.add_argument("--instances", type=int, default=1500)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the accounts and counts here")
    args = parser.parse_args()
    result = seed(
        args.url,
        establishments=args.establishments,
        instances=args.instances,
        slices=args.slices,
        workers=args.workers,
    )
    summary = Counter(result.by_stage)
    print(json.dumps({"seconds": result.seconds, "by_stage": summary}, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
