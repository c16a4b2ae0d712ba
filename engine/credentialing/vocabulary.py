"""The credentialing vocabulary: what a credentialing process tells the runtime, in one place.

The runtime runs any BPMN process; the words that make it a credentialing — the data a
workflow starts with, the request numbers shown in an instance's header, what a rejection is
and where its reason is — are declared per process in its ``process.json``:

``start_data``
    The start data providers (``PROVIDERS`` below) whose variables the workflow starts with,
    in order. Every provider answers for a whole batch of establishments in one query, so a
    single start and the bulk start build the same data the same way.
``header_fields``
    Form fields that, when a completed task gives them, fill the instance's header columns
    (``HEADER_COLUMNS``).
``rejection``
    ``{"field": "decision", "values": ["reprovada"], "reason": "motivo"}``: a completion whose
    ``field`` holds one of ``values`` is a rejection; its ``reason`` is kept on the instance
    and shown to the next task (``ultimo_motivo``).
``form_context``
    Workflow variables a task's page shows beside the form (the establishment, the portfolio…).

A process that leaves one out gets the default below, which is what the credentialing
processes declare. This module reads tables only (their models), never other services, so
the runtime and the deploy check may both ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.certificates.models import Certificate
from engine.db import utcnow
from engine.establishments.models import Establishment, Portfolio

HEADER_COLUMNS = ("numero_solicitacao", "identificador_solicitante")
LAST_REASON = "ultimo_motivo"  # the context key of the last rejection's reason
REGISTER_VARIABLE = "estabelecimento"  # the establishment's register in the workflow's data

DEFAULT_START_DATA = ("certificate", "govbr_account", "establishment", "portfolio")
DEFAULT_HEADER_FIELDS = HEADER_COLUMNS
DEFAULT_REJECTION = {"field": "decision", "values": ["reprovada"], "reason": "motivo"}
DEFAULT_FORM_CONTEXT = ("estabelecimento", "portfolio", "operacoes_aprovadas")

# (session, establishments, portfolio or None, what the starter gave, now) -> one dict each
Provider = Callable[
    [Session, Sequence[Establishment], Portfolio | None, Mapping[str, Any], datetime],
    list[dict[str, Any]],
]


def _certificate(session, ests, portfolio, given, now):
    """Whether the establishment's current certificate is valid now, and its summary."""
    ids = [e.id for e in ests]
    certs = (
        {
            c.establishment_id: c
            for c in session.scalars(
                select(Certificate).where(
                    Certificate.establishment_id.in_(ids), Certificate.is_current.is_(True)
                )
            )
        }
        if ids
        else {}
    )
    out = []
    for est in ests:
        cert = certs.get(est.id)
        out.append(
            {
                "possui_certificado_valido": cert is not None and cert.is_valid_at(now),
                "certificado_atual": (
                    {
                        "sha256": cert.sha256,
                        "not_after": cert.not_after.isoformat(),
                        "cnpj": cert.cnpj,
                    }
                    if cert
                    else None
                ),
            }
        )
    return out


def _govbr_account(session, ests, portfolio, given, now):
    """Whether the starter said the establishment already has a gov.br account."""
    value = bool(given.get("possui_conta_govbr", False))
    return [{"possui_conta_govbr": value} for _ in ests]


def _establishment(session, ests, portfolio, given, now):
    return [{REGISTER_VARIABLE: est.register_data()} for est in ests]


def _portfolio(session, ests, portfolio, given, now):
    data = {"portfolio": portfolio.as_data()} if portfolio is not None else {}
    return [dict(data) for _ in ests]


PROVIDERS: dict[str, Provider] = {
    "certificate": _certificate,
    "govbr_account": _govbr_account,
    "establishment": _establishment,
    "portfolio": _portfolio,
}
# The variables each provider gives: what gateway conditions may read from the start.
PROVIDES: dict[str, tuple[str, ...]] = {
    "certificate": ("possui_certificado_valido", "certificado_atual"),
    "govbr_account": ("possui_conta_govbr",),
    "establishment": (REGISTER_VARIABLE,),
    "portfolio": ("portfolio",),
}


def _start_providers(manifest: Mapping[str, Any]) -> list[str]:
    names = manifest.get("start_data", DEFAULT_START_DATA)
    return list(names) if isinstance(names, list | tuple) else list(DEFAULT_START_DATA)


