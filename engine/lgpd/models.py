"""The vault of personal values, the requests of data subjects and the access log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JSONType, UTCDateTime, utcnow


class DataSubject(Base):
    """One person whose data the audit log holds, with the key their values are sealed under.

    ``wrapped_key`` is the subject's AES-256 key encrypted under the master key (like
    engine/secrets). Erasing the subject deletes it and the identifier's keyed hash: the
    sealed values can never be opened again, and the subject can no longer be found by CPF or
    e-mail (the erasure request keeps its own keyed hash, to answer "was it erased?").
    """

    __tablename__ = "lgpd_subject"
    __table_args__ = (UniqueConstraint("org_id", "ident_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))  # cpf | email | cns | name
    ident_hash: Mapped[str | None] = mapped_column(String(64))
    wrapped_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erase_request_id: Mapped[int | None] = mapped_column(ForeignKey("lgpd_request.id"))


class SealedValue(Base):
    """A personal value taken out of an audit event: the event's data keeps
    ``{"$pd": id, "c": commitment}``, the hash covers that, and the value lives here encrypted
    under its subject's key (``salt || value``; the commitment is HMAC-SHA256(salt, value))."""

    __tablename__ = "lgpd_value"
    __table_args__ = (
        Index("ix_lgpd_value_subject", "subject_id"),
        Index("ix_lgpd_value_ident", "ident_hash"),
        Index("ix_lgpd_value_entity", "entity_type", "entity_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("lgpd_subject.id"))
    org_id: Mapped[int | None] = mapped_column(Integer)
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    entity_type: Mapped[str] = mapped_column(String(40), default="")
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    field: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    # Keyed hash of the normalized value when it identifies (cpf, cns, e-mail): lookups.
    ident_hash: Mapped[str | None] = mapped_column(String(64))
    ciphertext: Mapped[str | None] = mapped_column(Text)


class SubjectRequest(Base):
    """A data subject's request (report or erasure), kept as the record that it was answered."""

    __tablename__ = "lgpd_request"
    __table_args__ = (Index("ix_lgpd_request_ident", "ident_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # report | erase
    ident_kind: Mapped[str] = mapped_column(String(16))  # cpf | email
    ident_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # done | refused
    reason: Mapped[str] = mapped_column(Text, default="")
    by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    by: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict] = mapped_column(JSONType, default=dict)


class AnonymizedInstance(Base):
    """A finished process whose personal data retention anonymized (done once each)."""

    __tablename__ = "lgpd_anonymized"

    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessChain(Base):
    """Head of one organization's access-log chain; ``anchor_*`` is where the chain starts
    after retention removed its oldest entries."""

    __tablename__ = "access_chain"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    anchor_hash: Mapped[str] = mapped_column(String(64))


class AccessEntry(Base):
    """One read of personal data: inserted alone on the request (one statement), then chained
    (``seq``, ``prev_hash``, ``hash``) by the sealing step in id order."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_org_at", "org_id", "at"),
        Index("ix_access_log_entity", "entity_type", "entity_id"),
        Index("ix_access_log_unsealed", "hash"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    org_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(8), default="web")  # web | api | cli
    view: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40), default="")
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(300), default="")
    chain: Mapped[str | None] = mapped_column(String(40))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
