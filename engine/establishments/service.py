"""Establishments (CNES register data) and the portfolio catalogue."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy import text as text_sql
from sqlalchemy.orm import Session

from engine import identifiers
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.dashboard import counts
from engine.db import UTCDateTime, utcnow
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments.models import UFS, Establishment, Portfolio
from engine.exports import csvread

FIELDS = (
    "cnes",
    "cnpj",
    "razao_social",
    "nome_fantasia",
    "uf",
    "municipio",
    "cep",
    "endereco",
    "bairro",
    "telefone",
    "email",
    "cnes_pai",
)
# Columns a CSV may leave out (an older export without the bairro; no parent).
OPTIONAL_COLUMNS = ("bairro", "cnes_pai")
REQUIRED_HEADER = tuple(f for f in FIELDS if f not in OPTIONAL_COLUMNS)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LIMITS = {
    "razao_social": 200,
    "nome_fantasia": 200,
    "municipio": 100,
    "endereco": 300,
    "bairro": 100,
    "email": 254,
}


def clean(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Normalize and check one establishment's register fields; return (values, errors)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def text(name: str) -> str:
        value = raw.get(name)
        return "" if value is None else str(value).strip()

    for name, check in (("cnes", identifiers.validate_cnes), ("cnpj", identifiers.validate_cnpj)):
        try:
            values[name] = check(text(name))
        except identifiers.InvalidIdentifier as exc:
            errors[name] = str(exc)
    for name in ("razao_social", "municipio"):
        if not text(name):
            errors[name] = "Campo obrigatório."
    for name, limit in LIMITS.items():
        values[name] = text(name)
        if len(values[name]) > limit:
            errors[name] = f"No máximo {limit} caracteres."
    uf = text("uf").upper()
    if uf not in UFS:
        errors["uf"] = "UF inválida."
    values["uf"] = uf
    cep = re.sub(r"[\s.-]", "", text("cep"))
    if cep and not (len(cep) == 8 and cep.isascii() and cep.isdigit()):
        errors["cep"] = "CEP deve ter 8 dígitos."
    values["cep"] = cep
    phone = re.sub(r"[\s().+-]", "", text("telefone"))
    if phone and not (10 <= len(phone) <= 13 and phone.isascii() and phone.isdigit()):
        errors["telefone"] = "Telefone deve ter DDD e número (10 ou 11 dígitos)."
    values["telefone"] = phone
    email = text("email").lower()
    if email and not EMAIL_RE.match(email):
        errors["email"] = "E-mail inválido."
    values["email"] = email
    parent = text("cnes_pai")
    values["cnes_pai"] = None
    if parent:
        try:
            values["cnes_pai"] = identifiers.validate_cnes(parent)
        except identifiers.InvalidIdentifier as exc:
            errors["cnes_pai"] = str(exc)
    if values.get("cnes") and values["cnes"] == values["cnes_pai"]:
        errors["cnes_pai"] = "Um estabelecimento não pode ser pai de si mesmo."
    return values, errors


def _visible(stmt, actor: Actor, org_id: int):
    ids = actor.visible_establishments(org_id)
    return stmt if ids is None else stmt.where(Establishment.id.in_(ids))


def list_establishments(
    session: Session,
    actor: Actor,
    org_id: int,
    *,
    q: str = "",
    uf: str = "",
    limit: int = 100,
    offset: int = 0,
) -> list[Establishment]:
    stmt = _listed(actor, org_id, q=q, uf=uf)
    stmt = stmt.order_by(Establishment.uf, Establishment.razao_social, Establishment.id)
    return list(session.scalars(stmt.limit(min(limit, 1000)).offset(offset)))


def count_establishments(
    session: Session, actor: Actor, org_id: int, *, q: str = "", uf: str = ""
) -> int:
    """How many establishments ``list_establishments`` pages through with these filters."""
    stmt = _listed(actor, org_id, q=q, uf=uf).with_only_columns(func.count(Establishment.id))
    return session.scalar(stmt) or 0


def _listed(actor: Actor, org_id: int, *, q: str, uf: str):
    if not actor.is_member(org_id):
        raise actor.deny(
            "Sem acesso a esta organização.", action="establishment.list", org_id=org_id
        )
    stmt = _visible(select(Establishment).where(Establishment.org_id == org_id), actor, org_id)
    if uf:
        stmt = stmt.where(Establishment.uf == uf.upper())
    if q:
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(
            Establishment.cnes.startswith(q.strip())
            | func.lower(Establishment.razao_social).like(like)
            | func.lower(Establishment.nome_fantasia).like(like)
        )
    return stmt


def get_by_cnes(session: Session, actor: Actor, org_id: int, cnes: str) -> Establishment:
    est = session.scalar(
        select(Establishment).where(Establishment.org_id == org_id, Establishment.cnes == cnes)
    )
    if est is None:
        raise NotFound(f"Estabelecimento CNES {cnes} não encontrado.")
    actor.require_establishment(org_id, est)
    return est


def create(session: Session, actor: Actor, org_id: int, raw: dict[str, Any]) -> Establishment:
    if not actor.has_role(org_id, "admin"):
        raise actor.deny(
            "Apenas administradores cadastram estabelecimentos.",
            action="establishment.create",
            org_id=org_id,
        )
    values, errors = clean(raw)
    if errors:
        raise Invalid(errors)
    exists = session.scalar(
        select(Establishment.id).where(
            Establishment.org_id == org_id, Establishment.cnes == values["cnes"]
        )
    )
    if exists:
        raise Conflict(f"O CNES {values['cnes']} já está cadastrado nesta organização.")
    est = Establishment(org_id=org_id, **values)
    session.add(est)
    session.flush()
    counts.establishments_created(session, org_id, [est.uf])
    audit.record(
        session,
        actor,
        "establishment.created",
        org_id=org_id,
        entity_type="establishment",
        entity_id=est.id,
        data=values,
    )
    return est


@dataclass
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"linha {self.line}, {self.field}: {self.message}"


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)


class ImportFailed(Invalid):
    def __init__(self, report: ImportReport):
        super().__init__(
            {f"linha {e.line}.{e.field}": e.message for e in report.errors[:200]},
            f"{len(report.errors)} erro(s) na planilha; nada foi importado.",
        )
        self.report = report


def read_csv(
    source: str | Iterable[str], report: ImportReport, seen: dict[str, int]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield each valid row (line, values) of a CSV as it is read, so a file of any size is
    checked in bounded memory. Errors go to ``report``; ``seen`` maps each valid row's CNES to
    its line (repeats are errors), and the caller keeps it for the cnes_pai check.

    ``source`` is the whole text or its lines with their endings (e.g. a text file opened with
    ``newline=""``)."""
    reader = csvread.dict_reader(source)
    missing = [h for h in REQUIRED_HEADER if h not in reader.fieldnames]
    if missing:
        report.errors.append(RowError(1, "cabeçalho", f"colunas ausentes: {', '.join(missing)}"))
        return
    for row in csvread.numbered(reader):
        if isinstance(row, csvread.Malformed):
            report.errors.append(RowError(row.line, "linha", row.message))
            break
        number, raw = row
        report.rows += 1
        if None in raw:
            report.errors.append(RowError(number, "linha", "mais colunas do que o cabeçalho"))
            continue
        values, errors = clean(raw)
        cnes = values.get("cnes")
        if cnes and cnes in seen and "cnes" not in errors:
            errors["cnes"] = f"CNES repetido (já na linha {seen[cnes]})."
        if errors:
            report.errors.extend(RowError(number, f, m) for f, m in errors.items())
            continue
        seen[cnes] = number
        yield number, values


