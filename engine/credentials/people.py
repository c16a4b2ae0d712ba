"""The gestor responsável of a credentialing form, looked up by CNS or CPF among the people
Credencia already knows in the organization: the gestores its forms were sent with (the
completed tasks' data, which holds the CNS), the gestores recorded on its credentials, and
its members (accounts hold no CPF or CNS: a member is recognized by the e-mail).

Only what the actor may see: the task's organization, and within it the establishments the
actor reaches (a scoped gestor sees the people of their establishments only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import identifiers
from engine.access.actor import Actor
from engine.accounts.models import Membership, User
from engine.credentials.children import open_form
from engine.credentials.models import Credential
from engine.errors import Invalid, NotFound
from engine.runtime.models import COMPLETED, Task

# The form fields of a gestor responsável (credenciamento, PEC), by what they hold.
GESTOR_FIELDS = {
    "cns": "gestor_cns",
    "cpf": "gestor_cpf",
    "nome": "gestor_nome",
    "email": "gestor_email",
}
MAX_PEOPLE = 20
_SCAN = 200  # records read per source: the newest first


@dataclass(frozen=True)
class Person:
    nome: str
    cpf: str
    cns: str
    email: str
    membro: bool = False  # has an account in the organization (same e-mail)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def gestor_fields(schema: Any) -> dict[str, str]:
    """The gestor fields of the form (what -> field name), when it asks for a gestor by
    name and CPF or CNS; else empty."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return {}
    present = {what: name for what, name in GESTOR_FIELDS.items() if name in props}
    if "nome" in present and ("cpf" in present or "cns" in present):
        return present
    return {}


def _kind(query: str) -> tuple[str, str]:
    raw = (query or "").strip()[:40]
    digits = re.sub(r"[.\-/\s]", "", raw)
    if len(digits) == identifiers.CPF_LENGTH and identifiers.is_valid_cpf(raw):
        return "cpf", identifiers.validate_cpf(raw)
    if len(digits) == identifiers.CNS_LENGTH and identifiers.is_valid_cns(raw):
        return "cns", identifiers.validate_cns(raw)
    raise Invalid({"q": "Informe um CPF ou um CNS válido."})


def find_gestor(session: Session, actor: Actor, task_id: str, query: str) -> list[Person]:
    """The people known with this CPF or CNS, newest record first, one entry per distinct
    (name, CPF, e-mail)."""
    form = open_form(session, actor, task_id, "task.lookup.gestor")
    if not gestor_fields(form.schema):
        raise NotFound("Este formulário não tem gestor responsável.")
    kind, value = _kind(query)
    org_id = form.instance.org_id
    visible = actor.visible_establishments(org_id)
    found: list[Person] = []

    key = GESTOR_FIELDS[kind]
    sent = (
        select(Task.data)
        .where(
            Task.org_id == org_id,
            Task.state == COMPLETED,
            Task.data[key].as_string() == value,
        )
        .order_by(Task.completed_at.desc())
        .limit(_SCAN)
    )
    if visible is not None:
        sent = sent.where(Task.establishment_id.in_(visible or {-1}))
    for data in session.scalars(sent):
        if isinstance(data, dict) and data.get(GESTOR_FIELDS["nome"]):
            found.append(
                Person(
                    nome=str(data.get(GESTOR_FIELDS["nome"]) or ""),
                    cpf=str(data.get(GESTOR_FIELDS["cpf"]) or ""),
                    cns=str(data.get(GESTOR_FIELDS["cns"]) or ""),
                    email=str(data.get(GESTOR_FIELDS["email"]) or ""),
                )
            )
    cpfs = {p.cpf for p in found if p.cpf} | ({value} if kind == "cpf" else set())
    if cpfs:
        recorded = (
            select(Credential.gestor_name, Credential.gestor_cpf, Credential.gestor_email)
            .where(Credential.org_id == org_id, Credential.gestor_cpf.in_(cpfs))
            .order_by(Credential.updated_at.desc())
            .limit(_SCAN)
        )
        if visible is not None:
            recorded = recorded.where(Credential.establishment_id.in_(visible or {-1}))
        cns_of = {p.cpf: p.cns for p in found if p.cpf and p.cns}
        for name, cpf, email in session.execute(recorded):
            if name:
                found.append(Person(name, cpf, cns_of.get(cpf, ""), email or ""))
    return _members(session, org_id, _distinct(found))[:MAX_PEOPLE]


def _distinct(people: list[Person]) -> list[Person]:
    seen: dict[tuple[str, str, str], Person] = {}
    for person in people:
        key = (person.nome.strip().lower(), person.cpf, person.email.strip().lower())
        if key not in seen:
            seen[key] = person
    return list(seen.values())


def _members(session: Session, org_id: int, people: list[Person]) -> list[Person]:
    emails = {p.email.strip().lower() for p in people if p.email}
    if not emails:
        return people
    members = set(
        session.scalars(
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == org_id, User.email.in_(emails), User.active)
        )
    )
    return [
        Person(p.nome, p.cpf, p.cns, p.email, p.email.strip().lower() in members) for p in people
    ]
