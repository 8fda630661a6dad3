"""Validator ``workflows``: every YAML file of a ``workflows`` component is a sound workflow.

A workflow file is a mapping with ``name``, ``version`` and a non-empty list of ``tasks``;
each task has a unique ``name`` and an ``action``, and may list the tasks it ``needs``.
An action is defined when the workflow's own ``actions:`` section defines it, when it is in
``plugins.workflows.actions``, or when it names a component the project knows (a step
builder, a script). Every issue names the workflow as ``<component>.<file stem>`` and
points at the file and line.

Settings (``plugins.workflows:``)::

    types: [workflows]   # component types holding workflows
    actions: []          # actions defined outside any component (e.g. a runner's builtins)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, cast

import attrs

from lockgate.builtin_plugins.validators._files import MISSING, DigestMemo, located, read_text
from lockgate.plugin import (
    MAX_YAML_BYTES,
    SPEC_FILE,
    Issue,
    LockgateError,
    Severity,
    ValidationSubject,
    ValidatorInfo,
    YamlDocument,
    hookimpl,
    load_yaml_text,
    record,
)


@record
class WorkflowsSettings:
    """``plugins.workflows:`` in lockgate.yaml."""

    types: list[str] = attrs.field(factory=lambda: ["workflows"])
    actions: list[str] = attrs.field(factory=list)


@hookimpl
def register_settings() -> type:
    return WorkflowsSettings


@hookimpl
def describe_validator(settings: WorkflowsSettings) -> ValidatorInfo:
    # Not cacheable: an action may name a component, which depends on the project.
    return ValidatorInfo(types=tuple(settings.types), cache=False)


@hookimpl
def on_validate(subject: ValidationSubject, settings: WorkflowsSettings) -> list[Issue]:
    builtin = frozenset(settings.actions)

    def known(actions: set[str]) -> frozenset[str]:
        # Only the actions named: the project may hold a hundred thousand components.
        asked = sorted(a for a in actions if a not in builtin)
        return builtin | subject.context.known(*asked) if asked else builtin

    issues: list[Issue] = []
    for path in subject.files:
        if not path.lower().endswith((".yaml", ".yml")) or path == SPEC_FILE:
            continue
        ref = f"{subject.component_id}.{PurePosixPath(path).stem}"
        issues.extend(_check_file(subject, path, ref, known))
    return issues


def _check_file(
    subject: ValidationSubject,
    path: str,
    ref: str,
    known: Callable[[set[str]], frozenset[str]],
) -> list[Issue]:
    def issue(message: str, line: int | None, code: str = "workflow-invalid") -> Issue:
        return Issue(
            Severity.ERROR,
            code,
            f"workflow {ref}: {message}",
            path=path,
            line=line,
            hint=f"fix the workflows in {subject.component}, then restage it",
        )

    parsed = _parse(subject, path)
    if not isinstance(parsed, YamlDocument):
        line, message = parsed
        return [issue(message, line)]
    doc = parsed
    data = doc.data
    if not isinstance(data, dict):
        return [issue("expected a mapping with name, version and tasks", 1)]
    issues = []
    for key in ("name", "version", "tasks"):
        if data.get(key) in (None, "", []):
            issues.append(issue(f"missing field '{key}'", 1, "workflow-missing-field"))
    tasks = data.get("tasks")
    if tasks is None:
        return issues
    if not isinstance(tasks, list):
        return [*issues, issue("'tasks' must be a list of tasks", _line(doc, "tasks"))]
    defined = _defined(data.get("actions") or {}, tasks, known)
    names: dict[str, int] = {}
    for index, task in enumerate(tasks):
        where = ("tasks", str(index))
        if not isinstance(task, dict):
            issues.append(issue(f"task {index + 1} must be a mapping", _line(doc, *where)))
            continue
        name = task.get("name")
        if not name:
            issues.append(
                issue(
                    f"task {index + 1} has no 'name'", _line(doc, *where), "workflow-missing-field"
                )
            )
        elif name in names:
            issues.append(
                issue(
                    f"duplicate task name '{name}' (first at line {names[name]})",
                    _line(doc, *where, "name"),
                    "workflow-duplicate-task",
                )
            )
        else:
            names[str(name)] = _line(doc, *where, "name") or 0
        action = task.get("action")
        if not action:
            issues.append(
                issue(
                    f"task '{name or index + 1}' has no 'action'",
                    _line(doc, *where),
                    "workflow-missing-field",
                )
            )
        elif not isinstance(action, str) or action not in defined:
            issues.append(
                issue(
                    f"task '{name or index + 1}' refers to undefined action '{action}'",
                    _line(doc, *where, "action"),
                    "workflow-undefined-action",
                )
            )
    issues.extend(_unknown_needs(doc, tasks, names, issue))
    return issues


def _defined(
    local_actions: object, tasks: list[Any], known: Callable[[set[str]], frozenset[str]]
) -> set[str]:
    """The actions the tasks may name: the file's own ``actions:`` and those of the
    actions the tasks name that the project knows (only those are asked)."""
    local = set()
    if isinstance(local_actions, dict | list):
        local = {a for a in local_actions if isinstance(a, str)}
    named = {a for t in tasks if isinstance(t, dict) and isinstance(a := t.get("action"), str)}
    return local | known(named - local)


def _unknown_needs(
    doc: YamlDocument, tasks: list[Any], names: dict[str, int], issue: Callable[..., Issue]
) -> list[Issue]:
    """A task's ``needs`` must name tasks of the same file."""
    issues = []
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        needs: Any = task.get("needs") or []
        for offset, need in enumerate(needs if isinstance(needs, list) else [needs]):
            if need not in names:
                issues.append(
                    issue(
                        f"task '{task.get('name')}' needs unknown task '{need}'",
                        _line(doc, "tasks", str(index), "needs", str(offset))
                        or _line(doc, "tasks", str(index), "needs"),
                        "workflow-unknown-task",
                    )
                )
    return issues


_MEMO = DigestMemo()


def _parse(subject: ValidationSubject, path: str) -> YamlDocument | tuple[int | None, str]:
    """The parsed file, or (line, problem); remembered by content digest."""
    digest = subject.digests.get(path)
    if digest:
        known = _MEMO.get((digest, path))
        if known is not MISSING:
            return cast("YamlDocument | tuple[int | None, str]", known)
    text = read_text(subject, path, MAX_YAML_BYTES)
    result: YamlDocument | tuple[int | None, str]
    if text is None:
        result = (None, f"not UTF-8 text of at most {MAX_YAML_BYTES} bytes")
    else:
        try:
            result = load_yaml_text(text, Path(path))
        except LockgateError as exc:
            result = located(exc.message)
    if digest:
        _MEMO.put((digest, path), result)
    return result


def _line(doc: YamlDocument, *key_path: str) -> int | None:
    return doc.lines.get(tuple(key_path))
