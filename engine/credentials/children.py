"""A task form's list of child establishments: importing a list of CNES into it and looking
an establishment up by CNES or CNPJ.

A form's child list is the array its ``same_uf`` rule checks (``filhos``, items ``cnes``).
Nothing here writes: the import answers, row by row, which CNES may join the form's list and
why each other one may not; the person still sends the form, and the credential changes only
at completion (engine/credentials/rules.py checks the same things again then).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import identifiers
from engine.access.actor import Actor
from engine.credentials import rules
from engine.errors import Conflict, Invalid, NotFound
from engine.establishments.models import Establishment
from engine.exports import csvread
from engine.runtime import tasks as runtime_tasks
from engine.runtime.models import READY, ProcessInstance, Task
from engine.runtime.state import loaded_spec
from engine.runtime.taskform import form_files

# A pasted list or an uploaded CSV of CNES is small: 500 rows of a few columns.
MAX_BYTES = 256 * 1024
MAX_LOOKUP_RESULTS = 50
_SEPARATORS = re.compile(r"[\s,;]+")

NOT_REGISTERED = "CNES não cadastrado na organização."
DUPLICATE = "CNES repetido: já está na lista."
OVER_LIMIT = "Limite de {n} estabelecimentos filhos atingido; linha não importada."
NO_LIST = "Este formulário não tem lista de estabelecimentos filhos."
EMPTY = (
    "Informe ao menos um CNES (um por linha, ou separados por vírgula, ponto e vírgula ou espaço)."
)
TOO_BIG = "Arquivo maior que {kb} KB; divida a lista."
TOO_MANY = "A lista tem {count} linhas; o limite é {n} estabelecimentos filhos."
DEFAULT_MAX_ROWS = 1000  # a list without maxItems


@dataclass(frozen=True)
class ChildList:
    """Where a form keeps its children: the array, its item's CNES field, its maxItems."""

    field: str
    item: str
    max_items: int | None


@dataclass
class TaskForm:
    """A ready task the actor may fill in, with its form's schema."""

    task: Task
    instance: ProcessInstance
    schema: dict[str, Any]
    ui: dict[str, Any]


@dataclass
class ImportRow:
    line: int  # position in the pasted list, or line of the CSV file
    value: str  # as given
    cnes: str = ""  # normalized, when it is a CNES at all
    added: bool = False
    reason: str = ""  # why it was refused (Portuguese)


@dataclass
class ImportResult:
    field: str
    item: str
    rows: list[ImportRow] = field(default_factory=list)

    @property
    def added(self) -> list[str]:
        return [r.cnes for r in self.rows if r.added]

    @property
    def refused(self) -> list[ImportRow]:
        return [r for r in self.rows if not r.added]


def child_list(schema: Any) -> ChildList | None:
    """The form's list of child establishments: the array its ``same_uf`` rule checks."""
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for rule in schema.get("x-rules") or ():
        if not isinstance(rule, dict) or rule.get("rule") != "same_uf":
            continue
        names = rule.get("fields") or []
        name = names[0] if names and isinstance(names[0], str) else ""
        spec = props.get(name)
        item = rule.get("item_field")
        if isinstance(spec, dict) and spec.get("type") == "array" and isinstance(item, str):
            limit = spec.get("maxItems")
            return ChildList(name, item, limit if isinstance(limit, int) else None)
    return None


def open_form(session: Session, actor: Actor, task_id: str, action: str) -> TaskForm:
    """The task, if the actor may fill in its form now: sees it and holds its lane's role
    (else Forbidden, audited as ``action``), ready and free or theirs (else Conflict)."""
    row = (
        session.execute(
            select(Task, ProcessInstance)
            .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
            .where(Task.id == task_id)
        ).first()
        if len(task_id) <= 36
        else None
    )
    if row is None:
        raise NotFound("Tarefa não encontrada.")
    task, instance = row
    if not (
        actor.can_see_establishment(task.org_id, task.establishment_id)
        and runtime_tasks.in_lane(actor, task)
    ):
        raise actor.deny(
            "Sem acesso a esta tarefa.",
            action=action,
            org_id=task.org_id,
            entity_type="task",
            entity_id=task.id,
        )
    if task.state != READY:
        raise Conflict("Esta tarefa já foi concluída.")
    if not runtime_tasks.can_complete(actor, task):
        raise Conflict("Esta tarefa está atribuída a outra pessoa; peça que ela a libere.")
    schema, ui = form_files(loaded_spec(session, instance), task)
    return TaskForm(task, instance, schema, ui)


