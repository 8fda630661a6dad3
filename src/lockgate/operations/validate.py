"""The validate operation: run every enabled validator over components, safely, and report.

Validators are ``on_validate`` implementations (see hookspecs). For each component the
kernel builds a :class:`~lockgate.contracts.models.ValidationSubject` (the revision as a
read-only release directory, or the workspace itself), then calls every validator that
handles the component's type:

* in parallel, each call in its own daemon thread, at most ``validation.workers`` at once;
* with a deadline of ``validation.timeout`` seconds per call: a validator that has not
  answered by then is reported as timed out and abandoned (a thread cannot be killed,
  but nothing waits for it, and the process may exit while it still runs);
* failing closed: a validator that raises or times out is an error issue attributed to
  its plugin, and the other validators' results are still reported;
* unable to end the process: once validators run, ``os._exit``, ``os.abort`` and the
  ``os.exec*`` family refuse to act from any thread but the main one (of this process,
  not of a child it forks), so a validator that tries is a failed gate
  (``validator-exit``), reported and audited, never a command that "succeeds" having
  done nothing;
* through a cache: the issues of a validator that declares ``cache=True`` are kept per
  (revision, stage, validator, version, settings) under ``.lockgate/cache/validation/``,
  so re-validating an unchanged revision does not call it again.

Each validated component appends one ``validate`` audit event (outcome ``ok`` when ready,
``failed`` when not), which the statistics count.

Over 600 lines: subjects, the worker pool with its deadlines and exit guard, and the
result cache are one pipeline; the pool is the part to move out next.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.models import (
    ComponentReadiness,
    Decision,
    Issue,
    PeerComponent,
    ReadinessReport,
    Severity,
    ValidationContext,
    ValidationSubject,
)
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef
from lockgate.contracts.source import ComponentSpec
from lockgate.contracts.state import AuditEvent
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.core.specs import read_spec
from lockgate.errors import LockedError, LockgateError, NotFoundError, PluginHookError
from lockgate.operations.approve import authors as approval_authors
from lockgate.operations.gates import closed_gates
from lockgate.operations.lifecycle import next_stage
from lockgate.operations.recover import settle
from lockgate.operations.revisions import release_dir, revision_handle, revision_spec

if TYPE_CHECKING:
    from lockgate.core.hooks import Validator

__all__ = ["ComponentReadiness", "ReadinessReport", "Validation"]

CACHE_FORMAT = 1
_ACTIVE_STATUSES = ("staged", "approved", "promoted")


@record
class _Prepared:
    """One component, ready to be validated."""

    subject: ValidationSubject
    stage: str
    validators: tuple[Validator, ...]
    problems: tuple[Issue, ...] = ()


_WORKER_NAME = "lockgate-validate"


class _WorkerPool:
    """Daemon threads that run validator calls for every run in this process.

    Kept for the life of the process, so a long-running caller (``lockgate watch``)
    does not start threads for every run. A worker stuck in a call past its deadline is
    written off: the pool forgets it and starts another when more are needed.
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Any, Any, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live = 0

    def ensure(self, count: int) -> None:
        _guard_process_exits()
        with self._lock:
            while self._live < count:
                threading.Thread(target=self._work, name=_WORKER_NAME, daemon=True).start()
                self._live += 1

    def write_off(self) -> None:
        with self._lock:
            self._live -= 1

    def submit(self, call: Any, task: tuple[int, int], events: Any) -> None:
        self._tasks.put((call, task, events))

    def _work(self) -> None:
        while True:
            call, task, events = self._tasks.get()
            events.put(("start", task, []))
            events.put(("done", task, call()))


_POOL = _WorkerPool()


class _ExitAttempt(BaseException):
    """Raised in a validator's thread in place of ending the process."""


# What threads that validators started (not the workers) tried: "os._exit(0)", ...
# Only ever appended to.
_EXIT_ATTEMPTS: list[str] = []
_GUARDED: dict[str, Any] = {}
# "pid": the process whose validations are guarded; "runs": validations running now.
_GUARD: dict[str, int] = {"pid": 0, "runs": 0}
_CALL = threading.local()  # .attempt: what the validator running in this worker tried
_ENDERS = (
    "_exit",
    "abort",
    "execv",
    "execve",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execvp",
    "execvpe",
)


