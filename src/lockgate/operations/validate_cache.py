"""The validation result cache: the issues of cacheable validators, per revision.

A validator that declares ``cache=True`` has its issues kept per (revision, validator,
version, settings, and the stage unless it declares ``per_stage=False``), so
re-validating an unchanged revision does not call it again. Where they are kept:

* in the state store, when it offers the ``ValidationResults`` capability
  (:class:`StoreResults`): the record the gates already trust, so a promotion's gate
  reads them too and a revision's files are read once per validator, not at every rung;
* else in ``.lockgate/cache/validation/``, one small JSON file per revision
  (:class:`FileResults`), which only ``lockgate validate`` and the watcher read: a gate
  never takes a verdict from a file anyone who can write the project could edit.

A damaged entry is a miss, and a cache that cannot be written only costs time.

The version names the validator's code only when its distribution was installed from a
release: for an editable install, or a module that its distribution's directory does not
hold, the key also carries the module file's path, size and modification time
(:func:`code_fingerprint`), so an edit is seen without ``--no-cache``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.contracts.models import Issue, Severity

if TYPE_CHECKING:
    from lockgate.contracts.state import ValidationResults
    from lockgate.core.hooks import Validator

__all__ = [
    "CACHE_FORMAT",
    "FileResults",
    "StoreResults",
    "ValidationCache",
    "cache_key",
    "code_fingerprint",
]

CACHE_FORMAT = 1


def cache_key(validator: Validator, stage: str) -> str:
    settings = validator.settings
    if attrs.has(type(settings)):
        settings = attrs.asdict(settings)
    # A validator whose verdict is the same for every stage is keyed by content alone,
    # so a revision checked for one rung is not read again for the next.
    scope = stage if validator.info.per_stage else "*"
    parts = [CACHE_FORMAT, validator.plugin, validator.version, settings, scope]
    fingerprint = code_fingerprint(validator.module, validator.location)
    if fingerprint is not None:  # else the key is what it always was
        parts.append(fingerprint)
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@functools.cache
def code_fingerprint(module: str | None, location: str | None) -> str | None:
    """``path:size:mtime_ns`` of ``module``'s file when the distribution's version alone
    does not name the code (None when it does, or the file is not known).

    Once per process per module: the process runs the code it imported, so an edit made
    while it runs (under ``lockgate watch``) is not what it would validate with.
    """
    path = getattr(sys.modules.get(module or ""), "__file__", None)
    if not path or _version_names_code(path, location):
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _version_names_code(path: str, location: str | None) -> bool:
    """Whether the module file at ``path`` is the code of the distribution whose metadata
    directory is ``location``, as released: installed beside its metadata, not editable."""
    if location is None:
        return False  # no distribution known: nothing names the code
    metadata = Path(location)
    if metadata.suffix == ".egg-info" and "-" not in metadata.stem:
        return False  # NAME.egg-info: an in-place (development) install
    if not Path(path).is_relative_to(metadata.parent):
        return False  # not installed with its distribution (a path hook, PYTHONPATH)
    try:
        direct = json.loads((metadata / "direct_url.json").read_bytes())
    except (OSError, ValueError):
        return True  # no record of where it came from: an ordinary install
    info = direct.get("dir_info") if isinstance(direct, dict) else None
    return not (isinstance(info, dict) and info.get("editable") is True)


class ValidationCache:
    """Cached issues per revision, by key: loaded once per revision, written by
    :meth:`flush`. Where they are kept is the subclass's: :class:`FileResults` (small
    JSON files under ``.lockgate/``) or :class:`StoreResults` (the state store)."""

    #: Whether a promotion's gate may take a verdict from here.
    trusted = False

    def __init__(self) -> None:
        self._loaded: dict[str, dict[str, str]] = {}
        self._dirty: dict[str, dict[str, str]] = {}

    def _load(self, revision: str) -> dict[str, str]:
        raise NotImplementedError

    def _save(self, revision: str, values: dict[str, str]) -> None:
        raise NotImplementedError

    def get(self, revision: str, key: str) -> list[Issue] | None:
        if revision not in self._loaded:
            self._loaded[revision] = self._load(revision)
        raw = self._loaded[revision].get(key)
        if raw is None:
            return None
        try:
            return [_issue_from(item) for item in json.loads(raw)]
        except (TypeError, ValueError, KeyError):
            return None  # a damaged entry is a miss, never an error

    def put(self, revision: str, key: str, issues: Iterable[Issue]) -> None:
        value = json.dumps([attrs.asdict(i) | {"severity": i.severity.value} for i in issues])
        self._loaded.setdefault(revision, {})[key] = value
        self._dirty.setdefault(revision, {})[key] = value

    def pending(self, revision: str) -> dict[str, str]:
        """The values :meth:`put` for ``revision`` that :meth:`flush` has yet to write."""
        return dict(self._dirty.get(revision, {}))

    def flush(self) -> None:
        for revision, values in self._dirty.items():
            self._save(revision, values)
        self._dirty.clear()


class FileResults(ValidationCache):
    """One small JSON file per revision under ``root``: a speed-up for ``lockgate
    validate`` and the watcher, never read by a gate (anyone who can write the project
    could edit it)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def _path(self, revision: str) -> Path:
        return self.root / revision[:2] / f"{revision}.json"

    def _load(self, revision: str) -> dict[str, str]:
        try:
            data = json.loads(self._path(revision).read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}

    def _save(self, revision: str, values: dict[str, str]) -> None:
        path = self._path(revision)
        merged = self._load(revision) | values
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(merged), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass  # a cache that cannot be written only costs time


class StoreResults(ValidationCache):
    """The state store's :class:`~lockgate.contracts.state.ValidationResults`: as trusted
    as the approvals and pointers beside them, so a gate reads them too."""

    trusted = True

    def __init__(self, store: ValidationResults) -> None:
        super().__init__()
        self.store = store

    def _load(self, revision: str) -> dict[str, str]:
        return dict(self.store.validation_results(revision))

    def _save(self, revision: str, values: dict[str, str]) -> None:
        self.store.record_validation_results(revision, values)


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
