"""The code base stays `ruff check`, `ruff format` and `mypy --strict` clean (all three
configured in pyproject.toml), and its packages keep their layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# ruff's two checks, and mypy strict over the packages pyproject.toml lists.
TOOLS = [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]]


@pytest.mark.parametrize("command", TOOLS, ids=[" ".join(c[:2]) for c in TOOLS])
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Which of our packages each may import. common knows nothing of ours; channels and
# storage only it: a channel knows its provider, storage knows MongoDB, neither knows
# the gateway above them.
MAY_IMPORT: dict[str, set[str]] = {
    "common": set(),
    "channels": {"common"},
    "storage": {"common"},
    "gateway": {"channels", "common", "storage"},
    "handlers": {"channels", "common", "gateway", "storage"},
}
OURS = {"bot_gateway", "channels", "common", "gateway", "handlers", "storage"}


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_layers_import_only_what_is_below_them(package: str) -> None:
    found = set()
    for path in sorted((ROOT / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found |= {(n.split(".")[0], path.name) for n in names if n.split(".")[0] in OURS}
    outside = sorted(
        (top, where) for top, where in found if top not in {package, *MAY_IMPORT[package]}
    )
    assert outside == [], f"{package} imports {outside}"


def _module_imports() -> dict[str, set[str]]:
    """Each of our modules (``gateway.lane``), and ours it imports, wherever the
    import stands (inside a function, or for type checking only, counts too)."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): path
        for package in OURS
        for path in (ROOT / package).glob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_two_modules_import_each_other_however_far_round() -> None:
    graph = _module_imports()
    cycles = []
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], f"import cycles: {cycles}"


def test_no_caller_above_storage_chooses_how_a_page_is_read() -> None:
    graph = _module_imports()
    planners = sorted(
        (module, "storage.pages")
        for module, imported in graph.items()
        if module.split(".")[0] in ("gateway", "handlers") and "storage.pages" in imported
    )
    assert planners == [], "gateway and handlers ask for pages through storage.lists"


MAX_PARAMETERS, MAX_LINES = 8, 60  # self and cls not counted


def test_no_function_takes_more_than_eight_parameters_or_sixty_lines() -> None:
    too_big = []
    for package in sorted(OURS):
        for path in sorted((ROOT / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                a = node.args
                named = [p for p in a.posonlyargs + a.args + a.kwonlyargs]
                count = len([p for p in named if p.arg not in ("self", "cls")])
                count += bool(a.vararg) + bool(a.kwarg)
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if count > MAX_PARAMETERS or lines > MAX_LINES:
                    too_big.append(f"{package}/{path.name}:{node.name} ({count}, {lines} lines)")
    assert too_big == []
