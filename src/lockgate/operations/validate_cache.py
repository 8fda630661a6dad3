"""The validation result cache: the issues of cacheable validators, per revision.

A validator that declares ``cache=True`` has its issues kept per (revision, stage,
validator, version, settings) under ``.lockgate/cache/validation/``, one small JSON file
per revision, so re-validating an unchanged revision does not call it again. A damaged
entry is a miss, and a cache that cannot be written only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.contracts.models import Issue, Severity

if TYPE_CHECKING:
    from lockgate.core.hooks import Validator

__all__ = ["CACHE_FORMAT", "ValidationCache", "cache_key"]

CACHE_FORMAT = 1


def cache_key(validator: Validator, stage: str) -> str:
    settings = validator.settings
    if attrs.has(type(settings)):
        settings = attrs.asdict(settings)
    payload = json.dumps(
        [CACHE_FORMAT, validator.plugin, validator.version, settings, stage],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class ValidationCache:
    """Cached issues per revision: one small JSON file per revision."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._dirty: set[str] = set()

    def _path(self, revision: str) -> Path:
        return self.root / revision[:2] / f"{revision}.json"

    def _entries(self, revision: str) -> dict[str, list[dict[str, Any]]]:
        if revision not in self._loaded:
            try:
                data = json.loads(self._path(revision).read_bytes())
                self._loaded[revision] = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._loaded[revision] = {}
        return self._loaded[revision]

    def get(self, revision: str, key: str) -> list[Issue] | None:
        raw = self._entries(revision).get(key)
        if raw is None:
            return None
        try:
            return [_issue_from(item) for item in raw]
        except (TypeError, ValueError, KeyError):
            return None  # a damaged entry is a miss, never an error

    def put(self, revision: str, key: str, issues: Iterable[Issue]) -> None:
        self._entries(revision)[key] = [
            attrs.asdict(i) | {"severity": i.severity.value} for i in issues
        ]
        self._dirty.add(revision)

    def flush(self) -> None:
        for revision in self._dirty:
            path = self._path(revision)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(self._loaded[revision]), encoding="utf-8")
                tmp.replace(path)
            except OSError:
                pass  # a cache that cannot be written only costs time
        self._dirty.clear()


def _issue_from(data: Mapping[str, Any]) -> Issue:
    return Issue(
        severity=Severity(data["severity"]),
        code=str(data["code"]),
        message=str(data["message"]),
        path=data.get("path"),
        line=data.get("line"),
        components=tuple(data.get("components") or ()),
        hint=data.get("hint"),
    )
