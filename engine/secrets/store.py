"""Secret form values stored per (organization, instance, field), encrypted at rest."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from engine.db import send
from engine.secrets.keys import Key, Keyring, key_id_of, keyring
from engine.secrets.models import SecretValue


def row_context(org_id: int, instance_id: int, field_path: str) -> str:
    return f"secret_value:{org_id}:{instance_id}:{field_path}"


def put(
    session: Session,
    *,
    org_id: int,
    instance_id: int,
    field_path: str,
    value: str,
    ring: Keyring | None = None,
) -> SecretValue:
    """Store (or replace) one secret field. Callers check permission and audit "changed"
    (never the value) — this is the storage step of a service, not a service itself."""
    ring = ring or keyring()
    row = session.scalar(
        select(SecretValue).where(
            SecretValue.instance_id == instance_id, SecretValue.field == field_path
        )
    )
    token = ring.encrypt(value, context=row_context(org_id, instance_id, field_path))
    if row is None:
        row = SecretValue(org_id=org_id, instance_id=instance_id, field=field_path)
        session.add(row)
    row.ciphertext, row.key_id = token, ring.current.id
    session.flush()
    return row


# Built once: a task's page and its API read ask for each secret field the form shows.
_TABLE = SecretValue.__table__
_CIPHERTEXT = select(_TABLE.c.org_id, _TABLE.c.ciphertext).where(
    _TABLE.c.instance_id == bindparam("instance_id"), _TABLE.c.field == bindparam("field")
)


def get(
    session: Session, instance_id: int, field_path: str, *, ring: Keyring | None = None
) -> str | None:
    """The plaintext of one secret field, or None; only for the lanes that need it."""
    params = {"instance_id": instance_id, "field": field_path}
    rows = send(session.connection(), _CIPHERTEXT, params).rows
    if not rows:
        return None
    org_id, ciphertext = rows[0]
    context = row_context(org_id, instance_id, field_path)
    return (ring or keyring()).decrypt(ciphertext, context=context)


def fields_of(session: Session, instance_id: int) -> list[str]:
    """Which secret fields an instance has (to show them masked)."""
    return list(
        session.scalars(
            select(SecretValue.field)
            .where(SecretValue.instance_id == instance_id)
            .order_by(SecretValue.field)
        )
    )


def _as_key(value: Key | str | bytes) -> Key:
    return value if isinstance(value, Key) else Key.from_text(value)


def rotate(
    session: Session,
    old_keys: Iterable[Key | str | bytes] | Keyring,
    new_key: Key | str | bytes,
) -> int:
    """Re-encrypt every stored secret under ``new_key``; returns how many were rewritten.

    ``old_keys`` must open every row (rows already under the new key are skipped, so a
    rotation interrupted and run again finishes the job). All in the caller's transaction:
    a row no key opens aborts the whole rotation with :class:`SecretDecryptError`.
    """
    new = _as_key(new_key)
    old = (
        list(old_keys.keys.values())
        if isinstance(old_keys, Keyring)
        else [_as_key(k) for k in old_keys]
    )
    reader = Keyring(new, old)
    writer = Keyring(new)
    count = 0
    rows = session.scalars(select(SecretValue).order_by(SecretValue.id))
    for row in rows:
        if key_id_of(row.ciphertext) == new.id:
            continue
        plain = reader.decrypt(row.ciphertext, context=row.context)
        row.ciphertext = writer.encrypt(plain, context=row.context)
        row.key_id = new.id
        count += 1
    session.flush()
    return count
