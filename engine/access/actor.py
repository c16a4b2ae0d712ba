"""Who is acting, with every role they hold; permission questions are answered here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import Forbidden


@dataclass(frozen=True)
class Grant:
    org_id: int
    role: str
    # None: the whole organization; otherwise only these establishments (gestor, integrador).
    establishment_ids: frozenset[int] | None = None

    def covers(self, establishment_id: int | None) -> bool:
        if self.establishment_ids is None:
            return True
        return establishment_id is not None and establishment_id in self.establishment_ids


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str
    grants: tuple[Grant, ...] = ()
    locale: str = "pt_BR"
    is_system: bool = False  # the scheduler and CLI maintenance commands
    _by_org: dict[int, list[Grant]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for g in self.grants:
            self._by_org.setdefault(g.org_id, []).append(g)

    @property
    def org_ids(self) -> list[int]:
        return sorted(self._by_org)

    def roles_in(self, org_id: int) -> set[str]:
        return {g.role for g in self._by_org.get(org_id, ())}

    def has_role(self, org_id: int, role: str, establishment_id: int | None = None) -> bool:
        """True when the actor holds ``role`` in the organization, reaching the establishment."""
        if self.is_system:
            return True
        return any(
            g.role == role and g.covers(establishment_id) for g in self._by_org.get(org_id, ())
        )

    def is_member(self, org_id: int) -> bool:
        return self.is_system or org_id in self._by_org

    def can_see_establishment(self, org_id: int, establishment_id: int | None) -> bool:
        if self.is_system:
            return True
        return any(g.covers(establishment_id) for g in self._by_org.get(org_id, ()))

    def visible_establishments(self, org_id: int) -> frozenset[int] | None:
        """None when every establishment of the organization is visible, else the set."""
        if self.is_system:
            return None
        ids: set[int] = set()
        for g in self._by_org.get(org_id, ()):
            if g.establishment_ids is None:
                return None
            ids |= g.establishment_ids
        return frozenset(ids)

    def require_role(self, org_id: int, role: str, action: str, message: str = "") -> None:
        """Raise Forbidden (audited by the caller's face) unless the actor holds ``role``."""
        if not self.has_role(org_id, role):
            raise self.deny(message or "Apenas administradores da organização.", action=action,
                            org_id=org_id)  # fmt: skip

    def require_visible(
        self,
        org_id: int,
        establishment_id: int | None,
        message: str,
        *,
        action: str,
        entity_type: str,
        entity_id: Any,
    ) -> None:
        """Raise Forbidden (audited by the caller's face) unless the actor sees the
        establishment (or, with None, the organization-wide thing) of ``org_id``."""
        if not self.can_see_establishment(org_id, establishment_id):
            raise self.deny(message, action=action, org_id=org_id, entity_type=entity_type,
                            entity_id=entity_id)  # fmt: skip

    def require_establishment(self, org_id: int, est: Any) -> None:
        """Raise Forbidden unless ``est`` (an Establishment) belongs to ``org_id`` and the actor
        sees it: the read check of an establishment's pages."""
        if est.org_id != org_id or not self.can_see_establishment(org_id, est.id):
            raise self.deny("Sem acesso a este estabelecimento.", action="establishment.read",
                            org_id=org_id, entity_type="establishment", entity_id=est.id)  # fmt: skip

    def deny(
        self,
        message: str,
        *,
        action: str,
        org_id: int | None,
        entity_type: str = "",
        entity_id: Any = "",
        **details: Any,
    ) -> Forbidden:
        return Forbidden(
            message,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            org_id=org_id,
            details=details,
            actor_id=self.user_id,
            actor_label=self.label,
        )


SYSTEM = Actor(user_id=None, label="system", is_system=True)
