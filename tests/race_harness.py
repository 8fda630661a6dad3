"""Race harness: several processes stage, gc, promote, roll back, reject, approve and verify
one project at once, for minutes; between rounds the project is checked.

Importable (tests/test_races.py runs :func:`run_races` in a bounded form) and runnable as
a script for the long run::

    .venv/bin/python tests/race_harness.py --seconds 600 --workers 4 --seed 1

How it works:

* a temporary project with three small components (one holds an internal symlink) is
  prepared and promoted up ``staging → integration → production``; production needs
  one approval from someone other than the revision's author (``plugins.approvals``)
  and refuses ``--force``, so approve and reject decide something;
* the run is cut into rounds (``--round-seconds``). In each round ``--workers`` real
  processes (fresh interpreters) work on the project at once until the round ends,
  each drawing a random mix of: edit a component's files (atomic replacements, values
  from a small set so that stored objects are reused), ``stage``, ``sync``,
  ``gc --keep K --grace G`` (K from 1 to 3, G mostly 0), ``promote`` (next rung or a named
  stage, sometimes ``--rev``), ``rollback`` (``previous``, ``last-good``, ``none``, a
  revision that was live, ``--at`` a time it was live), ``reject`` and ``approve`` (as a
  reviewer, another actor than the one who stages: a separate ``LOCKGATE_ACTOR``) and
  ``verify``. Most calls go through the Python API in the worker's process; a share
  (``--cli-share``) runs the ``lockgate`` command as a subprocess;
* every call's outcome is classified: success; a legitimate refusal (a
  :class:`~lockgate.errors.LockgateError` with exit code 1, 2 or 4: a gate, a conflict,
  a lock held too long, a revision that cannot be found; for the command, exit 1, 2 or
  4); or a *violation*: any other exception, exit code or a hang. A ``verify`` that
  reports problems while other processes switch stages is a refusal, not a violation
  (it saw a switch half-way); the one that counts is the quiet one below;
* after every round, with every worker stopped, the invariants are checked:

  1. ``objects``: every object each revision the project must still deploy needs exists
     and matches its digest — what a stage holds, each component's latest revision —
     and ``rollback-target-objects``: the same for what ``rollback --to previous`` and
     ``--to last-good`` would select (asked with a dry run);
  2. every stage pointer names a recorded revision (``pointer-unknown-revision``), the
     stage's target shows exactly the pointers (``deployed-mismatch``) and each entry of
     the stage directory serves exactly the revision's files (``served``);
  3. no operation that returned left its intent open (``intent-left-open``: nobody was
     killed), and none is open after recovery (``open-intent``);
  4. the audit chain verifies (``audit-chain``) and audit times never decrease along it
     (``audit-time-order``);
  5. no revision was promoted after it was rejected (``promoted-after-reject``), nor
     made current again by a rollback (``rollback-onto-rejected``);
  6. ``lockgate verify`` exits 0 (``cli-verify``; in-process: ``verify``).

  The checks of tests/crash_harness.py's ``inspect_project`` run as well (temporary
  links left, pointer history, the operation lock free, SQLite's integrity check).

A summary table (operations by kind and outcome, checks, violations) is printed; the
exit status is 1 when a violation was found (``--tolerate KIND`` counts one kind without
failing). A seed fixes every worker's choices, not where their operations interleave.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crash_harness import (
    COMPONENTS,
    ENV,
    LINK_TEXT,
    Journal,
    _clean_env,
    component_dir,
    in_workdir,
    inspect_project,
    open_project,
    peek_intents,
    read_journal,
)
from lockgate.contracts.content import ContentStore
from lockgate.contracts.manifest import Manifest, hash_file
from lockgate.core.project import Project
from lockgate.errors import LockgateError
from lockgate.operations.approve import decide
from lockgate.operations.gc import collect_garbage
from lockgate.operations.init import init_project
from lockgate.operations.promote import Promoter
from lockgate.operations.stage import Stager
from lockgate.operations.verify import verify

__all__ = [
    "OPERATIONS",
    "RaceConfig",
    "RaceSummary",
    "check_invariants",
    "create_race_project",
    "run_races",
]

HARNESS = Path(__file__).resolve()
CONFIG = """\
project:
  name: race
identity:
  allow_override: true
