"""The PEC's "Desabilitar certificado" (seed 004), recorded on the municipality's credential.

In the PEC e-SUS APS, after the habilitation, Gestão Municipal → Configuração RNDS shows the
date the certificate was included, its validity and a "Desabilitar certificado" button. That
click happens in the PEC, not here; Credencia records it: the credential goes to *suspensa*
(the PEC no longer reaches the RNDS) with the date and the reason, and back to *produção*
when the certificate is enabled again (the renewal process does both for a new certificate).
Who may record it: the organization's admin, the gestor municipal or the administrador
municipal — the people who see that screen.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.credentials import rules, service
from engine.credentials.models import PRODUCAO, SUSPENSA, Credential
from engine.db import utcnow
from engine.errors import Invalid

ROLES = frozenset({"admin", "gestor_municipal", "admin_municipal"})
REASON_MAX = 500


def can_record(actor: Actor, credential: Credential) -> bool:
    """Whether ``actor`` may record the PEC certificate being disabled or enabled again."""
    return credential.is_pec and bool(actor.roles_in(credential.org_id) & ROLES)


def disable_certificate(
    session: Session, actor: Actor, credential_id: int, *, on: date | None, reason: str
) -> Credential:
    """Record that the certificate was disabled in the PEC on ``on``: produção → suspensa."""
    credential = _locked(session, actor, credential_id, "credential.pec_disable")
    errors = _check_date(on)
    reason = (reason or "").strip()
    if not reason:
        errors["motivo"] = "Informe o motivo (por exemplo, troca de certificado ou de servidor)."
    elif len(reason) > REASON_MAX:
        errors["motivo"] = f"Use no máximo {REASON_MAX} caracteres."
    if credential.status != PRODUCAO:
        errors["status"] = "Só uma credencial do PEC em produção tem o certificado habilitado."
    if errors:
        raise Invalid(errors)
    rules.set_status(credential, SUSPENSA, instance_id=None, on=on)
    credential.history[-1] = {**credential.history[-1], "reason": reason, "on": on.isoformat()}
    credential.updated_at = utcnow()
    rules.record(
        session,
        actor,
        "credential.pec_certificate_disabled",
        credential,
        {"status": SUSPENSA, "on": on.isoformat(), "reason": reason},
    )
    return credential


def enable_certificate(
    session: Session, actor: Actor, credential_id: int, *, on: date | None
) -> Credential:
    """Record that the certificate was enabled again in the PEC on ``on``: suspensa → produção."""
    credential = _locked(session, actor, credential_id, "credential.pec_enable")
    errors = _check_date(on)
    if credential.status != SUSPENSA:
        errors["status"] = "O certificado desta credencial não está desabilitado."
    if errors:
        raise Invalid(errors)
    rules.set_status(credential, PRODUCAO, instance_id=None, on=on)
    credential.history[-1] = {**credential.history[-1], "on": on.isoformat()}
    credential.updated_at = utcnow()
    rules.record(
        session,
        actor,
        "credential.pec_certificate_enabled",
        credential,
        {"status": PRODUCAO, "on": on.isoformat()},
    )
    return credential


def _locked(session: Session, actor: Actor, credential_id: int, action: str) -> Credential:
    credential = service.get(session, actor, credential_id, action=action)
    session.refresh(credential, with_for_update=True)
    if not actor.roles_in(credential.org_id) & ROLES:
        raise actor.deny(
            "Apenas o administrador, o gestor municipal ou o administrador municipal registram "
            "a situação do certificado no PEC.",
            action=action,
            org_id=credential.org_id,
            entity_type="credential",
            entity_id=credential_id,
        )
    if not credential.is_pec:
        raise Invalid({"status": "Só credenciais do PEC e-SUS APS têm este registro."})
    return credential


def _check_date(on: date | None) -> dict[str, str]:
    if on is None:
        return {"data": "Informe a data em que foi feito no PEC (dd/mm/aaaa)."}
    if on > utcnow().date():
        return {"data": "A data não pode estar no futuro."}
    return {}
