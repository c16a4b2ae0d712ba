"""Establishments (CNES register data) and the portfolio catalogue."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy import text as text_sql
from sqlalchemy.orm import Session

from engine import identifiers
from engine.accounts.actor import Actor
from engine.audit import service as audit
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments.models import UFS, Establishment, Portfolio

FIELDS = (
    "cnes",
    "cnpj",
    "razao_social",
    "nome_fantasia",
    "uf",
    "municipio",
    "cep",
    "endereco",
    "telefone",
    "email",
    "cnes_pai",
)
REQUIRED_HEADER = FIELDS[:-1]
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LIMITS = {
    "razao_social": 200,
    "nome_fantasia": 200,
    "municipio": 100,
    "endereco": 300,
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


def _visible(stmt, actor: Actor, org_id: int):  # type: ignore[no-untyped-def]
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
    stmt = stmt.order_by(Establishment.uf, Establishment.razao_social, Establishment.id)
    return list(session.scalars(stmt.limit(min(limit, 1000)).offset(offset)))


def get_by_cnes(session: Session, actor: Actor, org_id: int, cnes: str) -> Establishment:
    est = session.scalar(
        select(Establishment).where(Establishment.org_id == org_id, Establishment.cnes == cnes)
    )
    if est is None:
        raise NotFound(f"Estabelecimento CNES {cnes} não encontrado.")
    if not actor.can_see_establishment(org_id, est.id):
        raise actor.deny(
            "Sem acesso a este estabelecimento.",
            action="establishment.read",
            org_id=org_id,
            entity_type="establishment",
            entity_id=est.id,
        )
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


def parse_csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], ImportReport]:
    """Read and check every row; return the valid rows (with their line) and the report."""
    report = ImportReport()
    if text.startswith("\ufeff"):
        text = text[1:]
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [h for h in REQUIRED_HEADER if h not in header]
    if missing:
        report.errors.append(RowError(1, "cabeçalho", f"colunas ausentes: {', '.join(missing)}"))
        return [], report
    reader.fieldnames = header
    valid: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    rows = enumerate(reader, start=2)
    while True:
        try:
            number, raw = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a stray quote swallowing the rest of the file
            report.errors.append(
                RowError(reader.line_num, "linha", f"CSV malformado ({exc}); verifique as aspas.")
            )
            break
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
        valid.append((number, values))
    return valid, report


# From this many checked rows on, PostgreSQL imports go through COPY (see copy_upsert).
COPY_MIN_ROWS = 2000
_COPY_COLUMNS = (*FIELDS,)


def copy_upsert(session: Session, org_id: int, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """PostgreSQL fast path of the import: COPY the checked rows into a temporary table, then
    one ``INSERT … SELECT … ON CONFLICT (org_id, cnes) DO UPDATE``. Runs inside the caller's
    transaction, so the import stays all or nothing. Returns (created, updated)."""
    cols = ", ".join(_COPY_COLUMNS)
    session.execute(text_sql(
        "CREATE TEMPORARY TABLE IF NOT EXISTS establishment_import "
        "(cnes varchar(7), cnpj varchar(14), razao_social varchar(200), nome_fantasia varchar(200), "
        "uf varchar(2), municipio varchar(100), cep varchar(8), endereco varchar(300), "
        "telefone varchar(20), email varchar(254), cnes_pai varchar(7)) ON COMMIT DROP"
    ))  # fmt: skip
    session.execute(text_sql("TRUNCATE establishment_import"))
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY establishment_import ({cols}) FROM STDIN") as copy:
        for values in rows:
            copy.write_row(tuple(values[c] for c in _COPY_COLUMNS))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COPY_COLUMNS if c != "cnes")
    result = session.execute(
        text_sql(
            f"INSERT INTO establishment (org_id, {cols}, created_at, updated_at) "  # noqa: S608
            f"SELECT :org_id, {cols}, now(), now() FROM establishment_import "
            f"ON CONFLICT (org_id, cnes) DO UPDATE SET {updates}, updated_at = now() "
            "RETURNING (xmax = 0) AS inserted"
        ),
        {"org_id": org_id},
    )
    created = updated = 0
    for (inserted,) in result:
        if inserted:
            created += 1
        else:
            updated += 1
    session.execute(text_sql("DROP TABLE IF EXISTS establishment_import"))
    return created, updated


def import_csv(
    session: Session, actor: Actor, org_id: int, text: str, *, skip_invalid: bool = False
) -> ImportReport:
    """Create or update establishments from a CSV; all or nothing unless ``skip_invalid``."""
    if not actor.has_role(org_id, "admin"):
        raise actor.deny(
            "Apenas administradores importam estabelecimentos.",
            action="establishment.import",
            org_id=org_id,
        )
    valid, report = parse_csv(text)
    if report.errors and (not skip_invalid or not report.rows):
        raise ImportFailed(report)
    existing = dict(
        session.execute(
            select(Establishment.cnes, Establishment.id).where(Establishment.org_id == org_id)
        ).all()
    )
    known = set(existing) | {v["cnes"] for _, v in valid}
    kept: list[dict[str, Any]] = []
    for number, values in valid:
        if values["cnes_pai"] and values["cnes_pai"] not in known:
            report.errors.append(
                RowError(number, "cnes_pai", "CNES pai não cadastrado nem presente na planilha.")
            )
            continue
        kept.append(values)
    if report.errors and not skip_invalid:
        raise ImportFailed(report)
    report.skipped = report.rows - len(kept)
    if len(kept) >= COPY_MIN_ROWS and session.get_bind().dialect.name == "postgresql":
        report.created, report.updated = copy_upsert(session, org_id, kept)
    else:
        new = [dict(v, org_id=org_id) for v in kept if v["cnes"] not in existing]
        changed = [dict(v, id=existing[v["cnes"]]) for v in kept if v["cnes"] in existing]
        for start in range(0, len(new), 5000):
            session.execute(insert(Establishment), new[start : start + 5000])
        if changed:
            session.execute(update(Establishment), changed)
        report.created, report.updated = len(new), len(changed)
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
        },
    )
    return report


def load_portfolios(session: Session, path: Path) -> int:
    """Add the catalogue entries of ``processes/portfolios.json`` that the database lacks.

    Entries already in the database are left alone: admins edit the catalogue there.
    Returns how many were added.
    """
    if not path.exists():
        return 0
    items = json.loads(path.read_text(encoding="utf-8"))
    known = set(session.scalars(select(Portfolio.code)))
    added = 0
    for item in items:
        if item["code"] in known:
            continue
        session.add(
            Portfolio(
                code=item["code"],
                name=item["name"],
                version=item.get("version", ""),
                date=item.get("date", ""),
                operations=item.get("operations", []),
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
