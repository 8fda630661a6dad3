"""The objects that cross the hook boundary: what plugins receive and return.

They are frozen attrs classes so that a plugin can keep one without fear that the kernel
changes it later, and so that the kernel can hand the same object to every plugin.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from lockgate.contracts.manifest import ManifestDiff
from lockgate.contracts.records import record
from lockgate.contracts.refs import short

__all__ = [
    "ChangeEvent",
    "ComponentReadiness",
    "ComponentStatus",
    "Decision",
    "IntegrationStage",
    "Issue",
    "PeerComponent",
    "ReadinessReport",
    "Register",
    "RoleContext",
    "Severity",
    "StageResult",
    "SyncResult",
    "ValidationContext",
    "ValidationSubject",
    "ValidatorInfo",
]

T = TypeVar("T")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


class IntegrationStage(str, enum.Enum):
    """The names users know from the integration manager; the ladder itself is configurable."""

    DEVELOPMENT = "development"
    STAGING = "staging"
    INTEGRATION = "integration"
    PRODUCTION = "production"


class ComponentStatus(str, enum.Enum):
    """Where a component's latest revision stands."""

    PENDING = "pending"
    STAGED = "staged"
    APPROVED = "approved"
    REJECTED = "rejected"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    RETIRED = "retired"


class Severity(str, enum.Enum):
    """How much an :class:`Issue` matters: only ``error`` blocks readiness."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@record
class Issue:
    """One finding of a validator.

    ``plugin`` is filled in by the kernel with the name of the plugin that returned the
    issue, so a validator never has to (and cannot) claim another plugin's name.
    ``components`` lists the component refs an integration issue involves; it is empty for
    an issue about a single component. ``hint`` is what to do about it; the readiness
    report gathers hints into its recommendations. A message must never contain a secret.
    """

    severity: Severity = attrs.field(converter=Severity)
    code: str
    message: str
    path: str | None = None
    line: int | None = None
    plugin: str | None = None
    components: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    hint: str | None = None

    @property
    def blocking(self) -> bool:
        """True when this issue makes its component not ready."""
        return self.severity is Severity.ERROR

    def describe(self) -> str:
        """One line for people: ``error syntax-python x.py:3: message [plugin]``."""
        where = f" {self.location}:" if self.location else ":"
        by = f" [{self.plugin}]" if self.plugin else ""
        return f"{self.severity.value} {self.code}{where} {self.message}{by}"

    @property
    def location(self) -> str | None:
        """``path:line``, ``path``, or None."""
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line is not None else self.path


@record
class PeerComponent:
    """Another component a validator may need to know about (see :class:`ValidationContext`)."""

    component: str
    component_id: str
    component_type: str
    revision: str | None
    status: str
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_strings)


@record
class Decision:
    """An approval or rejection recorded for the subject's revision.

    ``signed_key``: the fingerprint of the SSH key whose signature over this approval,
    for the stage being entered, verified against the project's ``allowed_signers``
    (None: unsigned, or see ``signature_problem`` for why it did not verify)."""

    actor: str
    decision: str  # "approve" or "reject"
    at: str
    comment: str | None = None
    signed_key: str | None = None
    signature_problem: str | None = None


@record
class ValidationContext:
    """What a validator may need beyond the revision's own files.

    ``batch``: the components validated together in this run (the subject among them).
    ``current``: component id -> revision current in the subject's stage.
    ``staged``: the latest revision of every component the project knows, in every
    workspace. ``graph``: component id -> ``depends_on`` for the batch and for everything
    reachable from it in the stage (the batch's own specs win). ``author``: who staged the
    subject's revision first. ``authors``: everyone who counts as its author (declared
    owners and stagers, see docs/validation.md), none of whom may approve it.
    ``decisions``: approvals and rejections of that revision.

    The kernel passes ``current`` and ``staged`` as views that read the state store when
    asked (:class:`~lockgate.contracts.peers.StagePointers`,
    :class:`~lockgate.contracts.peers.StagedPeers`): asking about some ids
    (:meth:`peers`, :meth:`live`, :meth:`known`, ``in``, ``[]``) reads those only, while
    iterating either reads every component, or the whole stage, once; in a project of a
    hundred thousand components that is what a gate costs. They answer while the
    validator runs, not after (a validator that keeps them gets ``LockgateError``).

    A validator that reads the context depends on more than the revision, so it must
    declare ``cache=False`` in :class:`ValidatorInfo`.
    """

    batch: tuple[PeerComponent, ...] = ()
    current: Mapping[str, str] = attrs.field(factory=dict)
    staged: Sequence[PeerComponent] = ()
    graph: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    author: str | None = None
    decisions: tuple[Decision, ...] = ()
    authors: tuple[str, ...] = ()

    def peers(self, *component_ids: str) -> tuple[PeerComponent, ...]:
        """The components of ``component_ids`` the project knows, each workspace's latest
        revision (what ``staged`` holds of those ids), read alone."""
        with_ids = getattr(self.staged, "with_ids", None)  # a StagedPeers
        if with_ids is not None:
            return tuple(with_ids(component_ids))
        return tuple(p for p in self.staged if p.component_id in component_ids)

    def live(self, *component_ids: str) -> dict[str, str]:
        """The revision current in the subject's stage of each of ``component_ids`` it
        holds (what ``current`` holds of those ids), read alone."""
        subset = getattr(self.current, "subset", None)  # a StagePointers
        if subset is not None:
            return dict(subset(component_ids))
        return {i: self.current[i] for i in component_ids if i in self.current}

    def known(self, *component_ids: str) -> frozenset[str]:
        """Those of ``component_ids`` that name a component the project knows: validated
        together with the subject, staged in some workspace, or current in its stage."""
        found = {p.component_id for p in self.batch if p.component_id in component_ids}
        rest = [i for i in component_ids if i not in found]
        if rest:
            found.update(p.component_id for p in self.peers(*rest))
            rest = [i for i in rest if i not in found]
        if rest:
            found.update(self.live(*rest))
        return frozenset(found)


@record
class ValidationSubject:
    """What a validator looks at: one component's revision, in the context of a stage.

    ``root`` is a directory holding exactly the revision's files (read-only for a staged
    revision; the workspace itself with ``lockgate validate --workspace``); ``files``
    lists their paths relative to ``root`` (POSIX separators, sorted) and ``sizes`` their
    sizes in bytes. ``metadata`` is what ``component.yaml`` says (version, description,
    owners, depends_on, metadata). ``revision`` is None when validating a workspace.
    ``digests`` gives each regular file's content digest where it is known (always for a
    revision): a validator may remember per-file results by digest, so that a new
    revision costs only its changed files.

    Read a file with :meth:`read_bytes`: ``root`` is None when the content store keeps no
    release directories (an object store, the memory twin), and the bytes then come
    from the store through ``reader``.
    """

    component: str
    workspace: str
    component_id: str
    component_type: str
    stage: str
    root: Path | None
    files: tuple[str, ...]
    revision: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    sizes: Mapping[str, int] = attrs.field(factory=dict)
    context: ValidationContext = attrs.field(factory=ValidationContext)
    digests: Mapping[str, str] = attrs.field(factory=dict)
    reader: Callable[[str], bytes] | None = attrs.field(default=None, eq=False, repr=False)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The bytes of file ``path`` (relative, as in ``files``), or only its first
        ``limit`` bytes (a check that needs a prefix, such as telling binary from text,
        reads no more); OSError when it cannot be read."""
        if self.reader is not None:
            data = self.reader(path)
            return data if limit is None else data[:limit]
        if self.root is None:
            raise FileNotFoundError(f"{path}: the subject has no files to read")
        if limit is None:
            return (self.root / path).read_bytes()
        with (self.root / path).open("rb") as fh:
            return fh.read(limit)


