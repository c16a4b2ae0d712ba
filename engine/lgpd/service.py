"""A data subject's requests (LGPD art. 18): everything held about them, and erasure.

Erasure is one transaction: it refuses, with the reason, while a legal obligation keeps the
data (a running process holds it; a finished one is inside its retention period), else it
anonymizes the subject's values where they were written in the clear (task data, workflow
state, drafts, credentials, certificates, notifications, e-mails, comments: LOCATIONS in
engine/lgpd/declarations.py), destroys the subject keys and ciphertexts of the audit log's
vault, and records the request and an audit event. The audit chains are not touched: they
hold commitments only, so they verify as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, or_, select, update
from sqlalchemy.orm import Session

from engine import identifiers
from engine.access.actor import Actor
from engine.audit import service as audit
from engine.audit import vault
from engine.db import Base, utcnow
from engine.errors import Invalid
from engine.establishments.models import Establishment
from engine.lgpd.declarations import LOCATIONS
from engine.lgpd.models import AccessEntry, DataSubject, SealedValue, SubjectRequest
from engine.runtime.models import RUNNING, ProcessInstance, Task

ANONYMIZED = "[dado pessoal removido]"
KINDS = ("cpf", "email")


@dataclass
class Outcome:
    request_id: int
    status: str  # done | refused
    reason: str = ""
    subjects: int = 0
    values: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def _label(actor: Actor | None) -> tuple[int | None, str]:
    return (actor.user_id, actor.label) if actor else (None, "system")


def identifier(kind: str, value: str) -> str:
    """The identifier normalized, or Invalid at the field."""
    if kind not in KINDS:
        raise Invalid({"kind": "Use cpf ou email."})
    if kind == "cpf":
        try:
            return identifiers.validate_cpf(value)
        except identifiers.InvalidIdentifier as exc:
            raise Invalid({"cpf": str(exc)}) from None
    email = vault.normalize("email", value)
    if "@" not in email or len(email) > 254:
        raise Invalid({"email": "E-mail inválido."})
    return email


def subjects_of(session: Session, kind: str, value: str, org_id: int | None = None) -> list[str]:
    hashes = vault.ident_hashes(kind, value)
    stmt = select(SealedValue.subject_id).where(SealedValue.ident_hash.in_(hashes))
    direct = select(DataSubject.id).where(DataSubject.ident_hash.in_(hashes))
    # Erased subjects lost their keyed hashes; their erasure request still names them.
    erased = select(DataSubject.id).where(
        DataSubject.erase_request_id.in_(
            select(SubjectRequest.id).where(
                SubjectRequest.ident_hash.in_(hashes), SubjectRequest.kind == "erase"
            )
        )
    )
    if org_id is not None:
        stmt = stmt.where(SealedValue.org_id == org_id)
        direct = direct.where(DataSubject.org_id == org_id)
        erased = erased.where(DataSubject.org_id == org_id)
    found = set(session.scalars(stmt)) | set(session.scalars(direct))
    return sorted(found | set(session.scalars(erased)))


def _held(session: Session, subject_ids: list[str]) -> list[tuple[SealedValue, str | None]]:
    rows = list(
        session.scalars(
            select(SealedValue)
            .where(SealedValue.subject_id.in_(subject_ids))
            .order_by(SealedValue.chain, SealedValue.seq)
        )
    )
    opened = vault.open_values(session, [r.id for r in rows])
    return [(r, opened.get(r.id)) for r in rows]


def _variants(kind: str, value: str, held: list[tuple[SealedValue, str | None]]) -> set[str]:
    """Every form the subject's values may have been written in."""
    out: set[str] = {value}
    for row, plain in held:
        if plain:
            out.add(plain.strip())
            if row.kind in ("cpf", "cns", "phone"):
                out.add(vault.normalize(row.kind, plain))
    for text in list(out):
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) == 11 and identifiers.is_valid_cpf(digits):
            out |= {digits, identifiers.format_cpf(digits)}
        if len(digits) == 15 and identifiers.is_valid_cns(digits):
            out |= {digits, identifiers.format_cns(digits)}
    return {v for v in out if len(v) >= 3}


def _patterns(variants: set[str]) -> re.Pattern[str]:
    forms = set()
    for v in variants:
        forms |= {v, json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]}
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _search_forms(variants: set[str]) -> set[str]:
    forms = set()
    for v in variants:
        forms |= {v, json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]}
    return forms


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(ANONYMIZED, value)
    if isinstance(value, list):
        return [_scrub(v, pattern) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, pattern) for k, v in value.items()}
    return value


def _matches(session: Session, variants: set[str], org_id: int | None = None):
    """(table, column, json, primary key, current value) of every place holding a variant
    (in one organization's rows only, when ``org_id`` is given)."""
    forms = _search_forms(variants)
    for table_name, column, is_json in LOCATIONS:
        table = Base.metadata.tables[table_name]
        if org_id is not None and "org_id" not in table.c:
            continue
        col = table.c[column]
        pk = list(table.primary_key.columns)
        text = cast(col, Text)
        where = or_(*[text.contains(f, autoescape=True) for f in forms])
        # Lower-case e-mails may have been entered in another case.
        where = or_(where, *[text.ilike(f"%{f}%") for f in forms if "@" in f])
        if org_id is not None:
            where = where & (table.c.org_id == org_id)
        for row in session.execute(select(*pk, col).where(where)):
            yield table, col, is_json, tuple(row[: len(pk)]), row[-1]