def parse_csv(source: str | Iterable[str]) -> tuple[list[tuple[int, dict[str, Any]]], ImportReport]:
    """Read and check every row; return the valid rows (with their line) and the report.
    For the import page's preview, which the upload limit bounds."""
    report = ImportReport()
    return list(read_csv(source, report, {})), report


# The rows are staged in a temporary table as they are read (COPY on PostgreSQL, batches of
# inserts on SQLite) and written to ``establishment`` by one upsert at the end, inside the
# caller's transaction: the import stays all or nothing without holding the file in memory.
_COLUMNS = ", ".join(FIELDS)
_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS establishment_import (line integer PRIMARY KEY, "
    "cnes varchar(7), cnpj varchar(14), razao_social varchar(200), nome_fantasia varchar(200), "
    "uf varchar(2), municipio varchar(100), cep varchar(8), endereco varchar(300), "
    "bairro varchar(100), telefone varchar(20), email varchar(254), cnes_pai varchar(7))"
)
_UPSERT = (
    f"INSERT INTO establishment (org_id, {_COLUMNS}, created_at, updated_at) "  # noqa: S608
    f"SELECT :org_id, {_COLUMNS}, :now, :now FROM establishment_import "
    "WHERE true ORDER BY line "  # WHERE: SQLite would read ON CONFLICT as a join's ON
    "ON CONFLICT (org_id, cnes) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in FIELDS if c != "cnes")
    + ", updated_at = excluded.updated_at"
)
_BATCH = 1000
ANALYZE_MIN_ROWS = 10_000
_IN_CHUNK = 500
# The register fields an import may change (the CNES is the key). Before the upsert, the old
# and new values of every registered row that will change are kept aside, so that each change
# is audited once the counters were rebuilt (the audit head is locked last).
_CHANGEABLE = tuple(c for c in FIELDS if c != "cnes")
_BEFORE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS establishment_import_change (id integer PRIMARY KEY, "
    "cnes varchar(7), "
    + ", ".join(f"old_{c} varchar(300), new_{c} varchar(300)" for c in _CHANGEABLE)
    + ")"
)


