"""The tests share helpers through tests/support/, never through each other: no test module
imports another test module or a conftest (issue 11 item 7)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(name: str) -> bool:
    """``tests.web.test_pages`` and ``tests.conftest`` are; ``tests.support.pages`` is not."""
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests") and (last.startswith("test_") or last == "conftest")


def forbidden_imports(source: str) -> list[str]:
    """The test modules and conftests that ``source`` imports (at any depth in the module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _is_test_module(node.module):
                found.append(node.module)
            else:  # ``from tests.web import test_pages``
                found += [
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if _is_test_module(f"{node.module}.{a.name}")
                ]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append("." * node.level + (node.module or ""))  # relative: none in tests/
    return found


def test_the_rule_sees_every_kind_of_import_between_tests() -> None:
    source = (
        "from tests.integration.test_api_process import flow\n"
        "from tests.web.conftest import ready_task\n"
        "from tests.web import test_browser\n"
        "import tests.conftest\n"
        "def f():\n    from tests.security.test_hostile_input import x\n"
        "from .conftest import y\n"
        "from tests.support.flows import flow\nfrom tests.support import pki\n"
    )
    assert sorted(forbidden_imports(source)) == sorted(
        [
            "tests.integration.test_api_process",
            "tests.web.conftest",
            "tests.web.test_browser",
            "tests.conftest",
            "tests.security.test_hostile_input",
            ".conftest",
        ]
    )


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    offenders = {
        str(path.relative_to(TESTS)): bad
        for path in sorted(TESTS.rglob("*.py"))
        if (path.name.startswith("test_") or path.name == "conftest.py")
        and (bad := forbidden_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "move the shared helpers into tests/support/: " + repr(offenders)


def test_support_modules_are_not_collected_as_tests() -> None:
    support = TESTS / "support"
    assert (support / "__init__.py").is_file()
    assert not [p.name for p in support.glob("*.py") if p.name.startswith("test_")]
    assert not (support / "conftest.py").exists()
