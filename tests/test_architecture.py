"""The package's shape: no import circle, and imports only go the way the layers allow.

The graph is read from the source with ``ast``: every ``import`` and ``from … import``
anywhere in a module (at module level, under ``if TYPE_CHECKING:`` and inside functions),
so a circle cannot hide behind a function-level import. The layers (docs/architecture.md):
``cli`` → ``operations`` → the kernel (``core``) → the role contracts
(``contracts``) ← ``builtin_plugins`` (through ``lockgate.plugin``); nothing imports
upwards.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lockgate"

# Imports allowed to break the rules, each with why. They are left out of the graph the
# rules are checked on; a test fails when one no longer exists, so the list only shrinks.
EXEMPT: dict[tuple[str, str], str] = {}


def exempt(module: str, target: str) -> bool:
    return any(module == m and (target == t or target.startswith(t + ".")) for m, t in EXEMPT)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every lockgate module ``name`` imports, with the line, wherever the import is."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from lockgate.core import failpoints`` imports a module
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}", node.lineno
                elif base in known:
                    yield base, node.lineno


def graph() -> dict[str, dict[str, int]]:
    found = modules()
    known = set(found)
    edges: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        targets = edges.setdefault(name, {})
        for target, line in imports_of(name, path, known):
            if target != name and not exempt(name, target):
                targets.setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def test_the_import_graph_is_read_from_every_kind_of_import(tmp_path: Path) -> None:
    """The reader sees module-level, TYPE_CHECKING and function-level imports alike
    (else the other tests could pass on a graph with edges missing)."""
    edges = graph()
    # module level
    assert "lockgate.core.config" in edges["lockgate.core.project"]
    # under TYPE_CHECKING
    assert "lockgate.core.project" in edges["lockgate.cli.context"]
    # inside a function
    assert "lockgate.operations.promote" in edges["lockgate.cli.promote_cmd"]
    # ``from package import module`` (and a relative one), on a module written for it
    sample = tmp_path / "sample.py"
    sample.write_text("from lockgate.core import failpoints\nfrom . import hooks\n")
    known = set(modules())
    assert [t for t, _ in imports_of("lockgate.core.sample", sample, known)] == [
        "lockgate.core.failpoints",
        "lockgate.core.hooks",
    ]


def test_cycles_are_found_when_there_are_some() -> None:
    edges = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_no_import_circle_in_lockgate() -> None:
    edges = graph()
    found = cycles(edges)
    described = [
        " ; ".join(
            f"{m} -> {t} (line {line})"
            for m in members
            for t, line in edges[m].items()
            if t in members
        )
        for members in found
    ]
    assert not found, "import circles:\n" + "\n".join(described)


RULES = [
    # (layer, layers it must never import, why)
    (
        "lockgate.contracts",
        (
            "lockgate.core",
            "lockgate.operations",
            "lockgate.cli",
            "lockgate.builtin_plugins",
            "lockgate.testing",
            "lockgate.plugin",
            "lockgate.integration",
            "lockgate.server",
        ),
        "contracts",
    ),
    (
        "lockgate.schema",
        (
            "lockgate.core",
            "lockgate.operations",
            "lockgate.cli",
            "lockgate.builtin_plugins",
            "lockgate.testing",
            "lockgate.plugin",
            "lockgate.integration",
            "lockgate.server",
        ),
        "schema",
    ),
    (
        "lockgate.core",
        ("lockgate.operations", "lockgate.cli", "lockgate.builtin_plugins", "lockgate.server"),
        "kernel",
    ),
    (
        "lockgate.operations",
        ("lockgate.cli", "lockgate.builtin_plugins", "lockgate.server"),
        "operations",
    ),
    (
        "lockgate.builtin_plugins",
        ("lockgate.operations", "lockgate.cli", "lockgate.server"),
        "plugins",
    ),
    # the server renders the operations as the command line does; neither imports the other
    ("lockgate.server", ("lockgate.cli", "lockgate.builtin_plugins"), "server"),
]


@pytest.mark.parametrize(("layer", "forbidden", "what"), RULES, ids=[r[2] for r in RULES])
def test_imports_follow_the_dependency_rule(
    layer: str, forbidden: tuple[str, ...], what: str
) -> None:
    edges = graph()
    wrong = [
        f"{module} imports {target} (line {line})"
        for module, targets in sorted(edges.items())
        if in_layer(module, layer)
        for target, line in targets.items()
        if any(in_layer(target, f) for f in forbidden) and not exempt(module, target)
    ]
    assert not wrong, f"{what} importing upwards:\n" + "\n".join(wrong)


def test_every_exemption_is_still_needed() -> None:
    found = modules()
    known = set(found)
    for module, target in EXEMPT:
        imported = {t for t, _ in imports_of(module, found[module], known)}
        assert any(t == target or t.startswith(target + ".") for t in imported), (
            f"{module} no longer imports {target}: remove it from EXEMPT"
        )


@pytest.mark.parametrize("layer", ["lockgate.contracts", "lockgate.core", "lockgate.operations"])
def test_kernel_and_operations_import_lockgate_modules_at_module_level(layer: str) -> None:
    """A function-level import of another lockgate module is how a circle hides; the
    kernel and the operations have none (the CLI and the Python API import each command's
    modules when it runs, for start-up time: see docs/architecture.md)."""
    hidden = []
    for name, path in modules().items():
        if not in_layer(name, layer):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(ast.Module(body=fn.body, type_ignores=[])):
                if isinstance(node, ast.ImportFrom):
                    targets = [node.module or ""] if not node.level else ["(relative)"]
                elif isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                else:
                    continue
                hidden += [
                    f"{name}:{node.lineno} imports {t} in {fn.name}()"
                    for t in targets
                    if t == "(relative)" or in_layer(t, "lockgate")
                ]
    assert not hidden, "\n".join(hidden)
