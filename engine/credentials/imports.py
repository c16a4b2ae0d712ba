"""Importing the credentials an organization already holds, from a CSV.

An organization that starts using Credencia brings what the RNDS already granted it: one line
per credential, each recorded by ``service.register`` (the same checks as a registration: a
known CNES, an identificador free in the portfolio and UF, children of the same UF) in a
savepoint of its own. A refused line changes nothing and does not stop the others; the result
says, line by line, what was created and what was refused, at which column and why.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import identifiers
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.credentials import service
from engine.credentials.models import STATUS_LABELS
from engine.errors import Invalid
from engine.establishments.models import Portfolio
from engine.exports import csvread

COLUMNS = (
    "cnes", "portfolio", "identificador", "situacao", "data_homologacao", "data_producao",
    "numero_solicitacao", "ip_inicial", "ip_final", "sistema_nome", "sistema_versao", "filhos",
    "gestor_nome", "gestor_cpf", "gestor_email",
)  # fmt: skip
REQUIRED = ("cnes", "portfolio", "identificador", "situacao")
SAMPLE = (
    "cnes;portfolio;identificador;situacao;data_homologacao;data_producao;numero_solicitacao;"
    "ip_inicial;ip_final;sistema_nome;sistema_versao;filhos;gestor_nome;gestor_cpf;gestor_email\n"
    "2337991;RIRA;40111;Produção;10/02/2025;18/03/2025;3804/2024;200.10.1.1;200.10.1.20;"
    "Prontuário X;2.1;2337992|2337993;Maria Souza;52998224725;maria@exemplo.gov.br\n"
)
# The credential's fields as the CSV names them (a refusal is shown at the CSV's column).
CREDENTIAL_COLUMNS = {
    "establishment": "cnes",
    "portfolio_code": "portfolio",
    "requester_id": "identificador",
    "status": "situacao",
    "homologation_on": "data_homologacao",
    "production_on": "data_producao",
    "request_numbers": "numero_solicitacao",
    "ip_start": "ip_inicial",
    "ip_end": "ip_final",
    "system_name": "sistema_nome",
    "system_version": "sistema_versao",
    "children": "filhos",
    "gestor_name": "gestor_nome",
    "gestor_cpf": "gestor_cpf",
    "gestor_email": "gestor_email",
}
LIMITS = {"identificador": 40, "numero_solicitacao": 40, "sistema_nome": 200,
          "sistema_versao": 60, "gestor_nome": 200, "gestor_email": 254}  # fmt: skip
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CHILDREN_SPLIT = re.compile(r"[\s|]+")


@dataclass
class LineResult:
    line: int
    cnes: str
    credential_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)  # CSV column -> message

    @property
    def created(self) -> bool:
        return self.credential_id is not None


@dataclass
class ImportResult:
    lines: list[LineResult] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(1 for r in self.lines if r.created)

    @property
    def refused(self) -> int:
        return sum(1 for r in self.lines if not r.created)


def _plain(text: str) -> str:
    """Lower case, no accents, words joined by ``_``: "Em análise para produção" ->
    "em_analise_para_producao"."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\s-]+", "_", bare)


# A situação is given by its code or its label.
STATUS_NAMES = {
    **{_plain(label): code for code, label in STATUS_LABELS.items()},
    **{code: code for code in STATUS_LABELS},
}


def _date(text: str) -> date | None:
    for shape in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, shape).date()
        except ValueError:
            continue
    raise ValueError(text)