plugins:
  approvals:
    stages:
      production:
        required: 1
stages:
  staging: {}
  integration: {}
  production:
    gates:
      allow_force: false
gc:
  keep: 2
  grace: 1
state:
  lock_timeout: 30
"""
SETUP_ACTOR = "race-setup"
SETUP_REVIEWER = "race-reviewer"
EDITED = ("main.py", "lib.py")
VALUES = 12  # few values per file: objects are stored, collected and stored again
REFUSALS = frozenset({1, 2, 4})  # LockgateError exit codes that are legitimate answers
CLI_TIMEOUT = 300.0
OPERATIONS: dict[str, int] = {  # kind -> weight
    "edit": 4,
    "stage": 3,
    "sync": 1,
    "gc": 2,
    "promote": 5,
    "rollback": 2,
    "reject": 1,
    "approve": 2,
    "verify": 1,
}
KEEPS = (1, 1, 2, 3)
GRACES = (0.0, 0.0, 0.0, 0.5, 2.0)


def quietly(call: Callable[[], object]) -> Callable[[], None]:
    """``call`` with its result dropped (a success says nothing more)."""

    def run() -> None:
        call()

    return run


def open_as(root: Path, actor: str) -> Project:
    """A project object acting as ``actor`` (settling open intents when it reads state)."""
    return Project.open(root, environ={**ENV, "LOCKGATE_ACTOR": actor})


def write_atomically(path: Path, text: str, scratch: Path) -> None:
    """Replace ``path`` by a file holding ``text`` in one rename, as editors do.

    A staging that reads the file sees the old bytes or the new ones, never a torn file,
    so a refusal here never stands for the editor's race, only for lockgate's.
    """
    scratch.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=scratch)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    Path(tmp).chmod(0o644)
    Path(tmp).replace(path)


def create_race_project(root: Path) -> None:
    """Three components, each promoted to production (approved by a reviewer), with history."""
    init_project(root)
    (root / "lockgate.yaml").write_text(CONFIG, encoding="utf-8")
    for ref in COMPONENTS:
        directory = component_dir(root, ref)
        directory.mkdir(parents=True)
        (directory / "main.py").write_text("VALUE = 0\n", encoding="utf-8")
        (directory / "lib.py").write_text("LIMIT = 0\n", encoding="utf-8")
        (directory / "README.txt").write_text(f"{ref}, under race test\n", encoding="utf-8")
    (component_dir(root, "alice:calc") / "alias.py").symlink_to(LINK_TEXT)
    project = open_as(root, SETUP_ACTOR)
    try:
        stager, promoter = Stager(project), Promoter(project)
        for ref in COMPONENTS:
            stager.stage(ref)
            promoter.promote(ref, to="staging")
            promoter.promote(ref, to="integration")
            project.actor_override = SETUP_REVIEWER
            decide(project, ref, "approve")
            project.actor_override = None
            promoter.promote(ref, to="production")
        for ref in COMPONENTS:
            (component_dir(root, ref) / "main.py").write_text("VALUE = 1\n", encoding="utf-8")
            stager.stage(ref)
            promoter.promote(ref, to="staging")
    finally:
        project.close()


# --------------------------------------------------------------------------- the worker


class Worker:
    """Random operations on the project until the round ends."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.root = Path(spec["root"])
        self.rng = random.Random(spec["seed"])
        self.journal = Journal(spec["journal"])
        self.author = f"author-{spec['index']}"
        self.reviewer = f"reviewer-{spec['index']}"
        self.cli_share = float(spec["cli_share"])
        self.scratch = self.root / f".race-scratch-{spec['index']}"
        self.open()

    def open(self) -> None:
        self.project = open_as(self.root, self.author)
        self.stager, self.promoter = Stager(self.project), Promoter(self.project)
        self.ladder = self.project.stage_names

    def run(self) -> int:
        deadline = time.monotonic() + float(self.spec["seconds"])
        names, weights = list(OPERATIONS), list(OPERATIONS.values())
        while time.monotonic() < deadline:
            op = self.rng.choices(names, weights)[0]
            via = "cli" if op != "edit" and self.rng.random() < self.cli_share else "api"
            getattr(self, f"op_{op}")(via)
        self.project.close()
        return 0

    # ------------------------------------------------------------------ calling

    def call(
        self,
        op: str,
        via: str,
        api: Callable[[], str | None],
        cli: list[str],
        *,
        reviewer: bool = False,
    ) -> None:
        """Run one operation through the API or the command; journal its outcome.

        ``api`` returns None on success or a word for a result that is a refusal
        (a ``sync`` with failures, a ``verify`` with problems).
        """
        actor = self.reviewer if reviewer else self.author
        begun = time.monotonic()
        if via == "cli":
            outcome, detail = self.run_cli(cli, actor)
        else:
            outcome, detail = self.run_api(api, actor)
        self.journal.write(
            op=op,
            via=via,
            outcome=outcome,
            detail=detail,
            args=cli,
            seconds=round(time.monotonic() - begun, 3),
        )
        if outcome == "violation" and via == "api":
            self.project.close()  # start again from a clean project object
            self.open()

    def run_cli(self, args: list[str], actor: str) -> tuple[str, str]:
        command = [sys.executable, "-m", "lockgate", "-C", str(self.root), *args]
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
                env=_clean_env(LOCKGATE_ACTOR=actor),
            )
        except subprocess.TimeoutExpired:
            return "violation", f"lockgate {' '.join(args)}: no answer in {CLI_TIMEOUT:g} s"
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode == 0:
            return "ok", ""
        if proc.returncode in REFUSALS and "internal error" not in output:
            return f"exit {proc.returncode}", output.splitlines()[-1] if output else ""
        return "violation", f"lockgate {' '.join(args)} exited {proc.returncode}: {output}"

    def run_api(self, api: Callable[[], str | None], actor: str) -> tuple[str, str]:
        self.project.actor_override = actor
        try:
            refused = api()
        except LockgateError as exc:
            if exc.exit_code in REFUSALS:
                return type(exc).__name__, exc.message
            return "violation", traceback.format_exc()
        except Exception:
            return "violation", traceback.format_exc()
        finally:
            self.project.actor_override = None
        return (refused, "") if refused else ("ok", "")

    # ------------------------------------------------------------------ choices

    def pointer_revision(self, stage: str, ref: str) -> str | None:
        pointer = self.project.state().pointer(stage, ref.split(":")[1])
        if pointer is None or pointer.component != ref:
            return None
        return pointer.revision

    def some_revision(self, ref: str) -> str | None:
        """A revision worth deciding on: one about to go up the ladder, or the latest."""
        draw = self.rng.random()
        if draw < 0.45:
            return self.pointer_revision("integration", ref)  # production's candidate
        if draw < 0.7:
            return self.pointer_revision("staging", ref)
        return None  # the latest

    # ------------------------------------------------------------------ operations

    def op_edit(self, via: str) -> None:
        ref = self.rng.choice(COMPONENTS)
        name = self.rng.choice(EDITED)
        if self.rng.random() < 0.03:
            text = "VALUE = (\n"  # a syntax error: the gates refuse this revision
        else:
            text = f"{name[:-3].upper()} = {self.rng.randrange(VALUES)}\n"
        path = component_dir(self.root, ref) / name

        self.call("edit", via, quietly(lambda: write_atomically(path, text, self.scratch)), [])

    def op_stage(self, via: str) -> None:
        ref = self.rng.choice(COMPONENTS)
        self.call("stage", via, quietly(lambda: self.stager.stage(ref)), ["stage", ref])

    def op_sync(self, via: str) -> None:
        def sync() -> str | None:
            return "failures" if self.stager.sync().failures else None

        self.call("sync", via, sync, ["sync"])

    def op_gc(self, via: str) -> None:
        keep, grace = self.rng.choice(KEEPS), self.rng.choice(GRACES)
        self.call(
            "gc",
            via,
            quietly(lambda: collect_garbage(self.project, keep=keep, grace=grace)),
            ["gc", "--keep", str(keep), "--grace", str(grace)],
        )

    def op_promote(self, via: str) -> None:
        ref = self.rng.choice(COMPONENTS)
        to = self.rng.choice([None, *self.ladder, self.ladder[-1]])
        rev = None
        if self.rng.random() < 0.2:
            revisions = self.project.state().revisions(ref)
            if revisions:
                rev = self.rng.choice(revisions).revision[:12]
        cli = ["promote", ref, *(["--to", to] if to else []), *(["--rev", rev] if rev else [])]
        self.call("promote", via, quietly(lambda: self.promoter.promote(ref, to=to, rev=rev)), cli)

    def op_rollback(self, via: str) -> None:
        component_id = self.rng.choice(COMPONENTS).split(":")[1]
        stage = self.rng.choice([None, *self.ladder])
        draw = self.rng.random()
        to: str | None = None
        at: str | None = None
        if draw < 0.35:
            to = "previous"
        elif draw < 0.7:
            to = "last-good"
        elif draw < 0.75:
            to = "none"
        else:
            stage = stage or self.rng.choice(self.ladder)
            history = self.project.state().pointer_history(stage, component_id)
            if history:
                change = self.rng.choice(history)
                if draw < 0.88 and change.revision:
                    to = change.revision[:12]
                else:
                    at = change.at
        cli = [
            "rollback",
            component_id,
            *(["--stage", stage] if stage else []),
            *(["--to", to] if to else []),
            *(["--at", at] if at else []),
        ]
        self.call(
            "rollback",
            via,
            quietly(lambda: self.promoter.rollback(component_id, stage=stage, to=to, at=at)),
            cli,
        )

    def op_reject(self, via: str) -> None:
        ref = self.rng.choice(COMPONENTS)
        rev = self.some_revision(ref)
        reason = "race harness: rejected"
        self.call(
            "reject",
            via,
            quietly(lambda: decide(self.project, ref, "reject", revision=rev, reason=reason)),
            ["reject", ref, "--reason", reason, *(["--rev", rev] if rev else [])],
            reviewer=True,
        )

    def op_approve(self, via: str) -> None:
        ref = self.rng.choice(COMPONENTS)
        rev = self.some_revision(ref)
        self.call(
            "approve",
            via,
            quietly(lambda: decide(self.project, ref, "approve", revision=rev)),
            ["approve", ref, *(["--rev", rev] if rev else [])],
            reviewer=True,
        )

    def op_verify(self, via: str) -> None:
        # Other processes switch stages meanwhile: problems seen half-way are an answer.
        self.call(
            "verify", via, lambda: None if verify(self.project).ok else "problems", ["verify"]
        )


