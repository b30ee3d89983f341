"""Fitness checks of the Rust sources' shape (docs/ARCHITECTURE.md, "Shape rules").

They read the source tree, so they run wherever the repository is checked out; a
change that breaks a rule fails here with the offending file or function named.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRATES = ROOT / "crates"
BINDING = CRATES / "leasepool-python" / "src"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 65

pytestmark = pytest.mark.skipif(not CRATES.is_dir(), reason="needs the source tree")

_FN = re.compile(r"^(\s*)(?:pub(?:\([a-z]+\))? )?(?:async )?fn (\w+)")


def _rust_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.rs"))


def _function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function with a body, by indentation."""
    lines = path.read_text().splitlines()
    found = []
    for start, line in enumerate(lines):
        match = _FN.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        open_line = start
        while open_line < len(lines) and not lines[open_line].rstrip().endswith(("{", "{}", ";")):
            open_line += 1
        if open_line >= len(lines) or not lines[open_line].rstrip().endswith("{"):
            continue  # a declaration, or an empty body on one line
        end = open_line + 1
        closing = " " * indent + "}"
        while end < len(lines) and not (
            lines[end].startswith(closing) and len(lines[end]) - len(lines[end].lstrip()) == indent
        ):
            end += 1
        found.append((match.group(2), start + 1, end - start + 1))
    return found


def test_no_rust_file_is_over_the_limit() -> None:
    long_files = {
        str(path.relative_to(ROOT)): n
        for path in _rust_files(CRATES)
        if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long_files == {}


def test_no_binding_function_is_over_the_limit() -> None:
    long_functions = [
        f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
        for path in _rust_files(BINDING)
        for name, line, length in _function_lengths(path)
        if length > MAX_FUNCTION_LINES
    ]
    assert long_functions == []


def _binding_module_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in _rust_files(BINDING):
        module = path.relative_to(BINDING).parts[0].removesuffix(".rs")
        if module == "lib":
            continue
        code = re.sub(r"//[^\n]*", "", path.read_text())
        for target in re.findall(r"crate::(\w+)", code):
            if target != module:
                edges[module].add(target)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph, if it has one (depth-first search)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_binding_modules_have_no_import_cycle() -> None:
    edges = _binding_module_graph()
    assert "manager" in edges, "the scan found the binding's modules"
    assert _cycle(edges) is None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
