"""Fixtures for the attack tests: two organizations with one of everything, a signed-in page
client and an API token for every role.

Organization A (``sesa-pr``) has establishments A1 (every scoped user's) and A2 (nobody's
but the org-wide roles' and ``gestor2``'s); organization B (``sesa-sp``) has B1. Each
establishment has a running credentialing instance with a ready Gestor task, a stored file
attached to it and audit events. A2's and B's data carry marker strings (``EST_MARKERS``,
``ORG_MARKERS``) that must never appear in a response to someone who may not see them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from engine.audit import failures
from engine.audit.models import AuditEvent, AuthFailureCount
from engine.comments import service as comments
from engine.demo import samples
from engine.establishments.models import Establishment
from engine.files import service as files
from engine.files.models import StoredFile
from engine.runtime import instances as runtime_instances
from engine.runtime.models import READY, Task
from tests.support.builders import UserHandle

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ROLES = (
    "admin",
    "gestor",
    "integrador",
    "datasus",
    "auditor",
    "gestor_municipal",
    "admin_municipal",
    "admin_instalacao",
)
WIDE = frozenset({"admin", "datasus", "auditor"})  # reach the whole organization
SCOPED = frozenset(ROLES) - WIDE  # reach only establishment A1
ORG_A, ORG_B = "sesa-pr", "sesa-sp"
# Strings that only organization B's data contains, and only establishment A2's.
ORG_MARKERS = ("Sigilosa", "sigiloso.sp", "segredo-da-org-b")
EST_MARKERS = ("Reservado", "segredo-do-a2")


class PageClient:
    """A test client signed in through the login page; it keeps its CSRF token."""

    def __init__(self, app: Any, user: UserHandle | None = None):
        self.app = app
        self.user = user
        self.client = app.test_client()
        self.token = ""
        if user is not None:
            self.login()
        else:
            self.refresh_token()

    def refresh_token(self) -> str:
        html = self.client.get("/entrar").get_data(as_text=True)
        found = CSRF_RE.search(html)
        if not found:  # signed in: /entrar redirects, the inbox carries a token
            found = CSRF_RE.search(self.client.get("/").get_data(as_text=True))
        assert found, "no CSRF token on /entrar or /"
        self.token = found.group(1)
        return self.token

    def login(self) -> None:
        assert self.user is not None
        self.client = self.app.test_client()
        self.refresh_token()
        res = self.client.post(
            "/entrar",
            data={
                "email": self.user.email,
                "password": self.user.password,
                "csrf_token": self.token,
            },
        )
        assert res.status_code == 302, res.get_data(as_text=True)[:300]
        self.refresh_token()  # the session is new at sign-in

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, **kwargs: Any) -> Any:
        data = dict(data or {})
        data.setdefault("csrf_token", self.token)
        return self.client.post(path, data=data, **kwargs)


@dataclass
class Side:
    """One establishment's things: what the ids in a URL point to."""

    org_id: int
    org_slug: str
    est: Establishment
    instance_id: int
    task_id: str
    file_id: str
    lane_user: UserHandle  # a gestor of this establishment (release needs an assignee)


@dataclass
class SecWorld:
    users: dict[str, UserHandle]  # role -> user of organization A
    own: Side  # A1
    est: Side  # A2
    org: Side  # B1
    event_a: int
    event_b: int
    membership_a: int  # a spare user's membership in A (admin may revoke it)
    membership_b: int
    token_a: int  # API token ids
    token_b: int
    definition_id: int
    admin_b: UserHandle
    notification_a: int  # the gestor's
    notification_b: int  # B's admin's
    message_a: int  # failed e-mails in each organization's outbox
    message_b: int
    extra: dict[str, Any] = field(default_factory=dict)

    def side(self, variant: str) -> Side:
        return {"own": self.own, "est": self.est, "org": self.org, "org+param": self.org}.get(
            variant, self.own
        )


def _ready_task(db: Any, instance_id: int, element: str = "obter_certificado_digital") -> str:
    with db.read() as s:
        task = s.scalar(
            select(Task).where(
                Task.instance_id == instance_id, Task.element_id == element, Task.state == READY
            )
        )
    assert task is not None
    return task.id


def build_side(db: Any, make: Any, org_id: int, slug: str, est: Establishment, starter: UserHandle,
          lane_user: UserHandle, marker: str) -> Side:  # fmt: skip
    with db.write() as s:
        inst = runtime_instances.start_instance(s, starter.actor, org_id=org_id, process_key="credenciamento-rnds",
                                      establishment_cnes=est.cnes, portfolio_code="RIRA")  # fmt: skip
        instance_id = inst.id
        row = files.store(s, starter.actor, org_id, f"evidencia-{marker}.pdf", samples.tiny_pdf(),
                          limit=10**7)  # fmt: skip
        row.establishment_id, row.instance_id = est.id, instance_id
        file_id = row.id
        comments.add_comment(s, starter.actor, instance_id, f"Comentário {marker}")
    return Side(org_id, slug, est, instance_id, _ready_task(db, instance_id), file_id, lane_user)


def set_assignee(db: Any, task_id: str, user: UserHandle | None) -> None:
    with db.write() as s:
        s.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(assignee_id=user.actor.user_id if user else None)
        )


def denials(db: Any) -> int:
    """Refusals on record: ``denied.*`` events, and unauthenticated API calls (counted, and
    summed up in at most one event a minute: engine/audit/failures.py)."""
    with db.read() as s:
        events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("denied.%"))
        )
        counted = s.scalar(select(func.coalesce(func.sum(AuthFailureCount.failures), 0)))
        summaries = s.scalars(select(AuditEvent.data).where(AuditEvent.action == failures.ACTION))
        return events + counted + sum(data["failures"] for data in summaries)


def changes(db: Any) -> int:
    """Audit events that record a change (not a denial, a sign-in or a download)."""
    with db.read() as s:
        return s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                ~AuditEvent.action.like("denied.%"),
                ~AuditEvent.action.like("auth.%"),
                AuditEvent.action.not_in(["file.downloaded", failures.ACTION]),
            )
        )


def stored_files(db: Any) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(StoredFile))