@record
class ValidatorInfo:
    """What a validator declares about itself (hook ``describe_validator``).

    ``types``: the component types it validates (empty: every type). ``cache``: its
    result depends only on the revision's files, the stage and its own settings, so it may
    be cached per (revision, validator, version, settings, stage); a validator that reads
    ``subject.context`` or anything outside the revision must say False. ``per_stage``:
    False when its result does not depend on ``subject.stage`` either, so one verdict
    serves every stage (a revision climbing the ladder is read once, not at every rung).
    ``version``: part of the cache key (default: the plugin's distribution version);
    change it when the validator's rules change.
    """

    types: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    cache: bool = True
    version: str | None = None
    per_stage: bool = True


@record
class ChangeEvent:
    """A committed change, announced through ``on_stage``, ``on_promote`` or ``on_rollback``."""

    action: str
    component: str
    stage: str | None
    revision: str | None
    previous_revision: str | None
    actor: str
    at: _dt.datetime
    reason: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)


@record
class RoleContext:
    """Handed to a role factory (state store, content store, target) when the kernel builds it.

    ``settings`` is the providing plugin's own settings object (or None when it declares
    none); ``options`` are the options configured for this particular use of the role,
    for example one stage target's options. A target also receives ``content``, which
    returns the project's content store when called (built on first use): the builtin
    ``directory`` target asks it where the store keeps releases, if it keeps any.
    ``project_name`` is ``project.name`` from the configuration, else the project
    directory's name: what a store that many projects share keeps them apart by.
    ``environ`` is the environment the project was opened with (a notifier reads the
    secret an option names from it); it is never shown.
    """

    project_root: Path
    state_dir: Path
    settings: Any
    options: Mapping[str, Any] = attrs.field(factory=dict)
    content: Callable[[], Any] | None = None
    project_name: str | None = None
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)


