"""Personal values of audit events, kept out of the hashed payload.

``seal`` replaces each personal value of an event's data (``personal_key`` below; the record
of processing, engine/lgpd/declarations.py, lists them) by
``{"$pd": <id>, "c": <commitment>}``; the chain's hash covers that marker, never the value.
The value is stored in ``lgpd_value``, AES-256-GCM-encrypted under its data subject's key
(``lgpd_subject.wrapped_key``, itself encrypted under the master key as engine/secrets does),
as ``salt || value``; the commitment is HMAC-SHA256(salt, value), so the event still proves
which value it recorded to whoever holds the value, and reveals nothing without it (the salt
is secret, so a CPF cannot be found by trying them all).

Erasing a subject deletes its key and ciphertexts: the markers stay, the chain verifies as
before, and the views show ``ERASED`` in place of the value.

Appending costs nothing when an event has no personal value; otherwise one query for the
subjects, one insert of new subjects and one insert of all values of the batch.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from engine import db, identifiers
from engine import secrets as secret_store
from engine.lgpd.models import DataSubject, SealedValue

KIND_WORDS = {
    "cpf": "cpf",
    "cns": "cns",
    "nome": "name",
    "name": "name",
    "email": "email",
    "telefone": "phone",
    "phone": "phone",
}
# First words of keys about a legal entity or a system, not a person.
ENTITY_WORDS = frozenset(
    {"estabelecimento", "sistema", "system", "conector", "organizacao", "ubs", "filhos", "aviso"}
)
# Whole keys about a legal entity though they hold a kind word (an establishment's trade name).
ENTITY_KEYS = frozenset({"nome_fantasia"})
# Words of keys holding a hash of the value, not the value (``email_hmac``).
HASHED_WORDS = frozenset({"hmac", "hash", "sha256", "digest"})
# Which of a group's values identifies the person (the first present).
IDENTIFYING = ("cpf", "email", "cns", "name", "phone")
CPF_IN_TEXT = re.compile(r"(?<!\w)(\d{3}\.?\d{3}\.?\d{3}-?\d{2})(?!\w)")


@functools.lru_cache(maxsize=4096)  # (the same few hundred keys, asked on every event)
def personal_key(key: str) -> tuple[str, str] | None:
    """(kind, group) when ``key`` holds personal data, else None. ``group`` is the key without
    its kind word: ``gestor_cpf`` and ``gestor_nome`` are the same person's."""
    words = key.lower().split("_")
    if key.lower() in ENTITY_KEYS:
        return None
    if len(words) < 2 or words[0] in ENTITY_WORDS or HASHED_WORDS & set(words):
        return None
    for i, word in enumerate(words):
        kind = KIND_WORDS.get(word)
        if kind:
            return kind, "_".join(words[:i] + words[i + 1 :])
    return None


MARK = "$pd"
ERASED = "dado pessoal removido"
SALT_BYTES = 16
NONCE_BYTES = 12


@dataclass
class Pending:
    """A value taken out of an event, to be stored once the event's place is known."""

    ref: str
    subject: tuple[str, str]  # (kind, normalized identifier)
    field: str
    kind: str
    value: str
    salt: bytes


def normalize(kind: str, value: str) -> str:
    text = str(value).strip()
    if kind in ("cpf", "cns", "phone"):
        return "".join(ch for ch in text if ch.isdigit())
    if kind == "email":
        return text.lower()
    return " ".join(text.split()).casefold()


def _ring() -> secret_store.Keyring:
    """The master keyring; where none is installed yet (a CLI command, a migration), the one
    the app would use (the environment's, or the local key file outside production)."""
    try:
        return secret_store.keyring()
    except secret_store.SecretKeyError:
        from engine import settings as settings_mod

        return secret_store.require_key(settings_mod.load().production)


def _index_keys() -> list[bytes]:
    """The blind-index keys: the current master key's first (new rows), then older ones."""
    ring = _ring()
    keys = [ring.current] + [k for k in ring.keys.values() if k is not ring.current]
    return [hmac.new(k.signing_key, b"credencia/lgpd/blind-index", "sha256").digest() for k in keys]


def ident_hash(kind: str, value: str, key: bytes | None = None) -> str:
    """The keyed hash that finds a subject by CPF/e-mail/CNS without storing them."""
    key = key or _index_keys()[0]
    msg = f"{kind}:{normalize(kind, value)}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def ident_hashes(kind: str, value: str) -> list[str]:
    """Under every configured key (a rotated master key's rows are still found)."""
    return [ident_hash(kind, value, k) for k in _index_keys()]


def commitment(salt: bytes, value: str) -> str:
    return hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()


def is_marker(value: Any) -> bool:
    return isinstance(value, dict) and MARK in value and set(value) <= {MARK, "c"}


# --- sealing ---------------------------------------------------------------------------------


def seal(data: dict[str, Any]) -> tuple[dict[str, Any], list[Pending]]:
    """``data`` with its personal values replaced by markers, and the values taken out."""
    pending: list[Pending] = []
    sealed = _seal(data, "", pending)
    return sealed, pending