def worker_main(spec: Mapping[str, Any]) -> int:
    """A worker's entry point: anything that escapes is written to its journal."""
    try:
        return Worker(spec).run()
    except BaseException:
        Journal(spec["journal"]).write(
            op="worker", via="api", outcome="violation", detail=traceback.format_exc()
        )
        return 3


# --------------------------------------------------------------------------- checking


@dataclass
class ChainCursor:
    """How far the audit chain was read, and what it said so far."""

    seq: int = 0
    at: dt.datetime | None = None
    where: str = ""
    rejected: set[tuple[str, str]] = field(default_factory=set)


def _describe(event: Any) -> str:
    what = " ".join(str(x) for x in (event.component, event.stage) if x)
    rev = f" {str(event.revision)[:12]}" if event.revision else ""
    return f"event {event.seq} ({event.action} {what}{rev} by {event.actor} at {event.at})"


def chain_problems(project: Project, cursor: ChainCursor) -> list[tuple[str, str]]:
    """Audit times in chain order; promotions and rollbacks onto rejected revisions."""
    problems = []
    state = project.state()
    current = {(p.stage, p.component_id): p.revision for p in state.pointers()}
    for item in state.chain(after=cursor.seq):
        event = item.event
        cursor.seq = max(cursor.seq, event.seq or 0)
        at = dt.datetime.fromisoformat(event.at)
        if cursor.at is not None and at < cursor.at:
            late = (cursor.at - at).total_seconds() * 1000
            problems.append(
                (
                    "audit-time-order",
                    f"{_describe(event)} is {late:.1f} ms earlier than the {cursor.where} "
                    "before it",
                )
            )
        if cursor.at is None or at >= cursor.at:
            cursor.at, cursor.where = at, _describe(event)
        if event.outcome != "ok" or not event.component or not event.revision:
            continue
        key = (event.component, event.revision)
        if event.action == "reject":
            cursor.rejected.add(key)
        elif event.action in ("promote", "rollback") and key in cursor.rejected:
            still = current.get((str(event.stage), event.component.split(":")[1]))
            kind = (
                "promoted-after-reject" if event.action == "promote" else "rollback-onto-rejected"
            )
            problems.append(
                (
                    kind,
                    f"{_describe(event)} made a rejected revision current"
                    + (" (still current)" if still == event.revision else ""),
                )
            )
    return problems


