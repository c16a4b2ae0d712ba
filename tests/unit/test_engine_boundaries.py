"""engine/ is the core: it imports no Flask and nothing from web/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def test_engine_sources_import_no_flask_or_web() -> None:
    offenders = []
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in ("flask", "web", "werkzeug")
            ]
    assert offenders == []


def test_importing_every_engine_module_loads_no_flask() -> None:
    modules = sorted(
        ".".join(p.relative_to(ENGINE.parent).with_suffix("").parts)
        for p in ENGINE.rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + (
            "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'web', 'werkzeug')]\nprint(bad)\n"
            "sys.exit(1 if bad else 0)\n"
        )
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ENGINE.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- layering: the packages of engine/ import each other without circles -------------------

# Table declarations (``engine/<package>/models.py``) are the schema every layer may read: a
# foreign key or a join names another package's table without depending on its services.
# Top-level modules (db, errors, settings, models) sit below every package.


def _package_graph() -> dict[str, set[str]]:
    packages = {p.name for p in ENGINE.iterdir() if (p / "__init__.py").is_file()}
    graph: dict[str, set[str]] = {name: set() for name in packages}
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE).parts
        if len(parts) < 2:
            continue  # a top-level module
        owner = parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
                if node.module == "engine":
                    targets = [f"engine.{a.name}" for a in node.names]
            for target in targets:
                bits = target.split(".")
                if bits[0] != "engine" or len(bits) < 2 or bits[1] not in packages:
                    continue
                if len(bits) >= 3 and bits[2] == "models":
                    continue  # the schema layer
                if bits[1] != owner:
                    graph[owner].add(bits[1])
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_engine_packages_import_each_other_without_circles() -> None:
    assert _cycles(_package_graph()) == []


def test_the_runtime_leaves_certificates_and_files_to_the_completion_effects() -> None:
    graph = _package_graph()
    assert not {"certificates", "files", "completion"} & graph["runtime"]
    assert {"runtime", "certificates"} <= graph["completion"]


def test_the_credentialing_vocabulary_reads_tables_only() -> None:
    # So the runtime and the deploy check (below the runtime) may both ask it.
    assert _package_graph()["credentialing"] == set()


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_only_the_workflow_package_imports_spiffworkflow() -> None:
    offenders = []
    for path in ENGINE.rglob("*.py"):
        if path.relative_to(ENGINE).parts[0] == "workflow":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ENGINE)}: {n}" for n in names if n.startswith("SpiffWorkflow")
            ]
    assert offenders == []


def test_the_top_of_engine_holds_only_packages_and_the_base_modules() -> None:
    loose = sorted(p.name for p in ENGINE.glob("*.py") if p.name != "__init__.py")
    assert loose == ["db.py", "errors.py", "models.py", "settings.py"]