def start_data(
    session: Session,
    manifest: Mapping[str, Any],
    establishments: Sequence[Establishment],
    portfolio: Portfolio | None,
    given: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The start data of each establishment's workflow, in order: one query per provider
    for the whole list (a single start passes one establishment)."""
    now = now or utcnow()
    result: list[dict[str, Any]] = [{} for _ in establishments]
    for name in _start_providers(manifest):
        for data, part in zip(
            result,
            PROVIDERS[name](session, establishments, portfolio, given or {}, now),
            strict=True,
        ):
            data.update(part)
    return result


def start_variables(manifest: Mapping[str, Any]) -> set[str]:
    """The variables a workflow of this process starts with (for the deploy check)."""
    names = {v for p in _start_providers(manifest) for v in PROVIDES.get(p, ())}
    extra = manifest.get("start_variables", [])
    return names | (set(extra) if isinstance(extra, list) else set())


def header_values(manifest: Mapping[str, Any], data: Mapping[str, Any] | None) -> dict[str, str]:
    """The instance header columns a completed task's data fills."""
    if not data:
        return {}
    return {
        name: str(data[name])
        for name in manifest.get("header_fields", DEFAULT_HEADER_FIELDS)
        if name in HEADER_COLUMNS and data.get(name)
    }


def rejection_reason(manifest: Mapping[str, Any], data: Mapping[str, Any] | None) -> str | None:
    """The reason of a rejection given in a completed task's data; None if it is not one."""
    if not data:
        return None
    rule = manifest.get("rejection", DEFAULT_REJECTION) or {}
    if data.get(rule.get("field", "")) in rule.get("values", ()) and data.get(rule.get("reason")):
        return str(data[rule["reason"]])
    return None


def form_context(
    manifest: Mapping[str, Any], data: Mapping[str, Any], last_rejection_reason: str
) -> dict[str, Any]:
    """What a task page shows beside the form: the declared workflow variables and the
    reason of the last rejection."""
    context = {
        k: data.get(k) for k in manifest.get("form_context", DEFAULT_FORM_CONTEXT) if k in data
    }
    context[LAST_REASON] = last_rejection_reason
    return context


def register_prefill(
    register_fields: Mapping[str, str], workflow_data: Mapping[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """Fill the form's fields that declare a register key (``x-register``: field name ->
    register key), where empty, from the establishment's register the workflow started with."""
    register = workflow_data.get(REGISTER_VARIABLE)
    if not isinstance(register, Mapping):
        return data
    filled = dict(data)
    for name, key in register_fields.items():
        value = register.get(key)
        if not filled.get(name) and value:
            filled[name] = value
    return filled


def manifest_problems(manifest: Mapping[str, Any]) -> list[str]:
    """What is wrong in a process.json's credentialing declarations, one line each."""
    problems = []
    providers = manifest.get("start_data", DEFAULT_START_DATA)
    if not isinstance(providers, list | tuple) or not all(isinstance(p, str) for p in providers):
        problems.append('"start_data" deve ser uma lista de nomes')
    else:
        problems += [
            f"\"start_data\": fonte desconhecida '{p}' (conhecidas: {', '.join(PROVIDERS)})"
            for p in providers
            if p not in PROVIDERS
        ]
    fields = manifest.get("header_fields", DEFAULT_HEADER_FIELDS)
    if not isinstance(fields, list | tuple):
        problems.append('"header_fields" deve ser uma lista')
    else:
        problems += [
            f"\"header_fields\": '{f}' não é um campo do cabeçalho ({', '.join(HEADER_COLUMNS)})"
            for f in fields
            if f not in HEADER_COLUMNS
        ]
    rule = manifest.get("rejection", DEFAULT_REJECTION)
    if rule is not None and not (
        isinstance(rule, dict)
        and isinstance(rule.get("field"), str)
        and isinstance(rule.get("reason"), str)
        and isinstance(rule.get("values"), list)
    ):
        problems.append('"rejection" deve ter "field", "values" (lista) e "reason"')
    context = manifest.get("form_context", DEFAULT_FORM_CONTEXT)
    if not isinstance(context, list | tuple):
        problems.append('"form_context" deve ser uma lista')
    return problems
