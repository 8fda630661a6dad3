"""Validator ``secrets``: private keys, common token formats and ``.env`` files.

A finding names the file, the line and the kind of secret, never the secret itself (not
even part of it), so a report can be pasted anywhere. A line that carries the marker
``lockgate: allow-secret`` is skipped (for test fixtures and documentation).

Settings (``plugins.secrets:``)::

    allow: ["tests/fixtures/*"]   # glob patterns of paths not to scan
    env_files: true               # report .env files (.env.example/.sample/.template are fine)
    patterns: {}                  # extra kinds: name -> regular expression
    max_bytes: 2097152            # larger files are not scanned
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from typing import cast

import attrs

from lockgate.builtin_plugins.validators._files import MISSING, DigestMemo, line_at, read_text
from lockgate.plugin import Issue, Severity, ValidationSubject, ValidatorInfo, hookimpl, record

ALLOW_MARKER = "lockgate: allow-secret"

PATTERNS: dict[str, str] = {
    "private key": (
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"
    ),
    "AWS access key id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret access key": (r"(?i:aws_?secret_?access_?key)\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}\b"),
    "GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b",
    "GitLab token": r"\bglpat-[A-Za-z0-9_-]{20,}\b",
    "Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
    "Google API key": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "Stripe secret key": r"\b(?:sk|rk)_live_[0-9A-Za-z]{24,}\b",
    "JSON web token": r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    "password in a URL": r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:[^\s@/'\"]{3,}@[^\s/'\"]+",
}
# Literal text every match of a builtin kind contains: a file without any of them is not
# searched for that kind (a substring test is far cheaper than the regular expression).
ANCHORS: dict[str, tuple[str, ...]] = {
    "private key": ("-----BEGIN ",),
    "AWS access key id": ("AKIA", "ASIA"),
    "AWS secret access key": ("aws", "AWS", "Aws"),
    "GitHub token": ("gh", "github_pat_"),
    "GitLab token": ("glpat-",),
    "Slack token": ("xox",),
    "Google API key": ("AIza",),
    "Stripe secret key": ("_live_",),
    "JSON web token": ("eyJ",),
    "password in a URL": ("://",),
}
_ENV_SAFE_SUFFIXES = (".example", ".sample", ".template", ".dist")


@record
class SecretsSettings:
    """``plugins.secrets:`` in lockgate.yaml."""

    allow: list[str] = attrs.field(factory=list)
    env_files: bool = True
    patterns: dict[str, str] = attrs.field(factory=dict)
    max_bytes: int = attrs.field(default=2 * 1024 * 1024, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        for name, pattern in self.patterns.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern '{name}' is not a regular expression: {exc}") from None


@hookimpl
def register_settings() -> type:
    return SecretsSettings


@hookimpl
def describe_validator() -> ValidatorInfo:
    return ValidatorInfo(cache=True, per_stage=False)


Scanner = tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...]


@lru_cache(maxsize=8)
def _scanner(extra: tuple[tuple[str, str], ...]) -> Scanner:
    """(kind, expression, anchors) for the builtin kinds and the configured ones."""
    kinds = {**PATTERNS, **dict(extra)}
    return tuple(
        (kind, re.compile(pattern), ANCHORS.get(kind, ()) if kind in PATTERNS else ())
        for kind, pattern in kinds.items()
    )


def is_env_file(path: str) -> bool:
    """True for ``.env`` and ``.env.<anything>`` except the documented templates."""
    name = path.rsplit("/", 1)[-1]
    return (name == ".env" or name.startswith(".env.")) and not name.endswith(_ENV_SAFE_SUFFIXES)


@hookimpl
def on_validate(subject: ValidationSubject, settings: SecretsSettings) -> list[Issue]:
    extra = tuple(sorted(settings.patterns.items()))
    scanner = _scanner(extra)
    issues = []
    for path in subject.files:
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in settings.allow):
            continue
        if settings.env_files and is_env_file(path):
            issues.append(
                Issue(
                    Severity.ERROR,
                    "secrets-env-file",
                    "environment files hold credentials and must not be promoted",
                    path=path,
                    hint="remove .env files from components (commit a .env.example instead) "
                    "and rotate what they held",
                )
            )
            continue
        digest = subject.digests.get(path)
        key = (digest, extra, settings.max_bytes)
        found = _MEMO.get(key) if digest else MISSING
        if found is MISSING:
            found = _scan(subject, path, settings.max_bytes, scanner)
            if digest:
                _MEMO.put(key, found)
        for kind, line in cast("list[tuple[str, int]]", found):
            issues.append(
                Issue(
                    Severity.ERROR,
                    "secrets-found",
                    f"possible {kind} (value not shown)",
                    path=path,
                    line=line,
                    hint="remove secrets from components, load them at run time, and rotate "
                    "any that were staged",
                )
            )
    return issues


_MEMO = DigestMemo()


def _scan(
    subject: ValidationSubject, path: str, max_bytes: int, scanner: Scanner
) -> list[tuple[str, int]]:
    """(kind, line) of every finding in one file, by line (never the matched text)."""
    text = read_text(subject, path, max_bytes)
    if text is None:
        return []
    found = []
    for kind, expression, anchors in scanner:
        if anchors and not any(anchor in text for anchor in anchors):
            continue
        for match in expression.finditer(text):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            if ALLOW_MARKER in text[start : end if end >= 0 else len(text)]:
                continue
            found.append((kind, line_at(text, match.start())))
    return sorted(found, key=lambda item: item[1])