def _stage(session: Session, rows: Iterable[tuple[int, dict[str, Any]]]) -> int:
    """Write the rows into the temporary table as they come; return how many."""
    postgres = session.get_bind().dialect.name == "postgresql"
    session.execute(text_sql(_STAGING + (" ON COMMIT DROP" if postgres else "")))
    session.execute(text_sql("DELETE FROM establishment_import"))
    records = ((line, *(values[c] for c in FIELDS)) for line, values in rows)
    count = 0
    if postgres:
        raw = session.connection().connection.driver_connection
        copy_sql = f"COPY establishment_import (line, {_COLUMNS}) FROM STDIN"
        with raw.cursor() as cur, cur.copy(copy_sql) as copy:
            for record in records:
                copy.write_row(record)
                count += 1
        return count
    insert_sql = (
        f"INSERT INTO establishment_import (line, {_COLUMNS}) "  # noqa: S608
        f"VALUES ({', '.join('?' * (len(FIELDS) + 1))})"
    )
    while batch := list(islice(records, _BATCH)):
        session.connection().exec_driver_sql(insert_sql, batch)
        count += len(batch)
    return count


def _existing(session: Session, org_id: int, cnes: set[str]) -> set[str]:
    """Which of ``cnes`` the organization already has."""
    found: set[str] = set()
    wanted = sorted(cnes)
    for start in range(0, len(wanted), _IN_CHUNK):
        found.update(
            session.scalars(
                select(Establishment.cnes).where(
                    Establishment.org_id == org_id,
                    Establishment.cnes.in_(wanted[start : start + _IN_CHUNK]),
                )
            )
        )
    return found