def _new(pending: list[Pending], subject: tuple[str, str], field: str, kind: str, value: str):
    salt = os.urandom(SALT_BYTES)
    item = Pending(uuid.uuid4().hex, subject, field, kind, value, salt)
    pending.append(item)
    return {MARK: item.ref, "c": commitment(salt, value)}


def _seal(value: Any, path: str, pending: list[Pending]) -> Any:
    if isinstance(value, list):
        return [_seal(v, f"{path}[]", pending) for v in value]
    if not isinstance(value, dict):
        if isinstance(value, str) and _cpf_in(value):
            return _new(pending, ("cpf", _cpf_in(value)), path, "text", value)
        return value
    if is_marker(value):
        return value
    groups: dict[str, dict[str, str]] = {}
    for key, v in value.items():
        found = personal_key(str(key))
        first = _first_text(v) if found else ""
        if found and first:
            kind, group = found
            groups.setdefault(group, {}).setdefault(kind, first)
    out: dict[str, Any] = {}
    for key, v in value.items():
        here = f"{path}.{key}" if path else str(key)
        found = personal_key(str(key))
        if found and found[1] in groups:
            subject = _subject_of(groups[found[1]])
            out[key] = _seal_all(v, here, found[0], subject, pending)
        else:
            out[key] = _seal(v, here, pending)
    return out


def _first_text(value: Any) -> str:
    """The first non-blank string of a value (a changed field's ``{"de", "para"}`` too)."""
    if isinstance(value, str):
        return value if value.strip() else ""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for v in items:
        found = _first_text(v)
        if found:
            return found
    return ""


def _seal_all(value: Any, path: str, kind: str, subject: tuple[str, str], pending: list[Pending]):
    """Every non-blank string of a personal key's value, as values of ``subject``."""
    if isinstance(value, str):
        return _new(pending, subject, path, kind, value) if value.strip() else value
    if isinstance(value, list):
        return [_seal_all(v, f"{path}[]", kind, subject, pending) for v in value]
    if isinstance(value, dict) and not is_marker(value):
        return {k: _seal_all(v, f"{path}.{k}", kind, subject, pending) for k, v in value.items()}
    return value


def _cpf_in(text: str) -> str:
    for match in CPF_IN_TEXT.finditer(text):
        digits = normalize("cpf", match.group(1))
        if identifiers.is_valid_cpf(digits):
            return digits
    return ""


def _subject_of(group: dict[str, str]) -> tuple[str, str]:
    for kind in IDENTIFYING:
        if kind in group and normalize(kind, group[kind]):
            return kind, normalize(kind, group[kind])
    kind, value = next(iter(group.items()))
    return kind, normalize(kind, value)


# --- storing ---------------------------------------------------------------------------------


def _wrap(subject_id: str, key: bytes) -> str:
    return _ring().encrypt(
        base64.b64encode(key).decode("ascii"), context=f"lgpd-subject:{subject_id}"
    )


def _unwrap(subject_id: str, wrapped: str) -> bytes:
    text = _ring().decrypt(wrapped, context=f"lgpd-subject:{subject_id}")
    return base64.b64decode(text)


def _encrypt(key: bytes, ref: str, salt: bytes, value: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, salt + value.encode("utf-8"), ref.encode("ascii"))
    return base64.b64encode(nonce + sealed).decode("ascii")


def _decrypt(key: bytes, ref: str, text: str) -> tuple[bytes, str]:
    raw = base64.b64decode(text)
    plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], ref.encode("ascii"))
    return plain[:SALT_BYTES], plain[SALT_BYTES:].decode("utf-8")


@dataclass
class Placed:
    """Where the values of one event went: its chain, seq and entity."""

    chain: str
    seq: int
    entity_type: str
    entity_id: str
    values: Sequence[Pending]


# Built once, with and without an organization: the subjects of a batch of values, by hash.
_SUBJECT = DataSubject.__table__
_SUBJECTS = {
    without_org: select(_SUBJECT.c.id, _SUBJECT.c.ident_hash, _SUBJECT.c.wrapped_key).where(
        _SUBJECT.c.org_id.is_(None) if without_org else _SUBJECT.c.org_id == bindparam("org_id"),
        _SUBJECT.c.ident_hash.in_(bindparam("hashes", expanding=True)),
    )
    for without_org in (True, False)
}


_FEW = 8  # subjects in one batch up to which their query has its own statement


@functools.cache
def _few_subjects(without_org: bool, n: int) -> Any:
    """``_SUBJECTS`` for exactly ``n`` hashes (``h0``…): no expanding IN, so ``db.send`` runs it."""
    return select(_SUBJECT.c.id, _SUBJECT.c.ident_hash, _SUBJECT.c.wrapped_key).where(
        _SUBJECT.c.org_id.is_(None) if without_org else _SUBJECT.c.org_id == bindparam("org_id"),
        _SUBJECT.c.ident_hash.in_([bindparam(f"h{i}") for i in range(n)]),
    )


_INSERT_VALUES = insert(SealedValue.__table__)  # built once: sent on the driver


