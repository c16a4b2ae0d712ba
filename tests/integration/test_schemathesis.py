"""Property-based fuzzing of the JSON API from its own OpenAPI document (schemathesis):
no 5xx, and every response conforms to the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


@pytest.fixture
def api_schema(app, make, client):
    org = make.org()
    est = make.establishment(org)
    admin = make.user("sesa-pr", "admin")
    make.user("sesa-pr", "gestor", est.cnes)
    res = client.post("/api/v1/instances", json={"process": "credenciamento-rnds", "establishment": est.cnes,
                                                 "portfolio": "RIRA"}, headers=admin.headers)  # fmt: skip
    assert res.status_code == 201
    app.config["FUZZ_TOKEN"] = admin.token
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_api_never_errors_and_conforms(api_schema, app) -> None:
    # Driven by hand rather than by schemathesis' pytest plugin, which does not support the
    # pytest this project uses.
    headers = {"Authorization": f"Bearer {app.config['FUZZ_TOKEN']}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def fuzz(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()
