"""Bulk start: credentialing started for many establishments, each in its own transaction.

One refusal (already running, no permission, unknown CNES) does not stop the others; the
report says what started and what was refused and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.accounts.actor import Actor
from engine.db import Database
from engine.errors import DomainError, Invalid
from engine.runtime import service as runtime

MAX_ESTABLISHMENTS = 2000


@dataclass
class BulkReport:
    started: list[tuple[str, int]] = field(default_factory=list)  # (CNES, instance id)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (CNES, reason)


def _reason(exc: DomainError) -> str:
    if isinstance(exc, Invalid) and exc.errors:
        return "; ".join(exc.errors.values())
    return exc.message


def start_many(
    db: Database,
    actor: Actor,
    org_id: int,
    cnes_list: list[str],
    *,
    process_key: str,
    portfolio_code: str = "",
) -> BulkReport:
    if not ({"admin", "gestor"} & actor.roles_in(org_id)) and not actor.is_system:
        raise actor.deny(
            "Você não pode iniciar credenciamentos.", action="instance.bulk_start", org_id=org_id
        )
    wanted = list(dict.fromkeys(c.strip() for c in cnes_list if c and c.strip()))
    if not wanted:
        raise Invalid({"establishments": "Selecione ao menos um estabelecimento."})
    if len(wanted) > MAX_ESTABLISHMENTS:
        raise Invalid(
            {"establishments": f"No máximo {MAX_ESTABLISHMENTS} estabelecimentos por vez."}
        )
    report = BulkReport()
    for cnes in wanted:
        try:
            with db.write() as session:
                instance = runtime.start_instance(
                    session, actor, org_id=org_id, process_key=process_key,
                    establishment_cnes=cnes, portfolio_code=portfolio_code,
                )  # fmt: skip
                report.started.append((cnes, instance.id))
        except DomainError as exc:
            report.refused.append((cnes, _reason(exc)))
    return report
