"""Validator ``dependencies``: every ``depends_on`` resolves, and there is no cycle.

A dependency resolves when the component id is current in the stage being entered, or is
validated (and so promoted) together with the subject. A cycle is named in full,
``a → b → a``, as an integration issue involving every component on it.

Settings (``plugins.dependencies:``)::

    missing: error    # or warning: how much an unresolved dependency matters
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from lockgate.plugin import Issue, Severity, ValidationSubject, ValidatorInfo, hookimpl, record


@record
class DependenciesSettings:
    """``plugins.dependencies:`` in lockgate.yaml."""

    missing: Literal["error", "warning"] = "error"


@hookimpl
def register_settings() -> type:
    return DependenciesSettings


@hookimpl
def describe_validator() -> ValidatorInfo:
    return ValidatorInfo(cache=False)  # depends on the stage's contents and the batch


def find_cycle(graph: Mapping[str, tuple[str, ...]], start: str) -> list[str] | None:
    """A cycle through ``start`` as ``[start, ..., start]``, or None."""
    path = [start]
    on_path = {start}
    seen: set[str] = set()

    def visit(node: str) -> list[str] | None:
        for dep in graph.get(node, ()):
            if dep == start:
                return [*path, start]
            if dep in on_path or dep in seen:
                continue
            path.append(dep)
            on_path.add(dep)
            found = visit(dep)
            if found:
                return found
            on_path.discard(path.pop())
            seen.add(dep)
        return None

    return visit(start)


@hookimpl
def on_validate(subject: ValidationSubject, settings: DependenciesSettings) -> list[Issue]:
    context = subject.context
    together = {peer.component_id: peer.component for peer in context.batch}
    issues = []
    wanted = [dep.split(":", 1)[-1] for dep in subject.metadata.get("depends_on", ())]
    live = context.live(*(d for d in wanted if d not in together))  # only these ids are read
    for dep_id in wanted:
        if dep_id in live or dep_id in together:
            continue
        issues.append(
            Issue(
                Severity(settings.missing),
                "dependency-missing",
                f"depends on '{dep_id}', which is neither current in {subject.stage} nor "
                "validated together with it",
                path="component.yaml",
                hint=f"promote '{dep_id}' to {subject.stage} first, or validate and promote it "
                f"together with {subject.component}",
            )
        )
    cycle = find_cycle(context.graph, subject.component_id)
    if cycle is not None:
        members = sorted({together.get(node, node) for node in cycle})
        issues.append(
            Issue(
                Severity.ERROR,
                "dependency-cycle",
                f"dependency cycle: {' → '.join(cycle)}",
                components=members,
                hint="break the cycle: remove one depends_on entry on it",
            )
        )
    return issues
