"""External tools a test needs: skip without them, except under ``CI=true``."""

from __future__ import annotations

import os
import shutil

import pytest

from bench.load import harness


def require_tool(name: str) -> str:
    path = harness.pg_tool(name) or shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI and was not found")
        pytest.skip(f"{name} not found")
    return path