def _guard_process_exits() -> None:
    """Make the calls that end or replace the process refuse to from a non-main thread.

    Validators run in worker threads, and a call such as ``os._exit(0)`` there would end
    the command at once with status 0: nothing recorded, the caller told all is well. The
    kernel never ends the process from another thread, so from a validator's worker, or
    from any other thread while validators run, these calls raise instead. The host
    application's own threads are left alone between runs, and so is a child forked to
    exec or exit (its pid differs). Only Python-level calls are covered; see
    docs/validation.md for what is not.
    """
    _GUARD["pid"] = os.getpid()  # a forked child that validates guards its own threads
    if _GUARDED:
        return
    import posix

    for name in _ENDERS:
        original = getattr(os, name, None)
        if original is None:
            continue

        def guard(*args: Any, _name: str = name, _original: Any = original) -> Any:
            thread = threading.current_thread()
            if (
                thread is threading.main_thread()
                or os.getpid() != _GUARD["pid"]  # a child forked to exec or exit: its own
                # Other threads of the host application are left alone between runs:
                # only a validator's worker, or a thread started while validators run.
                or (thread.name != _WORKER_NAME and not _GUARD["runs"])
            ):
                return _original(*args)
            shown = ", ".join(repr(a) for a in args[:2])
            what = f"os.{_name}({shown})"
            if threading.current_thread().name == _WORKER_NAME:
                _CALL.attempt = what  # reported with the call, even if it is caught
            else:
                _EXIT_ATTEMPTS.append(what)
            raise _ExitAttempt(what)

        _GUARDED[name] = original
        setattr(os, name, guard)
        if getattr(posix, name, None) is original:
            setattr(posix, name, guard)

    previous_hook = threading.excepthook

    def excepthook(args: Any) -> None:
        if not isinstance(args.exc_value, _ExitAttempt):  # reported as a failed gate
            previous_hook(args)

    threading.excepthook = excepthook


