"""web/ui is a thin face: pages ask the engine's read functions, they build no queries."""

from __future__ import annotations

import ast
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"


def _query_builders(path: Path) -> list[str]:
    """Calls of ``select(...)`` (any spelling: ``select``, ``sa.select``) and imports of it."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name == "select":
                found.append(f"{path.name}:{node.lineno}: select(")
        elif (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("sqlalchemy")
            and any(a.name == "select" for a in node.names)
        ):
            found.append(f"{path.name}:{node.lineno}: imports select")
    return found


def test_pages_build_no_queries() -> None:
    offenders = [
        hit for path in sorted((WEB / "ui").rglob("*.py")) for hit in _query_builders(path)
    ]
    assert offenders == []


def test_the_check_sees_a_query(tmp_path: Path) -> None:
    page = tmp_path / "page.py"
    page.write_text(
        "from sqlalchemy import select\n"
        "import sqlalchemy as sa\n"
        "def view(s):\n"
        "    return s.scalars(select(X)), s.scalars(sa.select(Y))\n",
        encoding="utf-8",
    )
    assert _query_builders(page) == [
        "page.py:1: imports select",
        "page.py:4: select(",
        "page.py:4: select(",
    ]