Register = Callable[[str, Callable[[RoleContext], T]], None]
"""The callback provider hooks receive: ``register(name, factory)``."""


# ---------------------------------------------------------------- what operations return
# Records plugins receive too (Operations, through PluginContext.operations): they live
# here because the kernel may not import the operations that make them.


def plural(n: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@record
class StageResult:
    """What staging one component did (or, with ``dry_run``, would do)."""

    component: str
    component_type: str
    stage: str
    revision: str
    previous: str | None
    created: bool
    files: int
    size: int
    hashed: int
    diff: ManifestDiff
    dry_run: bool = False
    warnings: tuple[str, ...] = ()
    repaired: int = 0
    """Objects the latest revision needed that were missing from the store, stored again."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "component": self.component,
            "type": self.component_type,
            "stage": self.stage,
            "revision": self.revision,
            "previous_revision": self.previous,
            "created": self.created,
            "dry_run": self.dry_run,
            "files": self.files,
            "size": self.size,
            "hashed": self.hashed,
            "repaired": self.repaired,
            "changes": self.diff.counts(),
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """One human line."""
        c = self.diff.counts()
        changes = f"+{c['added']} ~{c['modified']} -{c['removed']}"
        if not self.created:
            if self.repaired:
                return (
                    f"{self.component}: unchanged at {short(self.revision)}; no new revision; "
                    f"stored {plural(self.repaired, 'missing object')} again"
                )
            return f"{self.component}: unchanged at {short(self.revision)}; no new revision"
        verb = "would stage" if self.dry_run else "staged"
        return (
            f"{self.component}: {verb} {short(self.revision)} for {self.stage} "
            f"({changes}; {plural(self.files, 'file')}, {plural(self.size, 'byte')})"
        )


@record
class SyncResult:
    """What ``sync`` did: counts, and each failure's reason; ``retired``: components
    found in a workspace that ``lockgate remove`` retired, left alone."""

    found: int
    results: tuple[StageResult, ...]
    failures: tuple[tuple[str, str], ...]
    dry_run: bool = False
    retired: tuple[str, ...] = ()

    @property
    def staged(self) -> int:
        """Components that got (or would get) a new revision."""
        return sum(1 for r in self.results if r.created)

    @property
    def unchanged(self) -> int:
        """Components whose files match their latest revision."""
        return sum(1 for r in self.results if not r.created)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "found": self.found,
            "staged": self.staged,
            "unchanged": self.unchanged,
            "failed": len(self.failures),
            "dry_run": self.dry_run,
            "results": [r.to_dict() for r in self.results],
            "failures": [{"component": c, "reason": r} for c, r in self.failures],
            "retired": list(self.retired),
        }


@record
class ComponentReadiness:
    """One component's verdict: ready when no validator reported an error."""

    component: str
    stage: str
    revision: str | None
    issues: tuple[Issue, ...]
    validators: tuple[str, ...] = ()
    cached: int = 0

    @property
    def ready(self) -> bool:
        """True when no issue blocks."""
        return not any(issue.blocking for issue in self.issues)

    def count(self, severity: Severity) -> int:
        """How many issues of ``severity``."""
        return sum(1 for issue in self.issues if issue.severity is severity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "ready": self.ready,
            "stage": self.stage,
            "revision": self.revision,
            "errors": self.count(Severity.ERROR),
            "warnings": self.count(Severity.WARNING),
            "issues": [issue_dict(i) for i in self.issues],
            "validators": list(self.validators),
            "cached": self.cached,
        }


@record
class ReadinessReport:
    """The readiness of a set of components, validated together."""

    components: tuple[ComponentReadiness, ...]
    elapsed: float = 0.0

    @property
    def ready(self) -> bool:
        """Overall readiness: every component ready (and at least one validated)."""
        return bool(self.components) and all(c.ready for c in self.components)

    def component(self, ref: str) -> ComponentReadiness:
        """The verdict for ``ref`` (KeyError when it was not validated)."""
        for result in self.components:
            if result.component == ref:
                return result
        raise KeyError(ref)

    @property
    def integration_issues(self) -> list[Issue]:
        """Issues that involve several components, each once."""
        seen: dict[tuple[Any, ...], Issue] = {}
        for result in self.components:
            for issue in result.issues:
                if issue.components:
                    key = (issue.code, issue.message, tuple(sorted(issue.components)))
                    seen.setdefault(key, issue)
        return list(seen.values())

    @property
    def recommendations(self) -> list[str]:
        """What to do next, from the issues' hints, each once, blocking ones first."""
        hints: dict[str, None] = {}
        issues = [i for c in self.components for i in c.issues]
        for issue in sorted(issues, key=lambda i: not i.blocking):
            if issue.hint:
                hints.setdefault(issue.hint)
        return list(hints)

    def summary(self) -> str:
        """One line: ``ready`` or ``not ready: 2 errors, 1 warning``."""
        errors = sum(c.count(Severity.ERROR) for c in self.components)
        warnings = sum(c.count(Severity.WARNING) for c in self.components)
        if not self.components:
            return "nothing validated"
        parts = [
            f"{n} {word}{'s' if n != 1 else ''}"
            for n, word in ((errors, "error"), (warnings, "warning"))
            if n
        ]
        head = "ready" if self.ready else "not ready"
        return f"{head}: {', '.join(parts)}" if parts else head

    def to_dict(self) -> dict[str, Any]:
        """The integration manager's keys: overall_ready, component_results, ..."""
        return {
            "overall_ready": self.ready,
            "summary": self.summary(),
            "component_results": {c.component: c.to_dict() for c in self.components},
            "integration_issues": [issue_dict(i) for i in self.integration_issues],
            "recommendations": self.recommendations,
            "elapsed_seconds": round(self.elapsed, 4),
        }


def issue_dict(issue: Issue) -> dict[str, Any]:
    """An issue as plain data (``location`` is ``path:line`` when there is a path)."""
    data = attrs.asdict(issue)
    data["severity"] = issue.severity.value
    data["components"] = list(issue.components)
    data["location"] = issue.location
    return data