def object_problems(
    content: ContentStore, manifest: Manifest, revision: str, why: str
) -> list[str]:
    """Every object ``revision`` needs that is missing or damaged."""
    problems = []
    lost = content.lost()
    for entry in manifest.entries:
        if entry.kind == "symlink":
            continue  # the link text is in the manifest
        where = f"{entry.digest[:12]} ({revision[:12]}:{entry.path}, {why})"
        if entry.digest in lost or not content.has(entry.digest):
            problems.append(f"object {where} is missing")
        elif not content.verify(entry.digest):
            problems.append(f"object {where} does not match its digest")
    return problems


def needed_revisions(project: Project) -> tuple[dict[str, str], dict[str, str]]:
    """Revisions that must stay deployable ({revision: why}): those stages hold and the
    latest of each component; and those a rollback meaning selects now (a dry run)."""
    state, promoter = project.state(), Promoter(project)
    needed: dict[str, str] = {}
    for record in state.components():
        if record.latest_revision:
            needed.setdefault(record.latest_revision, f"latest of {record.component}")
    selected: dict[str, str] = {}
    for stage in project.stage_names:
        for pointer in state.pointers(stage):
            if pointer.revision:
                needed.setdefault(pointer.revision, f"current in {stage}")
            for meaning in ("previous", "last-good"):
                try:
                    plan = promoter.rollback(
                        pointer.component_id, stage=stage, to=meaning, dry_run=True
                    )
                except LockgateError:
                    continue  # nothing to go back to: refused, and rightly
                if plan.revision:
                    selected.setdefault(
                        plan.revision,
                        f"rollback {pointer.component_id} --stage {stage} --to {meaning}",
                    )
    return needed, selected


