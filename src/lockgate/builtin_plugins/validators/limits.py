"""Validator ``limits``: file size, component size, file count and forbidden file types.

The ``staging_max_*`` settings are the hard caps staging enforces before it stores
anything (they were the kernel's ``staging.max_*``, still read as deprecated): a cap is
what the store may be asked to hold, refused with exit 2 and never forced past, while
the limits above are the gate's policy, reported as issues that ``--force`` can pass.
Both live here, beside each other, so one section says what a component may be.
Disabling this plugin lifts both.

Settings (``plugins.limits:``)::

    max_file_size: 104857600        # bytes per file (100 MiB)
    max_component_size: 1073741824  # bytes per component (1 GiB)
    max_files: 10000
    staging_max_file_size: 268435456        # staging refuses past these (256 MiB)
    staging_max_component_size: 4294967296  # (4 GiB)
    staging_max_files: 200000
    forbidden: ["*.exe", "*.dll", ...]   # glob patterns, matched against the file name
                                         # and its path inside the component
"""

from __future__ import annotations

import fnmatch
from typing import Any

import attrs

from lockgate.plugin import Issue, Severity, ValidationSubject, ValidatorInfo, hookimpl, record

MiB = 1024 * 1024
DEFAULT_FORBIDDEN = [
    "*.exe",
    "*.dll",
    "*.so",
    "*.dylib",
    "*.o",
    "*.a",
    "*.class",
    "*.jar",
    "*.pyc",
    "*.pyo",
]


def _within(low: int, high: int) -> Any:
    return [attrs.validators.ge(low), attrs.validators.le(high)]


@record
class LimitsSettings:
    """``plugins.limits:`` in lockgate.yaml."""

    max_file_size: int = attrs.field(default=100 * MiB, validator=_within(0, 2**62))
    max_component_size: int = attrs.field(default=1024 * MiB, validator=_within(0, 2**62))
    max_files: int = attrs.field(default=10_000, validator=_within(0, 2**40))
    staging_max_file_size: int = attrs.field(default=256 * MiB, validator=_within(1, 2**62))
    staging_max_component_size: int = attrs.field(default=4096 * MiB, validator=_within(1, 2**62))
    staging_max_files: int = attrs.field(default=200_000, validator=_within(1, 2**40))
    forbidden: list[str] = attrs.field(factory=lambda: list(DEFAULT_FORBIDDEN))


@hookimpl
def register_settings() -> type:
    return LimitsSettings


@hookimpl
def describe_validator() -> ValidatorInfo:
    return ValidatorInfo(cache=True, per_stage=False)


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB"


@hookimpl
def on_validate(subject: ValidationSubject, settings: LimitsSettings) -> list[Issue]:
    issues = []
    total = 0
    for path in subject.files:
        size = subject.sizes.get(path, 0)
        total += size
        if size > settings.max_file_size:
            issues.append(
                Issue(
                    Severity.ERROR,
                    "limits-file-size",
                    f"{_mib(size)} is more than plugins.limits.max_file_size "
                    f"({_mib(settings.max_file_size)})",
                    path=path,
                    hint="keep large data out of components "
                    "(or raise plugins.limits.max_file_size)",
                )
            )
        name = path.rsplit("/", 1)[-1]
        for pattern in settings.forbidden:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(path, pattern):
                issues.append(
                    Issue(
                        Severity.ERROR,
                        "limits-forbidden-type",
                        f"files matching '{pattern}' are not allowed (plugins.limits.forbidden)",
                        path=path,
                        hint="remove build artefacts and binaries from the component",
                    )
                )
                break
    if total > settings.max_component_size:
        issues.append(
            Issue(
                Severity.ERROR,
                "limits-component-size",
                f"{subject.component} holds {_mib(total)}, more than "
                f"plugins.limits.max_component_size ({_mib(settings.max_component_size)})",
            )
        )
    if len(subject.files) > settings.max_files:
        issues.append(
            Issue(
                Severity.ERROR,
                "limits-file-count",
                f"{subject.component} has {len(subject.files)} files, more than "
                f"plugins.limits.max_files ({settings.max_files})",
            )
        )
    return issues
