"""Where the tests' PostgreSQL server is."""

from __future__ import annotations

import os

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def pg_admin_url() -> str:
    return os.environ.get("CREDENCIA_TEST_POSTGRES_URL", DEFAULT_PG)