def served_problems(project: Project) -> list[str]:
    """Each stage directory entry serves exactly the files of its pointer's revision."""
    state, content, promoter = project.state(), project.content(), Promoter(project)
    problems = []
    for stage in project.stage_names:
        for target in promoter.targets(stage):
            directory = getattr(target, "directory", None)
            if directory is None:
                continue
            for pointer in state.pointers(stage):
                assert pointer.revision is not None
                entry = Path(directory) / pointer.component_id
                where = f"{stage}/{pointer.component_id} ({pointer.revision[:12]})"
                if not entry.is_dir():
                    problems.append(f"{where}: {entry.name} serves nothing")
                    continue
                manifest = content.get_manifest(pointer.revision)
                recorded = {e.path: e for e in manifest.entries}
                on_disk = {
                    p.relative_to(entry).as_posix(): p
                    for p in entry.rglob("*")
                    if p.is_symlink() or not p.is_dir()
                }
                if set(recorded) != set(on_disk):
                    problems.append(
                        f"{where}: serves {sorted(on_disk)}, the revision has {sorted(recorded)}"
                    )
                    continue
                for path, item in recorded.items():
                    file = on_disk[path]
                    if item.kind == "symlink":
                        same = file.is_symlink() and str(file.readlink()) == item.target
                    else:
                        same = not file.is_symlink() and hash_file(file) == item.digest
                    if not same:
                        problems.append(f"{where}: {path} differs from the revision")
    return problems


