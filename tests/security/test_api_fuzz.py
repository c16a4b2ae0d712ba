"""What tests/integration/test_schemathesis.py does not cover: invalid data (schemathesis'
negative mode: every request that breaks the document is refused with a 4xx, never a 5xx),
requests without valid credentials on every operation, and fuzzing as roles that are mostly
refused (a scoped gestor, an auditor) rather than the admin."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, update

from engine.accounts.models import User
from engine.audit.models import AuditEvent
from tests.support.security import SecWorld, denials

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# List filters treat an empty value (``?instance=``) as "no filter": accepted, not an error.
LENIENT_FILTERS = {
    ("GET", f"/api/v1/{name}") for name in ("tasks", "instances", "establishments", "credentials")
}


@pytest.fixture
def api_schema(app, sec):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    return operations


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], checks: list,
          examples: int) -> None:  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    fuzz()


def _one_case(operation: Any) -> Any:
    """One valid request for the operation, the same every run."""
    drawn: list[Any] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=1, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])  # fmt: skip
    def draw(case) -> None:
        drawn.append(case)

    draw()
    return drawn[0]


def test_invalid_data_is_rejected_with_4xx(api_schema, sec: SecWorld) -> None:
    """Negative mode: bodies, paths and query strings that break the document."""
    for operation in _operations(api_schema):
        lenient = (operation.method.upper(), operation.path) in LENIENT_FILTERS
        checks = CONFORMANCE if lenient else [*CONFORMANCE, negative_data_rejection]
        _fuzz(operation, GenerationMode.NEGATIVE, sec.users["admin"].headers, checks, 8)


@pytest.mark.parametrize("role", ["gestor", "auditor"])
def test_fuzzing_as_mostly_refused_roles(api_schema, sec: SecWorld, role: str) -> None:
    for operation in _operations(api_schema):
        _fuzz(operation, GenerationMode.POSITIVE, sec.users[role].headers, CONFORMANCE, 5)


def test_every_operation_refuses_missing_or_bad_credentials(app, db, api_schema, sec) -> None:
    revoked = sec.users["integrador"]
    inactive = sec.users["gestor_municipal"]
    with db.write() as s:
        from engine.accounts.models import ApiToken

        s.execute(
            update(ApiToken)
            .where(ApiToken.user_id == revoked.actor.user_id)
            .values(revoked_at=ApiToken.created_at)
        )
        s.execute(update(User).where(User.id == inactive.actor.user_id).values(active=False))
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer cred_" + "x" * 43},
        {"Authorization": "Bearer " + "y" * 5000},
        {"Authorization": "Basic " + "YWRtaW46YWRtaW4="},
        {"Authorization": sec.users["admin"].token},  # no scheme
        {"Authorization": "Token " + sec.users["admin"].token},
        {"Authorization": "Bearer " + sec.users["admin"].token[:-1]},
        {"Authorization": "Bearer " + revoked.token},
        {"Authorization": "Bearer " + inactive.token},
    ]
    checked = 0
    for operation in _operations(api_schema):
        if operation.path == "/openapi.json":
            continue
        case = _one_case(operation)
        for headers in bad_headers:
            before = denials(db)
            # A session cookie is no credential for the API either.
            response = case.call(headers=headers)
            where = f"{operation.method.upper()} {operation.path} with {str(headers)[:60]}"
            assert response.status_code == 401, (where, response.status_code, response.text[:200])
            assert "message" in response.json(), where
            assert denials(db) == before + 1, f"{where}: not audited"
            checked += 1
    assert checked >= 15 * len(bad_headers)
    with db.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "denied.api.auth")))
    assert all(e.entity_id.startswith("/api/v1/") and e.data.get("reason") for e in events)


def test_a_signed_in_browser_session_is_no_api_credential(app, sec) -> None:
    from tests.support.security import PageClient

    page = PageClient(app, sec.users["admin"])
    assert page.get("/").status_code == 200
    for path in ("/api/v1/me", "/api/v1/instances", f"/api/v1/instances/{sec.own.instance_id}"):
        assert page.get(path).status_code == 401, path
    assert (
        page.client.post(
            f"/api/v1/instances/{sec.own.instance_id}/cancel", json={"reason": "cookie"}
        ).status_code
        == 401
    )