def parse_line(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The register arguments of one line, and what is wrong in it (column -> message)."""
    cell = {k: (raw.get(k) or "").strip() for k in COLUMNS}
    errors: dict[str, str] = {}
    for name in REQUIRED:
        if not cell[name]:
            errors[name] = "Campo obrigatório."
    for name, size in LIMITS.items():
        if len(cell[name]) > size:
            errors[name] = f"No máximo {size} caracteres."
    try:
        cnes = identifiers.validate_cnes(cell["cnes"]) if cell["cnes"] else ""
    except identifiers.InvalidIdentifier as exc:
        errors["cnes"], cnes = str(exc), cell["cnes"]
    status = STATUS_NAMES.get(_plain(cell["situacao"]), "")
    if cell["situacao"] and not status:
        allowed = ", ".join(STATUS_LABELS[s] for s in service.IMPORTABLE)
        errors["situacao"] = f"Situação desconhecida; use uma de: {allowed}."
    dates: dict[str, date | None] = {}
    for name in ("data_homologacao", "data_producao"):
        try:
            dates[name] = _date(cell[name]) if cell[name] else None
        except ValueError:
            errors[name] = "Data inválida; use dd/mm/aaaa ou aaaa-mm-dd."
    homologated, produced = dates.get("data_homologacao"), dates.get("data_producao")
    if homologated and produced and produced < homologated:
        errors["data_producao"] = "A entrada em produção é anterior à homologação."
    for name in ("ip_inicial", "ip_final"):
        if cell[name]:
            try:
                ipaddress.ip_address(cell[name])
            except ValueError:
                errors[name] = "Endereço IP inválido."
    if cell["gestor_cpf"]:
        try:
            cell["gestor_cpf"] = identifiers.validate_cpf(cell["gestor_cpf"])
        except identifiers.InvalidIdentifier as exc:
            errors["gestor_cpf"] = str(exc)
    if cell["gestor_email"] and not EMAIL_RE.match(cell["gestor_email"]):
        errors["gestor_email"] = "E-mail inválido."
    children = [c for c in CHILDREN_SPLIT.split(cell["filhos"]) if c]
    wrong = [c for c in children if not identifiers.is_valid_cnes(c)]
    if wrong:
        errors["filhos"] = f"CNES inválido: {', '.join(wrong[:5])}."
    values = {
        "ip_start": cell["ip_inicial"],
        "ip_end": cell["ip_final"],
        "system_name": cell["sistema_nome"],
        "system_version": cell["sistema_versao"],
        "gestor_name": cell["gestor_nome"],
        "gestor_cpf": cell["gestor_cpf"],
        "gestor_email": cell["gestor_email"].lower(),
    }
    if children:
        values["children"] = children
    arguments = {
        "establishment_cnes": cnes,
        "portfolio_code": cell["portfolio"].upper(),
        "status": status,
        "requester_id": cell["identificador"],
        "homologation_on": homologated,
        "production_on": produced,
        "request_numbers": [cell["numero_solicitacao"]] if cell["numero_solicitacao"] else [],
        "values": values,
    }
    return arguments, errors


def import_csv(
    session: Session, actor: Actor, org_id: int, source: str | Iterable[str]
) -> ImportResult:
    """Record each line's credential (``service.register``, admin only), each in a savepoint.

    ``source`` is the whole text or a text file's lines (read once, as a stream). A file
    without the required columns is refused as a whole (``Invalid`` at ``arquivo``)."""
    if not actor.has_role(org_id, "admin"):
        raise actor.deny(
            "Apenas administradores importam credenciais.",
            action="credential.import",
            org_id=org_id,
        )
    reader = csvread.dict_reader(source)
    missing = [c for c in REQUIRED if c not in reader.fieldnames]
    if missing:
        raise Invalid({"arquivo": f"Colunas ausentes no cabeçalho: {', '.join(missing)}."})
    portfolios = set(session.scalars(select(Portfolio.code)))
    result = ImportResult()
    for row in csvread.numbered(reader):
        if isinstance(row, csvread.Malformed):
            result.lines.append(LineResult(row.line, "", errors={"arquivo": row.message}))
            break
        number, raw = row
        result.lines.append(_one(session, actor, org_id, number, raw, portfolios))
    audit.record(
        session,
        actor,
        "credential.imported",
        org_id=org_id,
        entity_type="organization",
        entity_id=org_id,
        data={"lines": len(result.lines), "created": result.created, "refused": result.refused},
    )
    return result


def _one(
    session: Session, actor: Actor, org_id: int, number: int, raw: dict[str, Any],
    portfolios: set[str],
) -> LineResult:  # fmt: skip
    if None in raw:
        return LineResult(number, "", errors={"linha": "Mais colunas do que o cabeçalho."})
    arguments, errors = parse_line(raw)
    line = LineResult(number, arguments["establishment_cnes"])
    code = arguments["portfolio_code"]
    if code and code not in portfolios:
        errors.setdefault("portfolio", f"Portfólio {code} desconhecido.")
    if errors:
        line.errors = errors
        return line
    try:
        with session.begin_nested():
            credential = service.register(session, actor, org_id=org_id, **arguments)
            line.credential_id = credential.id
    except Invalid as exc:
        line.errors = {CREDENTIAL_COLUMNS.get(k, k): m for k, m in exc.errors.items()}
    return line