def check_invariants(root: Path, cursor: ChainCursor) -> list[tuple[str, str]]:
    """Every invariant, with no worker running; (kind, detail) for each problem found."""
    problems: list[tuple[str, str]] = [
        ("intent-left-open", f"{i['operation']} intent {i['id']}: {i['payload']}")
        for i in peek_intents(root)  # read before anything settles them
    ]
    data = inspect_project(root, cursor.seq, thorough=True)  # recovers; crash checks
    problems.extend((str(kind), str(detail)) for kind, detail in data["problems"])
    project = open_project(root)
    try:
        content = project.content()
        needed, selected = needed_revisions(project)
        for kind, revisions in (("objects", needed), ("rollback-target-objects", selected)):
            for revision, why in sorted(revisions.items()):
                try:
                    manifest = content.get_manifest(revision)
                except LockgateError as exc:
                    problems.append((kind, f"{revision[:12]} ({why}): {exc.message}"))
                    continue
                problems.extend(
                    (kind, p) for p in object_problems(content, manifest, revision, why)
                )
        problems.extend(("served", p) for p in served_problems(project))
        problems.extend(chain_problems(project, cursor))
    finally:
        project.close()
    proc = subprocess.run(
        [sys.executable, "-m", "lockgate", "-C", str(root), "verify"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=_clean_env(),
    )
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().replace("\n", " | ")
        problems.append(("cli-verify", f"lockgate verify exited {proc.returncode}: {output}"))
    return problems


# --------------------------------------------------------------------------- the harness


@dataclass
class RaceConfig:
    """What to run."""

    seconds: float = 600.0  # of races, in all (checks come on top)
    workers: int = 4
    seed: int = 1
    round_seconds: float = 20.0  # workers stop for a check this often
    cli_share: float = 0.2  # of the operations (other than edits) run as a command
    workdir: Path | None = None  # None: a temporary directory, kept only when it fails
    tolerate: frozenset[str] = frozenset()
    progress: Callable[[str], None] | None = None


@dataclass
class RaceSummary:
    """What a run did and found."""

    seed: int
    workers: int
    rounds: int = 0
    seconds: float = 0.0
    wall: float = 0.0
    ops: dict[str, Counter[str]] = field(default_factory=dict)  # kind -> outcome -> count
    via: Counter[str] = field(default_factory=Counter)
    checks: int = 0
    events: int = 0
    violations: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    tolerated: frozenset[str] = frozenset()

    @property
    def failing(self) -> dict[str, list[tuple[int, str]]]:
        """Violations of the kinds not tolerated."""
        return {k: v for k, v in self.violations.items() if k not in self.tolerated}

    @property
    def ok(self) -> bool:
        return not self.failing

    def add_violation(self, kind: str, round_: int, detail: str) -> None:
        """Record a violation found in (or after) round ``round_`` (0: at the start)."""
        self.violations.setdefault(kind, []).append((round_, detail))

    def count(self, kind: str, outcome: str) -> int:
        return self.ops.get(kind, Counter())[outcome]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "workers": self.workers,
            "rounds": self.rounds,
            "race_seconds": round(self.seconds, 1),
            "wall_seconds": round(self.wall, 1),
            "operations": {k: dict(sorted(v.items())) for k, v in sorted(self.ops.items())},
            "via": dict(self.via),
            "checks": self.checks,
            "events": self.events,
            "violations": {
                kind: {
                    "reports": len(found),
                    "distinct": len({d for _, d in found}),
                    "first_round": min(r for r, _ in found),
                    "examples": sorted({d for _, d in found})[:5],
                    "tolerated": kind in self.tolerated,
                }
                for kind, found in sorted(self.violations.items())
            },
            "ok": self.ok,
        }

    def report(self) -> str:
        """The human summary the script prints."""
        total = sum(sum(c.values()) for c in self.ops.values())
        lines = [
            f"race harness: seed {self.seed}, {self.workers} workers, {self.seconds:.1f} s "
            f"of races in {self.rounds} rounds ({self.wall:.1f} s wall); {total} operations "
            f"({self.via['api']} API, {self.via['cli']} command line)",
            f"checks: {self.checks}; audit log: {self.events} events",
            f"  {'operation':<10} {'ok':>6} {'refused':>8} {'violation':>10}   refusals",
        ]
        for kind in OPERATIONS:
            outcomes = self.ops.get(kind, Counter())
            refusals = {k: v for k, v in outcomes.items() if k not in ("ok", "violation")}
            detail = ", ".join(f"{k} {v}" for k, v in sorted(refusals.items()))
            lines.append(
                f"  {kind:<10} {outcomes['ok']:>6} {sum(refusals.values()):>8} "
                f"{outcomes['violation']:>10}   {detail}"
            )
        if not self.violations:
            lines.append("invariant violations: none")
        for kind, found in sorted(self.violations.items()):
            note = " (tolerated)" if kind in self.tolerated else ""
            distinct = sorted({d for _, d in found})
            example = "; ".join(d.strip().splitlines()[-1] for d in distinct[:2])
            lines.append(
                f"VIOLATION {kind}{note}: {len(found)} report(s) from round "
                f"{min(r for r, _ in found)} on, {len(distinct)} distinct; e.g. {example}"
            )
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