class Validation:
    """Runs the validators in one session (a project is accepted and opens one)."""

    def __init__(self, session: Session | Project) -> None:
        self.session = as_session(session)
        self.settings = self.session.config.validation  # timeout > 0: checked with the config
        self.workers = self.settings.workers or min(16, 4 * (os.cpu_count() or 1))
        self._revisions: dict[str, str] = {}
        self._use_cache = True

    # ------------------------------------------------------------------ public

    def run(
        self,
        refs: Sequence[str | ComponentRef],
        stage: str | None = None,
        *,
        use_cache: bool = True,
        workspace: bool = False,
        record: bool = True,
        revisions: Mapping[str, str] | None = None,
        skip: Collection[str] = (),
    ) -> ReadinessReport:
        """Validate ``refs`` together for ``stage`` (None: each component's next stage).

        ``workspace=True`` validates the files as they are in the workspace now instead of
        the latest staged revision (nothing is cached or recorded then). A component that
        cannot be validated (never staged, unknown) is reported not ready with an issue.
        ``revisions`` picks another revision than the latest for some refs (promotion
        validates the revision it promotes); ``skip`` names validators not to run.
        """
        started = time.perf_counter()
        settle(self.session)
        parsed = [r if isinstance(r, ComponentRef) else ComponentRef.parse(r) for r in refs]
        if stage is not None:
            stage = self.session.check_stage(stage)
        validators = [v for v in self.session.hooks.validators() if v.plugin not in skip]
        self._revisions = dict(revisions or {})
        use_cache = use_cache and self.settings.cache and not workspace
        # A gate decision reads nothing from caches under .lockgate/ (use_cache=False),
        # component specs included: their owners decide who counts as an author.
        self._use_cache = use_cache
        prepared = self._prepare(parsed, stage, validators, workspace)
        results = closed_gates(self.session, self._execute(prepared, use_cache), skip)
        report = ReadinessReport(tuple(results), time.perf_counter() - started)
        if record and not workspace:
            self._record(report)
        return report

    # ------------------------------------------------------------------ preparing

    def _prepare(
        self,
        refs: Sequence[ComponentRef],
        stage: str | None,
        validators: Sequence[Validator],
        workspace: bool,
    ) -> list[_Prepared]:

        state = self.session.state()
        records = {r.component: r for r in state.components()}
        staged = tuple(
            PeerComponent(
                component=r.component,
                component_id=r.component_id,
                component_type=r.component_type,
                revision=r.latest_revision,
                status=r.status.value,
            )
            for r in records.values()
            if r.latest_revision is not None
        )
        # First pass: each component's subject without context (specs are needed first).
        bases: list[tuple[ComponentRef, str, ValidationSubject | None, tuple[Issue, ...]]] = []
        for ref in dict.fromkeys(refs):
            target = stage
            try:
                if target is None:
                    target = (
                        next_stage(self.session, str(ref))
                        if str(ref) in records
                        else self.session.stage_names[0]
                    )
                subject = (
                    self._workspace_subject(ref, target)
                    if workspace
                    else self._revision_subject(ref, target, records)
                )
                bases.append((ref, target, subject, ()))
            except LockgateError as exc:
                if isinstance(exc, LockedError):
                    raise
                issue = Issue(
                    Severity.ERROR,
                    "cannot-validate",
                    exc.message,
                    plugin="lockgate",
                    hint=_hint_for(exc, ref),
                )
                bases.append((ref, target or self.session.stage_names[0], None, (issue,)))
        batch = tuple(
            PeerComponent(
                component=s.component,
                component_id=s.component_id,
                component_type=s.component_type,
                revision=s.revision,
                status=records[s.component].status.value if s.component in records else "pending",
                depends_on=tuple(s.metadata.get("depends_on", ())),
            )
            for _, _, s, _ in bases
            if s is not None
        )
        prepared = []
        contexts: dict[str, tuple[Mapping[str, str], Mapping[str, tuple[str, ...]]]] = {}
        for ref, target, maybe, problems in bases:
            if maybe is None:
                placeholder = ValidationSubject(
                    component=str(ref),
                    workspace=ref.workspace,
                    component_id=ref.component_id,
                    component_type="unknown",
                    stage=target,
                    root=Path(),
                    files=(),
                )
                prepared.append(_Prepared(placeholder, target, (), problems))
                continue
            subject = maybe
            if target not in contexts:
                live = {p.component_id: p.revision for p in state.pointers(target) if p.revision}
                contexts[target] = (live, self._graph(batch, live))
            current, graph = contexts[target]
            decisions: tuple[Decision, ...] = ()
            author = None
            authors: tuple[str, ...] = ()
            if subject.revision is not None:
                decisions = tuple(
                    Decision(a.actor, a.decision, a.at, a.comment)
                    for a in state.approvals(subject.component, subject.revision)
                )
                author = next(
                    (
                        r.actor
                        for r in state.revisions(subject.component)
                        if r.revision == subject.revision
                    ),
                    None,
                )
                owners = subject.metadata.get("owners") or ()
                authors = approval_authors(
                    state,
                    subject.component,
                    subject.revision,
                    [str(o) for o in owners] if isinstance(owners, list | tuple) else (),
                    self.session.stage_names,
                )
            context = ValidationContext(
                batch=batch,
                current=current,
                staged=staged,
                graph=graph,
                author=author,
                decisions=decisions,
                authors=authors,
            )
            chosen = tuple(v for v in validators if v.applies_to(subject.component_type))
            prepared.append(
                _Prepared(attrs.evolve(subject, context=context), target, chosen, problems)
            )
        return prepared

    def _revision_subject(
        self, ref: ComponentRef, stage: str, records: Mapping[str, Any]
    ) -> ValidationSubject:

        record = records.get(str(ref))
        if record is None or record.latest_revision is None:
            raise NotFoundError(f"{ref} has never been staged; run 'lockgate stage {ref}' first")
        revision = self._revisions.get(str(ref), record.latest_revision)
        manifest = self.session.content().get_manifest(revision)
        root = release_dir(self.session, revision)
        return ValidationSubject(
            component=str(ref),
            workspace=ref.workspace,
            component_id=ref.component_id,
            component_type=record.component_type,
            stage=stage,
            root=root,
            files=tuple(e.path for e in manifest.entries),
            revision=revision,
            metadata=self._spec_data(revision, root),
            reader=None if root else functools.partial(_read_file, self.session, revision),
            sizes={e.path: e.size for e in manifest.entries},
            digests={e.path: e.digest for e in manifest.entries if e.digest},
        )

    def _workspace_subject(self, ref: ComponentRef, stage: str) -> ValidationSubject:
        component = self.session.source().find(ref)
        scan = self.session.source().scan(component)
        files = sorted(f.path for f in scan.files)
        return ValidationSubject(
            component=str(ref),
            workspace=ref.workspace,
            component_id=ref.component_id,
            component_type=component.component_type,
            stage=stage,
            root=component.path,
            files=tuple(files),
            revision=None,
            metadata=attrs.asdict(component.spec),
            sizes={f.path: f.stat.size for f in scan.files},
        )

    def _spec_data(self, revision: str, root: Path | None) -> dict[str, Any]:

        try:
            if root is None:  # a store without releases: read it from the store
                return attrs.asdict(revision_spec(self.session, revision))
            # Releases are immutable, so the YAML cache keyed by content is right here.
            cache_dir = self.session.state_dir / "cache" / "yaml" if self._use_cache else None
            return attrs.asdict(read_spec(root, cache_dir=cache_dir))
        except LockgateError:
            # A broken component.yaml is the manifest validator's to report, with its line.
            return attrs.asdict(ComponentSpec())

    def _graph(
        self, batch: Sequence[PeerComponent], current: Mapping[str, str]
    ) -> dict[str, tuple[str, ...]]:
        """depends_on for the batch, and for what the stage holds reachable from it."""
        graph: dict[str, tuple[str, ...]] = {}
        for peer in batch:
            graph[peer.component_id] = tuple(_dep_id(d) for d in peer.depends_on)
        todo = [d for deps in list(graph.values()) for d in deps]
        while todo:
            component_id = todo.pop()
            if component_id in graph or component_id not in current:
                continue
            deps = self._stage_deps(current[component_id])
            graph[component_id] = deps
            todo.extend(deps)
        return graph

    def _stage_deps(self, revision: str) -> tuple[str, ...]:

        try:
            spec = self._spec_data(revision, release_dir(self.session, revision))
        except LockgateError:
            return ()
        return tuple(_dep_id(d) for d in spec.get("depends_on", ()))

    # ------------------------------------------------------------------ running

    def _execute(self, prepared: Sequence[_Prepared], use_cache: bool) -> list[ComponentReadiness]:
        # A kernel cache lives in .lockgate/ only when some role keeps its data there
        # (sqlite, the local store, the workspace source's stat cache): a project whose
        # roles keep nothing on this machine gets no local directory, only slower
        # re-validation (as lockgate.yaml's parse cache, core/config.py).
        state_dir = self.session.state_dir
        cache = (
            _Cache(state_dir / "cache" / "validation") if use_cache and state_dir.is_dir() else None
        )
        outcomes: dict[tuple[int, int], list[Issue]] = {}
        tasks: list[tuple[int, int]] = []
        cached_counts = [0] * len(prepared)
        keys: dict[tuple[int, int], str] = {}
        for ci, item in enumerate(prepared):
            for vi, validator in enumerate(item.validators):
                if cache is not None and validator.info.cache and item.subject.revision:
                    key = _cache_key(validator, item.stage)
                    keys[(ci, vi)] = key
                    hit = cache.get(item.subject.revision, key)
                    if hit is not None:
                        outcomes[(ci, vi)] = [attrs.evolve(i, plugin=validator.plugin) for i in hit]
                        cached_counts[ci] += 1
                        continue
                tasks.append((ci, vi))
        attempts = len(_EXIT_ATTEMPTS)
        _GUARD["runs"] += 1
        try:
            fresh = self._run_parallel(prepared, tasks)
        finally:
            _GUARD["runs"] -= 1
        outcomes.update(fresh)
        strays = _EXIT_ATTEMPTS[attempts:]
        if cache is not None and not strays:  # whose result is trustworthy is unknown
            for (ci, vi), issues in fresh.items():
                wanted = keys.get((ci, vi))
                if wanted is not None and not any(i.code.startswith("validator-") for i in issues):
                    cache.put(prepared[ci].subject.revision or "", wanted, issues)
            cache.flush()
        results = []
        for ci, item in enumerate(prepared):
            issues = list(item.problems)
            for vi in range(len(item.validators)):
                issues.extend(outcomes.get((ci, vi), ()))
            if strays and not any(i.code == "validator-exit" for i in issues):
                # A thread a validator started, not the call itself: which one is unknown,
                # so every component validated meanwhile fails.
                issues.append(_exit_issue(None, ", ".join(strays)))
            results.append(
                ComponentReadiness(
                    component=item.subject.component,
                    stage=item.stage,
                    revision=item.subject.revision,
                    issues=tuple(issues),
                    validators=tuple(v.plugin for v in item.validators),
                    cached=cached_counts[ci],
                )
            )
        return results

    def _run_parallel(
        self, prepared: Sequence[_Prepared], tasks: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], list[Issue]]:
        """Run the tasks on the process's pool of daemon workers, with deadlines.

        A worker reports when it starts a call and when it finishes; a call still running
        at its deadline is recorded as timed out and its worker written off (the pool
        starts a replacement). Nothing ever waits for a written-off worker.
        """
        timeout = self.settings.timeout
        events: queue.SimpleQueue[tuple[str, tuple[int, int], list[Issue]]] = queue.SimpleQueue()
        _POOL.ensure(min(self.workers, len(tasks)))
        for task in tasks:
            _POOL.submit(lambda t=task: self._call_one(prepared[t[0]], t[1]), task, events)
        results: dict[tuple[int, int], list[Issue]] = {}
        running: dict[tuple[int, int], float] = {}
        while len(results) < len(tasks):
            wait = max(0.0, min(running.values()) - time.monotonic()) if running else None
            try:
                kind, task, issues = events.get(timeout=wait)
            except queue.Empty:
                now = time.monotonic()
                for late in [t for t, deadline in running.items() if deadline <= now]:
                    del running[late]
                    results[late] = [self._timed_out(prepared[late[0]].validators[late[1]])]
                    _POOL.write_off()
                # Replace the workers written off, or queued calls would wait for ever on
                # workers that never come back (workers: 1 and a validator that hangs).
                _POOL.ensure(min(self.workers, len(tasks) - len(results)))
                continue
            if task in results:
                continue  # finished after its deadline: the timeout stands
            if kind == "start":
                running[task] = time.monotonic() + timeout
            else:
                running.pop(task, None)
                results[task] = issues
        return results

    @staticmethod
    def _call_one(item: _Prepared, index: int) -> list[Issue]:
        validator = item.validators[index]
        _CALL.attempt = None
        try:
            issues = validator.call(item.subject)
        except PluginHookError as exc:
            message = exc.message
        except BaseException as exc:  # a validator must never take the run down
            message = f"plugin '{validator.plugin}' failed: {type(exc).__name__}: {exc}"
        else:
            if _CALL.attempt is None:
                return issues
            message = ""
        if _CALL.attempt is not None:
            return [_exit_issue(validator.plugin, _CALL.attempt)]
        return [
            Issue(
                Severity.ERROR,
                "validator-failed",
                message,
                plugin=validator.plugin,
                hint=f"fix or disable plugin '{validator.plugin}' "
                "(plugins.disable in lockgate.yaml)",
            )
        ]

    def _timed_out(self, validator: Validator) -> Issue:
        timeout = self.settings.timeout
        return Issue(
            Severity.ERROR,
            "validator-timeout",
            f"plugin '{validator.plugin}' did not finish within {timeout:g} s (validation.timeout)",
            plugin=validator.plugin,
            hint=f"fix plugin '{validator.plugin}' or raise validation.timeout",
        )

    # ------------------------------------------------------------------ recording

    def _record(self, report: ReadinessReport) -> None:
        actor, at = self.session.actor, now_iso()
        self.session.state().append_events(
            [
                AuditEvent(
                    at=at,
                    actor=actor,
                    action="validate",
                    component=result.component,
                    stage=result.stage,
                    revision=result.revision,
                    details={
                        "errors": result.count(Severity.ERROR),
                        "warnings": result.count(Severity.WARNING),
                        "cached": result.cached,
                    },
                    outcome="ok" if result.ready else "failed",
                )
                for result in report.components
                if result.revision is not None
            ]
        )