def store(session: Session, org_id: int | None, events: Iterable[Placed]) -> int:
    """Insert the values of ``events`` under their subjects' keys (creating subjects as
    needed): one query and at most two inserts for the whole batch."""
    events = [e for e in events if e.values]
    if not events:
        return 0
    index_key = _index_keys()[0]
    wanted = {p.subject: ident_hash(p.subject[0], p.subject[1], index_key)
              for e in events for p in e.values}  # fmt: skip
    hashes = sorted(set(wanted.values()))
    if len(hashes) <= _FEW:  # an event's few subjects: a statement built once, on the driver
        params = {f"h{i}": h for i, h in enumerate(hashes)}
        if org_id is not None:
            params["org_id"] = org_id
        rows = db.send(session.connection(), _few_subjects(org_id is None, len(hashes)), params)
        found = rows.rows
    else:
        params = {"org_id": org_id, "hashes": hashes}
        found = session.execute(_SUBJECTS[org_id is None], params).all()
    by_hash = {h: (sid, _unwrap(sid, wrapped)) for sid, h, wrapped in found}
    new_subjects = []
    for (kind, _norm), h in wanted.items():
        if h not in by_hash:
            sid, key = uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)
            by_hash[h] = (sid, key)
            new_subjects.append(
                {
                    "id": sid,
                    "org_id": org_id,
                    "kind": kind,
                    "ident_hash": h,
                    "wrapped_key": _wrap(sid, key),
                }  # fmt: skip
            )
    if new_subjects:
        session.execute(insert(DataSubject.__table__), new_subjects)  # one executemany
    values = []
    for e in events:
        for p in e.values:
            sid, key = by_hash[wanted[p.subject]]
            identifying = p.kind in ("cpf", "cns", "email")
            values.append(
                {
                    "id": p.ref,
                    "subject_id": sid,
                    "org_id": org_id,
                    "chain": e.chain,
                    "seq": e.seq,
                    "entity_type": e.entity_type,
                    "entity_id": e.entity_id,
                    "field": p.field[:200],
                    "kind": p.kind,
                    "ident_hash": ident_hash(p.kind, p.value, index_key) if identifying else None,
                    "ciphertext": _encrypt(key, p.ref, p.salt, p.value),
                }  # fmt: skip
            )
    db.send_many(session.connection(), _INSERT_VALUES, values)  # one executemany
    return len(values)


# --- revealing -------------------------------------------------------------------------------


def refs_in(data: Any, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if is_marker(data):
        out.add(str(data[MARK]))
    elif isinstance(data, dict):
        for v in data.values():
            refs_in(v, out)
    elif isinstance(data, list):
        for v in data:
            refs_in(v, out)
    return out


def open_values(session: Session, refs: Iterable[str]) -> dict[str, str | None]:
    """Each ref's value, checked against nothing but its own encryption; None when erased."""
    refs = list(set(refs))
    found: dict[str, str | None] = {}
    keys: dict[str, bytes | None] = {}
    for i in range(0, len(refs), 500):
        rows = session.execute(
            select(SealedValue.id, SealedValue.ciphertext, DataSubject.id.label("sid"),
                   DataSubject.wrapped_key)
            .join(DataSubject, DataSubject.id == SealedValue.subject_id)
            .where(SealedValue.id.in_(refs[i : i + 500]))
        ).all()  # fmt: skip
        for r in rows:
            if r.sid not in keys:
                keys[r.sid] = _unwrap(r.sid, r.wrapped_key) if r.wrapped_key else None
            key = keys[r.sid]
            if key is None or r.ciphertext is None:
                found[r.id] = None
                continue
            try:
                found[r.id] = _decrypt(key, r.id, r.ciphertext)[1]
            except (InvalidTag, ValueError):
                found[r.id] = None
    return found


def reveal(data: Any, values: dict[str, str | None], erased: str = ERASED) -> Any:
    """``data`` with each marker replaced by its value, or ``erased`` where it was erased."""
    if is_marker(data):
        value = values.get(str(data[MARK]))
        return erased if value is None else value
    if isinstance(data, dict):
        return {k: reveal(v, values, erased) for k, v in data.items()}
    if isinstance(data, list):
        return [reveal(v, values, erased) for v in data]
    return data


def reveal_all(session: Session, datas: Sequence[Any], erased: str = ERASED) -> list[Any]:
    refs: set[str] = set()
    for d in datas:
        refs_in(d, refs)
    if not refs:
        return list(datas)
    values = open_values(session, refs)
    return [reveal(d, values, erased) for d in datas]


def check_commitment(session: Session, ref: str, c: str) -> bool | None:
    """True when the stored value matches the event's commitment, None when erased."""
    row = session.get(SealedValue, ref)
    if row is None or row.ciphertext is None:
        return None
    subject = session.get(DataSubject, row.subject_id)
    if subject is None or not subject.wrapped_key:
        return None
    salt, value = _decrypt(_unwrap(subject.id, subject.wrapped_key), ref, row.ciphertext)
    return hmac.compare_digest(commitment(salt, value), c)