def _instances_holding(session: Session, variants: set[str], values) -> set[int]:
    ids = {
        int(r.entity_id) for r, _ in values if r.entity_type == "instance" and r.entity_id.isdigit()
    }
    forms = _search_forms(variants)
    state = cast(ProcessInstance.state, Text)
    ids |= set(
        session.scalars(
            select(ProcessInstance.id).where(
                or_(*[state.contains(f, autoescape=True) for f in forms])
            )
        )
    )
    data = cast(Task.data, Text)
    ids |= set(
        session.scalars(
            select(Task.instance_id).where(or_(*[data.contains(f, autoescape=True) for f in forms]))
        )
    )
    return ids


def _obligation(
    session: Session, instance_ids: set[int], retention_days: int, now: datetime
) -> str:
    """Why the data must be kept, or ''."""
    if not instance_ids:
        return ""
    rows = session.execute(
        select(ProcessInstance.id, ProcessInstance.status, ProcessInstance.ended_at).where(
            ProcessInstance.id.in_(instance_ids)
        )
    ).all()
    running = sorted(r.id for r in rows if r.status == RUNNING)
    if running:
        return (
            "Há processos em andamento que precisam destes dados (instâncias "
            + ", ".join(f"#{i}" for i in running)
            + "); conclua-os ou cancele-os antes."
        )
    ends = [r.ended_at for r in rows if r.ended_at is not None]
    if ends:
        until = max(ends) + timedelta(days=retention_days)
        if until > now:
            return (
                f"O prazo de retenção dos processos concluídos não terminou: os dados são "
                f"mantidos até {until.date().isoformat()} (CREDENCIA_LGPD_RETENTION_FINISHED_DAYS="
                f"{retention_days})."
            )
    return ""


def _record(session: Session, actor: Actor | None, kind: str, ident_kind: str, value: str,
            status: str, reason: str = "", details: dict | None = None, at: datetime | None = None
            ) -> SubjectRequest:  # fmt: skip
    by_id, by = _label(actor)
    req = SubjectRequest(
        kind=kind, ident_kind=ident_kind, ident_hash=vault.ident_hash(ident_kind, value),
        status=status, reason=reason, by_id=by_id, by=by, at=at or utcnow(),
        details=details or {},
    )  # fmt: skip
    session.add(req)
    session.flush()
    return req


def erase(
    session: Session,
    actor: Actor | None,
    kind: str,
    raw: str,
    *,
    retention_finished_days: int,
    now: datetime | None = None,
) -> Outcome:
    """Anonymize everything held about one person, or refuse with the reason (recorded
    either way). ``actor`` None is the operator at the command line."""
    if actor is not None and not actor.is_system:
        raise actor.deny("Somente o operador da instalação apaga dados de titulares.",
                         action="lgpd.erase", org_id=None)  # fmt: skip
    now = now or utcnow()
    value = identifier(kind, raw)
    subject_ids = subjects_of(session, kind, value)
    held = _held(session, subject_ids) if subject_ids else []
    variants = _variants(kind, value, held)
    instances = _instances_holding(session, variants, held)
    reason = _obligation(session, instances, retention_finished_days, now)
    if reason:
        req = _record(session, actor, "erase", kind, value, "refused", reason,
                      {"instances": sorted(instances)}, at=now)  # fmt: skip
        audit.record(session, actor, "lgpd.erase_refused", org_id=None, entity_type="lgpd_request",
                     entity_id=req.id, data={"reason": reason})  # fmt: skip
        return Outcome(req.id, "refused", reason)
    pattern = _patterns(variants)
    counts: dict[str, int] = {}
    for table, col, is_json, pk, current in list(_matches(session, variants)):
        new = _scrub(current, pattern)
        if not is_json and isinstance(new, str):
            length = getattr(col.type, "length", None)
            if length and len(new) > length:
                new = ""
        if new == current:
            continue
        cond = [c == v for c, v in zip(table.primary_key.columns, pk, strict=True)]
        session.execute(update(table).where(*cond).values({col.name: new}))
        name = f"{table.name}.{col.name}"
        counts[name] = counts.get(name, 0) + 1
    req = _record(session, actor, "erase", kind, value, "done", "",
                  {"subjects": len(subject_ids), "values": len(held), "rows": counts,
                   "instances": sorted(instances)}, at=now)  # fmt: skip
    if subject_ids:
        session.execute(
            update(SealedValue)
            .where(SealedValue.subject_id.in_(subject_ids))
            .values(ciphertext=None, ident_hash=None)
        )
        session.execute(
            update(DataSubject)
            .where(DataSubject.id.in_(subject_ids))
            .values(wrapped_key=None, ident_hash=None, erased_at=now, erase_request_id=req.id)
        )
    audit.record(session, actor, "lgpd.erased", org_id=None, entity_type="lgpd_request",
                 entity_id=req.id, data={"subjects": len(subject_ids), "values": len(held),
                                         "rows": counts})  # fmt: skip
    return Outcome(req.id, "done", "", len(subject_ids), len(held), counts)