def _exit_issue(plugin: str | None, what: str) -> Issue:
    """The issue of a validator that tried to end the process instead of returning."""
    who = f"plugin '{plugin}'" if plugin else "a thread a validator started"
    return Issue(
        Severity.ERROR,
        "validator-exit",
        f"{who} tried to end the process ({what}) instead of returning its issues",
        plugin=plugin or "lockgate",
        hint=f"fix or disable {f'plugin {plugin!r}' if plugin else 'the validator'} "
        "(plugins.disable in lockgate.yaml)",
    )


def _dep_id(dep: str) -> str:
    return dep.split(":", 1)[1] if ":" in dep else dep


def _hint_for(exc: LockgateError, ref: ComponentRef) -> str | None:
    if "never been staged" in exc.message:
        return f"stage it: lockgate stage {ref}"
    return None


def _read_file(session: Session, revision: str, path: str) -> bytes:
    """File ``path`` of ``revision`` read from the content store (checked against its
    digest), for a subject without a release directory; OSError when it cannot be."""
    try:
        with revision_handle(session, revision).open(path) as stream:
            return stream.read()
    except LockgateError as exc:
        raise OSError(errno.EIO, exc.message) from exc


def _cache_key(validator: Validator, stage: str) -> str:
    settings = validator.settings
    if attrs.has(type(settings)):
        settings = attrs.asdict(settings)
    payload = json.dumps(
        [CACHE_FORMAT, validator.plugin, validator.version, settings, stage],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class _Cache:
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