class RaceHarness:
    """Rounds of concurrent workers on one project, checked after each round."""

    def __init__(self, config: RaceConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.root = workdir / "project"
        self.rng = random.Random(config.seed)
        self.summary = RaceSummary(
            seed=config.seed, workers=config.workers, tolerated=config.tolerate
        )
        self.cursor = ChainCursor()

    def say(self, text: str) -> None:
        if self.config.progress is not None:
            self.config.progress(text)

    def run(self) -> RaceSummary:
        start = time.monotonic()
        create_race_project(self.root)
        self.check(0)
        rounds = max(1, round(self.config.seconds / self.config.round_seconds))
        length = self.config.seconds / rounds
        for number in range(1, rounds + 1):
            began = time.monotonic()
            self.run_round(number, length)
            self.summary.seconds += time.monotonic() - began
            self.summary.rounds = number
            self.check(number)
            failing = sum(len(v) for v in self.summary.failing.values())
            self.say(
                f"round {number}/{rounds}: {time.monotonic() - start:.0f} s, "
                f"{failing} violation report(s)"
            )
        self.summary.wall = time.monotonic() - start
        return self.summary

    def run_round(self, number: int, length: float) -> None:
        """Start every worker, wait for all of them, tally what they journaled."""
        workers = []
        for index in range(self.config.workers):
            journal = self.workdir / f"round-{number}-worker-{index}.jsonl"
            spec = {
                "root": str(self.root),
                "index": index,
                "seed": self.rng.randrange(1 << 32),
                "seconds": length,
                "cli_share": self.config.cli_share,
                "journal": str(journal),
            }
            with open(self.workdir / "worker-stderr.log", "ab") as err:
                proc = subprocess.Popen(
                    [sys.executable, str(HARNESS), "--worker", json.dumps(spec)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=_clean_env(),
                )
            workers.append((proc, journal))
        deadline = time.monotonic() + length + CLI_TIMEOUT + 60.0
        for proc, journal in workers:
            try:
                code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
                self.summary.add_violation(
                    "worker-hang", number, f"a worker ran past its round: {journal.name}"
                )
            if code != 0:
                self.summary.add_violation(
                    "worker-exit", number, f"{journal.name}: the worker exited {code}"
                )
            for record in read_journal(journal):
                kind, outcome = str(record["op"]), str(record["outcome"])
                self.summary.ops.setdefault(kind, Counter())[outcome] += 1
                self.summary.via[str(record["via"])] += 1
                if outcome == "violation":
                    self.summary.add_violation(f"{kind}-{record['via']}", number, record["detail"])

    def check(self, number: int) -> None:
        self.summary.checks += 1
        try:
            problems = check_invariants(self.root, self.cursor)
        except Exception:
            problems = [("check-raised", traceback.format_exc())]
        for kind, detail in problems:
            self.summary.add_violation(kind, number, detail)
        self.summary.events = self.cursor.seq


def run_races(config: RaceConfig) -> RaceSummary:
    """Run the harness (in ``config.workdir``, else a temporary directory)."""
    return in_workdir(
        "race",
        config.workdir,
        lambda workdir: RaceHarness(config, workdir).run(),
        lambda summary: summary.ok,
        lambda _, workdir: print(
            f"race harness: work directory kept for inspection: {workdir}", file=sys.stderr
        ),
    )


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="of races, in all")
    parser.add_argument("--workers", type=int, default=4, help="concurrent processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--round-seconds", type=float, default=20.0, help="between checks")
    parser.add_argument("--cli-share", type=float, default=0.2, help="ops run as a command")
    parser.add_argument("--workdir", type=Path, help="keep the project here (default: temp)")
    parser.add_argument("--tolerate", action="append", default=[], help="violation kind")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one worker
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker_main(json.loads(args.worker))
    config = RaceConfig(
        seconds=args.seconds,
        workers=args.workers,
        seed=args.seed,
        round_seconds=args.round_seconds,
        cli_share=args.cli_share,
        workdir=args.workdir,
        tolerate=frozenset(args.tolerate),
        progress=lambda text: print(text, file=sys.stderr, flush=True),
    )
    summary = run_races(config)
    print(summary.report())
    if args.json is not None:
        args.json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
