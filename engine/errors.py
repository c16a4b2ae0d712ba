"""Domain errors raised by engine services; each face (API, pages, CLI) maps them once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    """The actor may not do this. Raised after the denial is queued for the audit log."""

    status = 403

    def __init__(
        self,
        message: str,
        *,
        action: str,
        entity_type: str = "",
        entity_id: str = "",
        org_id: int | None = None,
        details: dict[str, Any] | None = None,
        actor_id: int | None = None,
        actor_label: str = "",
    ):
        super().__init__(message)
        self.actor_id = actor_id
        self.actor_label = actor_label
        self.action = action
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.org_id = org_id
        self.details = details or {}


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    """Bad input; ``errors`` maps a field path to a message in Portuguese."""

    status = 422

    def __init__(
        self,
        errors: dict[str, str],
        message: str = "Há campos com erro.",
        *,
        denial: Forbidden | None = None,
    ):
        super().__init__(message)
        self.errors = errors
        # Bad input that is also an attempt to reach what is not the actor's (another
        # establishment's file): answered as bad input, audited as a denial.
        self.denial = denial


class TooLarge(DomainError):
    status = 413
