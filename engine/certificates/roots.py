"""The ICP-Brasil roots this installation trusts, replaced as an audited operation.

The bundle itself (shipped, or installed in the instance folder) is pure knowledge in
``engine.pki.trust``; this module adds who replaced it and when, in the audit log.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from engine.access.actor import Actor
from engine.audit import service as audit
from engine.errors import Invalid
from engine.pki import fields, trust

FIELD = "arquivo"


def status() -> dict[str, Any]:
    """How many roots and ACs are trusted, how recent, from which bundle (JSON-safe)."""
    return trust.store().summary()


def update(
    session: Session,
    actor: Actor,
    data: bytes,
    *,
    filename: str,
    path: Path | None = None,
    when: date | None = None,
) -> dict[str, Any]:
    """Check the zip ITI publishes and install it over the shipped bundle (operators only,
    from the command line). Raises ``Invalid`` naming what is wrong; nothing is written then.

    The audit event is appended before the file is replaced, in the caller's transaction:
    a failed write rolls the event back, and a failed audit writes nothing.
    """
    if not actor.is_system:
        raise actor.deny(
            "Só a linha de comando do operador atualiza as raízes ICP-Brasil.",
            action="certificates.update_roots",
            org_id=None,
        )
    try:
        bundle = trust.read_iti_zip(data)
    except trust.BundleError as exc:
        raise Invalid({FIELD: exc.message}, exc.message) from None
    source = f"{Path(filename).name} (sha256 {fields.sha256_hex(data)})"
    audit.record(
        session,
        actor,
        "certificates.roots_updated",
        org_id=None,
        data={
            "file": Path(filename).name,
            "sha256": fields.sha256_hex(data),
            "roots": len(bundle.roots),
            "intermediates": len(bundle.intermediates),
            "new_roots": [_describe(c) for c in bundle.new_roots],
            "dropped_roots": [_describe(c) for c in bundle.dropped_roots],
        },
    )
    installed = trust.install(bundle, source=source, path=path, when=when)
    return {
        **installed.summary(),
        "new_roots": [_describe(c) for c in bundle.new_roots],
        "dropped_roots": [_describe(c) for c in bundle.dropped_roots],
    }


def _describe(cert: Any) -> dict[str, str]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "sha256": fields.fingerprint(cert),
        "not_before": cert.not_valid_before_utc.date().isoformat(),
        "not_after": cert.not_valid_after_utc.date().isoformat(),
    }
