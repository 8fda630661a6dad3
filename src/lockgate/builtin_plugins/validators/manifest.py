"""Validator ``manifest``: component.yaml is well-formed and has the fields its type needs.

Settings (``plugins.manifest:``)::

    require_file: false          # every component must have a component.yaml
    required:                    # fields required per component type ("*": every type)
      builders: [version, owners]
      "*": [description]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from lockgate.builtin_plugins.validators._files import located, read_text
from lockgate.plugin import (
    MAX_YAML_BYTES,
    SPEC_FILE,
    ComponentSpec,
    Issue,
    LockgateError,
    Severity,
    ValidationSubject,
    ValidatorInfo,
    hookimpl,
    load_yaml_text,
    record,
    structure,
)

FIELDS = tuple(a.name for a in attrs.fields(ComponentSpec))


@record
class ManifestSettings:
    """``plugins.manifest:`` in lockgate.yaml."""

    require_file: bool = False
    required: dict[str, list[str]] = attrs.field(factory=dict)


@hookimpl
def register_settings() -> type:
    return ManifestSettings


@hookimpl
def describe_validator() -> ValidatorInfo:
    return ValidatorInfo(cache=True, per_stage=False)


@hookimpl
def on_validate(subject: ValidationSubject, settings: ManifestSettings) -> list[Issue]:
    required = [*settings.required.get("*", ()), *settings.required.get(subject.component_type, ())]
    for name in required:
        if name not in FIELDS:
            return [
                Issue(
                    Severity.ERROR,
                    "manifest-bad-setting",
                    f"plugins.manifest.required names '{name}', which component.yaml cannot "
                    f"hold (fields: {', '.join(FIELDS)})",
                    hint="fix plugins.manifest.required in lockgate.yaml",
                )
            ]
    if SPEC_FILE not in subject.files:
        if settings.require_file or required:
            return [
                Issue(
                    Severity.ERROR,
                    "manifest-missing",
                    f"{subject.component} has no {SPEC_FILE}"
                    + (f" (required fields: {', '.join(required)})" if required else ""),
                    hint=f"add {SPEC_FILE} to {subject.component}",
                )
            ]
        return []
    text = read_text(subject, SPEC_FILE, MAX_YAML_BYTES)
    if text is None:
        return [
            Issue(
                Severity.ERROR,
                "manifest-invalid",
                f"{SPEC_FILE} is not UTF-8 text of at most {MAX_YAML_BYTES} bytes",
                path=SPEC_FILE,
            )
        ]
    try:
        doc = load_yaml_text(text, Path(SPEC_FILE))
        data: Any = doc.data if doc.data is not None else {}
        spec = structure(ComponentSpec, data, (), lambda p: doc.where(p))
    except LockgateError as exc:
        line, message = located(exc.message)
        return [
            Issue(
                Severity.ERROR,
                "manifest-invalid",
                message,
                path=SPEC_FILE,
                line=line,
                hint=f"fix {SPEC_FILE} of {subject.component}",
            )
        ]
    issues = []
    for name in required:
        if not getattr(spec, name):
            issues.append(
                Issue(
                    Severity.ERROR,
                    "manifest-missing-field",
                    f"{SPEC_FILE} has no '{name}', which {subject.component_type} components "
                    "must give (plugins.manifest.required)",
                    path=SPEC_FILE,
                    line=1,
                    hint=f"add '{name}' to {SPEC_FILE} of {subject.component}",
                )
            )
    for index, dep in enumerate(spec.depends_on):
        if dep.split(":")[-1] == subject.component_id:
            issues.append(
                Issue(
                    Severity.ERROR,
                    "manifest-self-dependency",
                    f"depends_on lists the component itself ('{dep}')",
                    path=SPEC_FILE,
                    line=doc.lines.get(("depends_on", str(index))),
                )
            )
    return issues