def _upsert(session: Session, org_id: int, kept: int) -> tuple[int, int]:
    """Write the staged rows to ``establishment``; return (created, updated)."""
    now = bindparam("now", type_=UTCDateTime())
    params = {"org_id": org_id, "now": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        created, updated = session.execute(
            text_sql(
                f"WITH up AS ({_UPSERT} RETURNING (xmax = 0) AS inserted) "  # noqa: S608
                "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
                "FROM up"
            ).bindparams(now),
            params,
        ).one()
    else:
        # SQLite writers hold the database's write lock, so the count still holds at the upsert.
        updated = session.scalar(
            text_sql(
                "SELECT count(*) FROM establishment_import i JOIN establishment e "
                "ON e.org_id = :org_id AND e.cnes = i.cnes"
            ),
            {"org_id": org_id},
        )
        session.execute(text_sql(_UPSERT).bindparams(now), params)
        created = kept - updated
    return created, updated


def _keep_changes(session: Session, org_id: int) -> int:
    """Keep the old and new values of the registered rows the staged ones change; return how
    many rows change."""
    postgres = session.get_bind().dialect.name == "postgresql"
    session.execute(text_sql(_BEFORE + (" ON COMMIT DROP" if postgres else "")))
    session.execute(text_sql("DELETE FROM establishment_import_change"))
    differs = " OR ".join(
        f"e.{c} IS {'DISTINCT FROM' if postgres else 'NOT'} i.{c}" for c in _CHANGEABLE
    )
    columns = ", ".join(f"old_{c}, new_{c}" for c in _CHANGEABLE)
    values = ", ".join(f"e.{c}, i.{c}" for c in _CHANGEABLE)
    return session.execute(
        text_sql(
            f"INSERT INTO establishment_import_change (id, cnes, {columns}) "  # noqa: S608
            f"SELECT e.id, e.cnes, {values} FROM establishment_import i "
            f"JOIN establishment e ON e.org_id = :org_id AND e.cnes = i.cnes WHERE {differs}"
        ),
        {"org_id": org_id},
    ).rowcount


def _changes(
    previous: dict[str, Any], current: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(new values, old values) of the fields that differ, as the edit form audits them."""
    names = [k for k in _CHANGEABLE if previous.get(k) != current.get(k)]
    return {k: current.get(k) for k in names}, {k: previous.get(k) for k in names}


def _audit_changes(session: Session, actor: Actor, org_id: int) -> None:
    """One "establishment.updated" event per changed row (kept by ``_keep_changes``), read
    and written in batches."""
    columns = ", ".join(f"old_{c}, new_{c}" for c in _CHANGEABLE)
    select_rows = text_sql(
        f"SELECT id, cnes, {columns} FROM establishment_import_change "  # noqa: S608
        "WHERE id > :last ORDER BY id LIMIT :limit"
    )
    last = 0
    while rows := session.execute(select_rows, {"last": last, "limit": _BATCH}).all():
        events = []
        for est_id, cnes, *pairs in rows:
            changed, previous = _changes(
                dict(zip(_CHANGEABLE, pairs[0::2], strict=True)),
                dict(zip(_CHANGEABLE, pairs[1::2], strict=True)),
            )
            data = {"cnes": cnes, "changed": changed, "previous": previous, "via": "import"}
            events.append(
                audit.NewEvent("establishment.updated", "establishment", str(est_id), data)
            )
        audit.append_many(session, actor, org_id, events)
        last = rows[-1][0]
    session.execute(text_sql("DROP TABLE establishment_import_change"))


def import_csv(
    session: Session,
    actor: Actor,
    org_id: int,
    source: str | Iterable[str],
    *,
    skip_invalid: bool = False,
) -> ImportReport:
    """Create or update establishments from a CSV; all or nothing unless ``skip_invalid``.

    ``source`` is the whole text or a text file (its lines), read once as a stream: memory
    stays flat but for the CNES seen so far. On errors (all or nothing) ``ImportFailed`` is
    raised after the rows were staged, so the caller's transaction must roll back (as
    ``Database.write()`` does). Every registered row whose values change gets its own
    "establishment.updated" event with the old and new values, as an edit does."""
    if not actor.has_role(org_id, "admin"):
        raise actor.deny(
            "Apenas administradores importam estabelecimentos.",
            action="establishment.import",
            org_id=org_id,
        )
    report = ImportReport()
    seen: dict[str, int] = {}
    # Rows whose cnes_pai is not among the rows before them: the parent may come later in the
    # file or be in the database, so they are checked once everything was read.
    pending: list[tuple[int, str]] = []

    def checked() -> Iterator[tuple[int, dict[str, Any]]]:
        for line, values in read_csv(source, report, seen):
            parent = values["cnes_pai"]
            if parent and parent not in seen:
                pending.append((line, parent))
            if skip_invalid or not report.errors:  # else nothing will be written anyway
                yield line, values

    staged = _stage(session, checked())
    if report.errors and (not skip_invalid or not report.rows):
        raise ImportFailed(report)
    unknown = {parent for _, parent in pending if parent not in seen}
    unknown -= _existing(session, org_id, unknown)
    orphans = [line for line, parent in pending if parent in unknown]
    report.errors.extend(
        RowError(line, "cnes_pai", "CNES pai não cadastrado nem presente na planilha.")
        for line in orphans
    )
    if report.errors and not skip_invalid:
        raise ImportFailed(report)
    drop = text_sql("DELETE FROM establishment_import WHERE line IN :lines").bindparams(
        bindparam("lines", expanding=True)
    )
    for start in range(0, len(orphans), _IN_CHUNK):
        session.execute(drop, {"lines": orphans[start : start + _IN_CHUNK]})
    kept = staged - len(orphans)
    report.skipped = report.rows - kept
    changed = _keep_changes(session, org_id) if kept else 0
    report.created, report.updated = _upsert(session, org_id, kept) if kept else (0, 0)
    # New establishments and changed UFs move dashboard rows: rebuild the organization's
    # counters from the rows (before the audit head is locked, see engine/dashboard/counts.py).
    if kept:
        if kept >= ANALYZE_MIN_ROWS and session.get_bind().dialect.name == "postgresql":
            # A large import changes the table's size by a lot: refresh the planner's
            # statistics now (own uncommitted rows count), not whenever autovacuum runs.
            session.execute(text_sql("ANALYZE establishment"))
        counts.recompute(session, org_id)
    session.execute(text_sql("DROP TABLE establishment_import"))
    if kept:
        _audit_changes(session, actor, org_id)
    audit.record(
        session,
        actor,
        "establishment.imported",
        org_id=org_id,
        entity_type="organization",
        entity_id=org_id,
        data={
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "skipped": report.skipped,
            "changed": changed,
        },
    )
    return report


def load_portfolios(session: Session, path: Path) -> int:
    """Add the catalogue entries of ``processes/portfolios.json`` that the database lacks.

    Entries already in the database keep what admins edited there; only the evidence limit
    (``evidence_max_mb``, an operator's setting kept in the file) follows the file.
    Returns how many were added.
    """
    if not path.exists():
        return 0
    items = json.loads(path.read_text(encoding="utf-8"))
    known = {p.code: p for p in session.scalars(select(Portfolio))}
    added = 0
    for item in items:
        limit = item.get("evidence_max_mb")
        if not (limit is None or (type(limit) is int and 1 <= limit <= 1024)):
            raise ValueError(
                f"portfolios.json: evidence_max_mb de {item['code']} deve ser um inteiro de 1 a 1024"
            )
        if item["code"] in known:
            known[item["code"]].evidence_max_mb = limit
            continue
        session.add(
            Portfolio(
                code=item["code"],
                name=item["name"],
                version=item.get("version", ""),
                date=item.get("date", ""),
                operations=item.get("operations", []),
                evidence_max_mb=limit,
            )
        )
        added += 1
    session.flush()
    return added


def get_portfolio(session: Session, code: str) -> Portfolio:
    portfolio = session.scalar(
        select(Portfolio).where(Portfolio.code == code, Portfolio.active.is_(True))
    )
    if portfolio is None:
        codes = ", ".join(session.scalars(select(Portfolio.code).order_by(Portfolio.code)))
        raise Invalid({"portfolio": f"Portfólio desconhecido. Opções: {codes}."})
    return portfolio


def update(
    session: Session, actor: Actor, org_id: int, cnes: str, raw: dict[str, Any]
) -> Establishment:
    """Change an establishment's register data (the CNES itself does not change)."""
    if not actor.has_role(org_id, "admin"):
        raise actor.deny("Apenas administradores alteram estabelecimentos.", action="establishment.update",
                         org_id=org_id)  # fmt: skip
    est = session.scalar(
        select(Establishment).where(Establishment.org_id == org_id, Establishment.cnes == cnes)
    )
    if est is None:
        raise NotFound(f"Estabelecimento CNES {cnes} não encontrado.")
    values, errors = clean({**raw, "cnes": est.cnes})
    if errors:
        raise Invalid(errors)
    changed, previous = _changes({k: getattr(est, k) for k in _CHANGEABLE}, values)
    if "uf" in changed:
        counts.establishment_moved(session, org_id, est.id, est.uf, changed["uf"])
    for key, value in changed.items():
        setattr(est, key, value)
    if changed:
        session.flush()
        audit.record(session, actor, "establishment.updated", org_id=org_id, entity_type="establishment",
                     entity_id=est.id, data={"cnes": est.cnes, "changed": changed,
                                             "previous": previous})  # fmt: skip
    return est