def decode(raw: bytes) -> str:
    """An uploaded list as text: UTF-8 (with or without a BOM), else Latin-1 (older
    spreadsheet exports); refused past ``MAX_BYTES``."""
    if len(raw) > MAX_BYTES:
        raise Invalid({"arquivo": TOO_BIG.format(kb=MAX_BYTES // 1024)})
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def values_of(text: str) -> list[tuple[int, str]]:
    """(line or position, value) of a pasted list or a CSV file. A CSV whose header names a
    ``cnes`` column gives that column, one row a line; anything else is a list of values
    separated by line breaks, commas, semicolons or spaces."""
    text = text.replace("\x00", "")
    if len(text) > MAX_BYTES:
        raise Invalid({"texto": TOO_BIG.format(kb=MAX_BYTES // 1024)})
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    header = [h.strip().strip('"').lower() for h in re.split(r"[;,]", first)]
    if "cnes" in header and len(header) > 1:
        out = []
        for item in csvread.numbered(csvread.dict_reader(text)):
            if isinstance(item, csvread.Malformed):
                raise Invalid({"arquivo": f"Linha {item.line}: {item.message}"})
            line, row = item
            value = (row.get("cnes") or "").strip()
            if value:
                out.append((line, value))
        return out
    values = [v for v in _SEPARATORS.split(text.lstrip("\ufeff")) if v]
    if values and values[0].lower() == "cnes":  # a one-column CSV's header
        values = values[1:]
    return list(enumerate(values, start=1))


def import_children(
    session: Session,
    actor: Actor,
    task_id: str,
    text: str,
    current: Iterable[Any] = (),
) -> ImportResult:
    """Which of the listed CNES may join the task form's child list (``current``: the CNES
    already in it), row by row with the reason of each refusal. Writes nothing."""
    form = open_form(session, actor, task_id, "task.children.import")
    children = child_list(form.schema)
    if children is None:
        raise NotFound(NO_LIST)
    given = values_of(text)
    if not given:
        raise Invalid({"texto": EMPTY})
    limit = children.max_items or DEFAULT_MAX_ROWS
    if len(given) > limit:
        raise Invalid({"texto": TOO_MANY.format(count=len(given), n=limit)})
    return _judge(session, form.instance, children, given, current)


def _judge(
    session: Session,
    instance: ProcessInstance,
    children: ChildList,
    given: Sequence[tuple[int, str]],
    current: Iterable[Any],
) -> ImportResult:
    result = ImportResult(children.field, children.item)
    principal = session.get(Establishment, instance.establishment_id or -1)
    if principal is None:  # every credentialing runs on an establishment
        raise Invalid({children.field: "Processo sem estabelecimento principal."})
    rows = [ImportRow(line, value[:40]) for line, value in given]
    for row in rows:
        try:
            row.cnes = identifiers.validate_cnes(row.value)
        except identifiers.InvalidIdentifier as exc:
            row.reason = str(exc)
    wanted = list(dict.fromkeys(r.cnes for r in rows if r.cnes))
    registered = set(
        session.scalars(
            select(Establishment.cnes).where(
                Establishment.org_id == instance.org_id, Establishment.cnes.in_(wanted)
            )
        )
        if wanted
        else ()
    )
    refusals = rules.children_refusals(
        session,
        org_id=instance.org_id,
        uf=principal.uf,
        portfolio_code=instance.portfolio_code,
        principal_cnes=principal.cnes,
        credential_id=instance.credential_id,
        cnes_list=[c for c in wanted if c in registered],
    )
    seen = {str(c) for c in current if c}
    room = None if children.max_items is None else max(children.max_items - len(seen), 0)
    for row in rows:
        if not row.cnes:
            pass
        elif row.cnes in seen:
            row.reason = DUPLICATE
        elif row.cnes not in registered:
            # Another organization's CNES reads the same: it is not revealed.
            row.reason = NOT_REGISTERED
        elif row.cnes in refusals:
            row.reason = refusals[row.cnes]
        elif room is not None and room <= 0:
            row.reason = OVER_LIMIT.format(n=children.max_items)
        else:
            row.added = True
            seen.add(row.cnes)
            if room is not None:
                room -= 1
        result.rows.append(row)
    return result


@dataclass(frozen=True)
class Found:
    """An establishment a lookup found, as the form shows it to choose."""

    cnes: str
    cnpj: str
    razao_social: str
    nome_fantasia: str
    uf: str
    municipio: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def find_establishments(session: Session, actor: Actor, task_id: str, query: str) -> list[Found]:
    """The establishments of the task's organization with this CNES, or with this CNPJ (a
    CNPJ may hold several). The whole register, not only the actor's establishments: any
    establishment of the organization may be a child, as the import and the completion
    accept. Invalid when the query is neither."""
    form = open_form(session, actor, task_id, "task.lookup.establishment")
    if child_list(form.schema) is None:
        raise NotFound(NO_LIST)
    org_id = form.instance.org_id
    raw = (query or "").strip()[:40]
    digits = re.sub(r"[.\-/\s]", "", raw)
    stmt = select(Establishment).where(Establishment.org_id == org_id)
    if len(digits) <= 7 and identifiers.is_valid_cnes(raw):
        stmt = stmt.where(Establishment.cnes == identifiers.validate_cnes(raw))
    elif identifiers.is_valid_cnpj(raw):
        stmt = stmt.where(Establishment.cnpj == identifiers.validate_cnpj(raw))
    else:
        raise Invalid({"q": "Informe um CNES (7 dígitos) ou um CNPJ válido."})
    stmt = stmt.order_by(Establishment.cnes).limit(MAX_LOOKUP_RESULTS)
    return [
        Found(e.cnes, e.cnpj, e.razao_social, e.nome_fantasia, e.uf, e.municipio)
        for e in session.scalars(stmt)
    ]
