"""What sealing personal values costs an audit append (the task-completion hot path).

Run ``.venv/bin/python bench/lgpd.py [--events N] [--postgres ADMIN_URL]`` (PostgreSQL: a
fresh database is created from the admin URL and dropped at the end). It appends N
``task.completed``-shaped events to a fresh SQLite database (and PostgreSQL, when given):
once with a form's personal fields (gestor CPF, CNS, name, e-mail, phone, sealed into the
vault), once with the same fields renamed so that nothing is personal, and prints the mean
time per append and the SQL statements each one ran. Nothing here asserts timings.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from sqlalchemy import event  # noqa: E402

from engine import secrets as secret_store  # noqa: E402
from engine.audit import service as audit  # noqa: E402
from engine.db import Base, Database  # noqa: E402

PERSONAL = {
    "gestor_cpf": "39053344705", "gestor_cns": "207284801600008", "gestor_nome": "Maria da Silva",
    "gestor_email": "maria.silva@exemplo.gov.br", "gestor_telefone": "41999998888",
}  # fmt: skip
PLAIN = {k.replace("gestor_", "sistema_"): "x" * len(v) for k, v in PERSONAL.items()}


def _payload(fields: dict) -> dict:
    return {"task": "t", "name": "Solicitar acesso", "lane": "Gestor", "stage": "Solicitação",
            "data": {**fields, "ip_inicial": "200.17.0.1", "sistema_versao": "4.2"},
            "next": ["x"], "status": "running"}  # fmt: skip


def run(url: str, n: int) -> None:
    import engine.models  # noqa: F401

    db = Database(url)
    Base.metadata.create_all(db.engine)
    statements = [0]
    event.listen(db.engine, "before_cursor_execute",
                 lambda *a, **k: statements.__setitem__(0, statements[0] + 1))  # fmt: skip
    # A warm-up round of each first (statement compilation, imports), then the timed rounds.
    rounds = [("personal", PERSONAL, False), ("no personal", PLAIN, False)]
    rounds += [("personal", PERSONAL, True), ("no personal", PLAIN, True)]
    for label, fields, timed in rounds:
        total, counted = 0.0, 0
        for i in range(n):
            with db.write() as s:
                before = statements[0]
                t0 = time.perf_counter()
                audit.record(s, None, "task.completed", org_id=None, entity_type="instance",
                             entity_id=i, data=_payload(fields))  # fmt: skip
                s.flush()
                total += time.perf_counter() - t0
                counted += statements[0] - before
        if not timed:
            continue
        print(f"{db.dialect:10s} {label:12s} {1000 * total / n:7.3f} ms/append  "
              f"{counted / n:4.1f} statements/append")  # fmt: skip
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--postgres", default="")
    args = parser.parse_args()
    secret_store.configure(secret_store.Keyring(secret_store.Key.from_text(
        secret_store.generate_key())))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", args.events)
    if args.postgres:  # a database of its own, dropped at the end
        import uuid

        import psycopg

        name = f"credencia_bench_lgpd_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            run(f"{args.postgres.rpartition('/')[0]}/{name}", args.events)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
