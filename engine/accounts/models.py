from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, JSONType, UTCDateTime, utcnow

ROLES = (
    "admin", "gestor", "integrador", "datasus", "auditor",
    # PEC e-SUS APS enablement (per municipality: scoped to its Fundo Municipal de Saúde).
    "gestor_municipal", "admin_municipal", "admin_instalacao",
)  # fmt: skip
# Roles whose reach is a list of establishments rather than the whole organization.
SCOPED_ROLES = ("gestor", "integrador", "gestor_municipal", "admin_municipal", "admin_instalacao")


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(10), default="pt_BR")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Eleven digits; how an OpenID provider (gov.br) that gives a CPF finds the account.
    cpf: Mapped[str | None] = mapped_column(String(11), unique=True)
    # Set while the account is deactivated (``active`` false): nobody signs in with it.
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The TOTP secret, encrypted by engine.secrets (never in clear); None: no second factor.
    totp_secret: Mapped[str | None] = mapped_column(String(300))
    # The last 30-second step whose code was accepted: a code works once.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user")


membership_establishment = Table(
    "membership_establishment",
    Base.metadata,
    Column(
        "membership_id",
        ForeignKey("membership.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "establishment_id",
        ForeignKey("establishment.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class Membership(Base):
    """A role for a user in an organization; gestor/integrador reach only listed establishments."""

    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("user_id", "org_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")
    organization: Mapped[Organization] = relationship()
    establishments: Mapped[list[Establishment]] = relationship(  # noqa: F821
        secondary=membership_establishment
    )


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored (the token itself has 256 random bits)."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    # Minted by an organization's admin: the token acts only within that organization. None
    # (command line only) acts with all the user's roles.
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Written at most once per few minutes of use (engine/accounts/tokens.py), not per request.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None: valid until revoked. Past it the token is refused like a revoked one.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Invitation(Base):
    """An organization's admin asked a person (by e-mail) to take a role there.

    The person accepts through a link sent by e-mail: signed in, if they already have an
    account, or by choosing a password, if not. Only the SHA-256 of the link's random token is
    stored. Nobody is added to an organization without their acceptance.
    """

    __tablename__ = "invitation"
    __table_args__ = (
        Index("ix_invitation_org_pending", "org_id", "accepted_at", "cancelled_at"),
        Index("ix_invitation_email", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    # CNES of the establishments of a scoped role, as the admin chose them.
    establishments: Mapped[list] = mapped_column(JSONType, default=list)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organization: Mapped[Organization] = relationship()


class LoginAttempt(Base):
    """Failed sign-ins of one key (an account's e-mail or a trusted client address) in a row.

    Past a few failures each further attempt must wait a growing delay (``locked_until``:
    attempts before it are refused unchecked); engine/accounts/login_guard.py."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_last_attempt_at", "last_attempt_at"),)

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # account | address
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # HMAC-SHA-256, hex
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    # Attempts charged in the streak that did not succeed (and those still being checked).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The next attempt of this key is not checked before this time.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser session; the cookie holds a random id whose SHA-256 is ``id``."""

    __tablename__ = "web_session"
    __table_args__ = (
        Index("ix_web_session_user", "user_id"),
        Index("ix_web_session_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    # SHA-256 of the password hash at sign-in: a new password ends every older session.
    credential: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
