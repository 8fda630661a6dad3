"""Validator ``syntax``: YAML, JSON, TOML and Python files parse; issues carry file:line.

Settings (``plugins.syntax:``)::

    languages: [yaml, json, toml, python]   # which kinds of file to check
    max_bytes: 5242880                      # larger files are skipped (with an info issue)
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import cast

import attrs

from lockgate.builtin_plugins.validators._files import MISSING, DigestMemo
from lockgate.plugin import Issue, Severity, ValidationSubject, ValidatorInfo, hookimpl, record

LANGUAGES: dict[str, tuple[str, ...]] = {
    "yaml": (".yaml", ".yml"),
    "json": (".json",),
    "toml": (".toml",),
    "python": (".py",),
}
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _in(
    choices: tuple[str, ...],
) -> Callable[[object, attrs.Attribute[list[str]], list[str]], None]:
    def check(_: object, attribute: attrs.Attribute[list[str]], value: list[str]) -> None:
        for item in value:
            if item not in choices:
                raise ValueError(f"unknown language '{item}'; choose from {', '.join(choices)}")

    return check


@record
class SyntaxSettings:
    """``plugins.syntax:`` in lockgate.yaml."""

    languages: list[str] = attrs.field(
        factory=lambda: list(LANGUAGES), validator=_in(tuple(LANGUAGES))
    )
    max_bytes: int = attrs.field(default=5 * 1024 * 1024, validator=attrs.validators.ge(0))


@hookimpl
def register_settings() -> type:
    return SyntaxSettings


@hookimpl
def describe_validator() -> ValidatorInfo:
    return ValidatorInfo(cache=True, per_stage=False)


@hookimpl
def on_validate(subject: ValidationSubject, settings: SyntaxSettings) -> list[Issue]:
    checkers = {
        suffix: (language, CHECKS[language])
        for language in settings.languages
        for suffix in LANGUAGES[language]
    }
    issues = []
    for path in subject.files:
        dot = path.rfind(".")
        found = checkers.get(path[dot:].lower()) if dot > path.rfind("/") else None
        if found is None:
            continue
        language, check = found
        digest = subject.digests.get(path)
        remembered = _MEMO.get((digest, language)) if digest else MISSING
        if remembered is not MISSING:
            known = cast("Problem", remembered)
            if known is not None:
                issues.append(_issue(subject, path, language, known))
            continue
        if subject.sizes.get(path, 0) > settings.max_bytes:
            issues.append(
                Issue(
                    Severity.INFO,
                    "syntax-skipped",
                    f"not checked: larger than plugins.syntax.max_bytes ({settings.max_bytes})",
                    path=path,
                )
            )
            continue
        try:
            raw = subject.read_bytes(path)
        except OSError as exc:
            issues.append(
                Issue(
                    Severity.ERROR, "syntax-unreadable", f"cannot read: {exc.strerror}", path=path
                )
            )
            continue
        problem = check(raw, path)
        if digest:
            _MEMO.put((digest, language), problem)
        if problem is not None:
            issues.append(_issue(subject, path, language, problem))
    return issues


_MEMO = DigestMemo()


def _issue(
    subject: ValidationSubject, path: str, language: str, problem: tuple[int | None, str]
) -> Issue:
    line, message = problem
    name = language.upper() if language != "python" else "Python"
    return Issue(
        Severity.ERROR,
        f"syntax-{language}",
        message,
        path=path,
        line=line,
        hint=f"fix the {name} syntax errors, then restage {subject.component}",
    )


Problem = tuple[int | None, str] | None


def _text(raw: bytes) -> tuple[str | None, Problem]:
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, (raw.count(b"\n", 0, exc.start) + 1, "not UTF-8 text")


def check_yaml(raw: bytes, path: str) -> Problem:
    import yaml

    text, problem = _text(raw)
    if text is None:
        return problem
    try:
        # compose, not construct: application tags (!Ref, !include) are not syntax errors.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 15x faster
        for _ in yaml.compose_all(text, Loader=loader):
            pass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return (mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        return None, f"invalid YAML: {exc}"
    return None


def check_json(raw: bytes, path: str) -> Problem:
    text, problem = _text(raw)
    if text is None:
        return problem
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})"
    return None


def check_toml(raw: bytes, path: str) -> Problem:
    text, problem = _text(raw)
    if text is None:
        return problem
    # Imported here: every command loads this plugin, few of them check TOML.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_LINE.search(message)
        return (int(match.group(1)) if match else None, f"invalid TOML: {message}")
    return None


def check_python(raw: bytes, path: str) -> Problem:
    import ast

    try:
        compile(raw, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        return exc.lineno, f"invalid Python: {exc.msg}"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"invalid Python: {exc}"
    return None


CHECKS: dict[str, Callable[[bytes, str], Problem]] = {
    "yaml": check_yaml,
    "json": check_json,
    "toml": check_toml,
    "python": check_python,
}