def _reads(session: Session, held: list[tuple[SealedValue, str | None]]) -> list[AccessEntry]:
    """The access log's entries of views that showed the subject's data: the instances their
    values were recorded about, those instances' tasks, establishments and credentials."""
    entities = {(r.entity_type, r.entity_id) for r, _ in held}
    instance_ids = [int(e) for t, e in entities if t == "instance" and e.isdigit()]
    if instance_ids:
        rows = session.execute(
            select(ProcessInstance.id, Establishment.cnes, ProcessInstance.credential_id)
            .outerjoin(Establishment, Establishment.id == ProcessInstance.establishment_id)
            .where(ProcessInstance.id.in_(instance_ids))
        ).all()
        entities |= {("establishment", r.cnes) for r in rows if r.cnes}
        entities |= {("credential", str(r.credential_id)) for r in rows if r.credential_id}
        tasks = session.scalars(select(Task.id).where(Task.instance_id.in_(instance_ids)))
        entities |= {("task", t) for t in tasks}
    if not entities:
        return []
    conds = [(AccessEntry.entity_type == t) & (AccessEntry.entity_id == e) for t, e in entities]
    found: list[AccessEntry] = []
    conds_list = list(conds)
    for i in range(0, len(conds_list), 200):
        found += session.scalars(select(AccessEntry).where(or_(*conds_list[i : i + 200])))
    return sorted(found, key=lambda a: a.id)


def report(
    session: Session, actor: Actor | None, kind: str, raw: str, *, org_id: int | None = None
) -> dict[str, Any]:
    """Everything held about one person (the values, where they are, who read them, the
    requests already made), recorded as a request. ``org_id``: an organization's admin sees
    their organization's part only."""
    if (
        actor is not None
        and not actor.is_system
        and (org_id is None or not actor.has_role(org_id, "admin"))
    ):
        raise actor.deny("Relatórios de titulares são para administradores.",
                             action="lgpd.report", org_id=org_id)  # fmt: skip
    value = identifier(kind, raw)
    subject_ids = subjects_of(session, kind, value, org_id)
    held = _held(session, subject_ids) if subject_ids else []
    subjects = list(
        session.scalars(select(DataSubject).where(DataSubject.id.in_(subject_ids)))
    ) if subject_ids else []  # fmt: skip
    requests = list(
        session.scalars(
            select(SubjectRequest)
            .where(SubjectRequest.ident_hash.in_(vault.ident_hashes(kind, value)))
            .order_by(SubjectRequest.at)
        )
    )
    erasures = [r for r in requests if r.kind == "erase" and r.status == "done"]
    variants = _variants(kind, value, held)
    places: dict[str, int] = {}
    for table, col, _j, _pk, _cur in _matches(session, variants, org_id):
        places[f"{table.name}.{col.name}"] = places.get(f"{table.name}.{col.name}", 0) + 1
    reads = [a for a in _reads(session, held) if org_id is None or a.org_id == org_id]
    result = {
        "identifier": {"kind": kind, "value": value},
        "generated_at": utcnow().isoformat(),
        "status": "erased" if erasures and not [v for _, v in held if v] else "held",
        "erasures": [{"at": r.at.isoformat(), "by": r.by, "request": r.id} for r in erasures],
        "requests": [
            {
                "id": r.id,
                "kind": r.kind,
                "status": r.status,
                "reason": r.reason,
                "at": r.at.isoformat(),
                "by": r.by,
            }
            for r in requests
        ],  # fmt: skip
        "subjects": [
            {
                "id": s.id,
                "organization": s.org_id,
                "kind": s.kind,
                "since": s.created_at.isoformat(),
                "erased_at": s.erased_at.isoformat() if s.erased_at else None,
            }
            for s in subjects
        ],  # fmt: skip
        "audit_values": [
            {
                "chain": r.chain,
                "seq": r.seq,
                "entity": f"{r.entity_type}:{r.entity_id}",
                "field": r.field,
                "kind": r.kind,
                "value": v if v is not None else vault.ERASED,
            }
            for r, v in held
        ],  # fmt: skip
        "stored_in": places,
        "reads": [
            {
                "at": a.at.isoformat(),
                "by": a.actor,
                "from": a.address,
                "view": a.view,
                "entity": f"{a.entity_type}:{a.entity_id}",
                "channel": a.channel,
            }
            for a in reads
        ],  # fmt: skip
    }
    req = _record(session, actor, "report", kind, value, "done", "",
                  {"values": len(held), "reads": len(reads)})  # fmt: skip
    audit.record(session, actor, "lgpd.reported", org_id=org_id, entity_type="lgpd_request",
                 entity_id=req.id, data={"values": len(held)})  # fmt: skip
    return result
