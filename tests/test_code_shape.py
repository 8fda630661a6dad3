"""Modules stay small and functions short, or say why in one line.

Every module under ``src/`` has at most :data:`MAX_MODULE_LINES` lines and every function
(methods and nested functions included, from ``def`` to its last line) at most
:data:`MAX_FUNCTION_LINES`, unless the module's docstring carries a line

    Shape: <what>: <one-line reason>

where ``<what>`` is ``module`` for the module's length, or the function's qualified name
(``Class.method``, ``outer.inner``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
_REASON = re.compile(r"^\s*Shape: (?P<what>[\w.]+): (?P<reason>\S.*)$", re.MULTILINE)


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                found.append((name, child))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def offenders(path: Path) -> list[tuple[str, int]]:
    """``(what, lines)`` for the module and each function past its limit."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    found: list[tuple[str, int]] = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(("module", lines))
    for name, node in _functions(tree):
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            found.append((name, length))
    return found


def reasons(path: Path) -> dict[str, str]:
    """The ``Shape: <what>: <reason>`` lines of the module's docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return {m["what"]: m["reason"] for m in _REASON.finditer(doc)}


def test_no_module_or_function_is_too_long_without_a_reason() -> None:
    unexplained = []
    for path in _modules():
        rel = path.relative_to(SRC).as_posix()
        explained = reasons(path)
        for what, lines in offenders(path):
            if what in explained:
                continue
            limit = MAX_MODULE_LINES if what == "module" else MAX_FUNCTION_LINES
            unexplained.append(f"{rel}: {what} has {lines} lines (limit {limit})")
    assert not unexplained, (
        "split these, or add 'Shape: <what>: <reason>' to the module docstring:\n"
        + "\n".join(unexplained)
    )


def test_reasons_name_a_real_offender() -> None:
    """A ``Shape:`` line that excuses nothing is stale."""
    stale = []
    for path in _modules():
        names = {w for w, _ in offenders(path)}
        stale += [f"{path.relative_to(SRC)}: {w}" for w in reasons(path) if w not in names]
    assert not stale, "remove these Shape: lines: " + ", ".join(stale)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n", []),
        ("def f():\n" + "    x = 1\n" * 80, [("f", 81)]),
        ("class C:\n    def m(self):\n" + "        x = 1\n" * 90, [("C.m", 91)]),
        ("y = 0\n" * 601, [("module", 601)]),
    ],
)
def test_offenders_are_found(tmp_path: Path, source: str, expected: list[tuple[str, int]]) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    assert offenders(path) == expected


def test_a_docstring_line_is_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text('"""Doc.\n\nShape: module: a table of constants.\n"""\n')
    assert reasons(path) == {"module": "a table of constants."}


# The kernel orchestrates; what plugins implement or share lives in lockgate.contracts,
# lockgate.operations and the plugins (docs/architecture.md, "Where things are").
# Raised from 2,600 to 3,000 when plugins came to be imported on demand (declarations,
# importing a plugin when its hook, name or settings are first needed): the plugin
# manager's own job, which cannot live in a plugin.
MAX_KERNEL_LINES = 3_000


def test_the_kernel_stays_thin() -> None:
    kernel = SRC / "lockgate" / "core"
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in kernel.rglob("*.py"))
    assert lines <= MAX_KERNEL_LINES, (
        f"lockgate/core has {lines} lines (at most {MAX_KERNEL_LINES}): move what is not "
        "orchestration to the contracts, an operation or a plugin"
    )
