"""Crash harness: SIGKILL lockgate at random moments and at named failpoints, then check.

Importable (tests/test_crash.py runs :func:`run_harness`) and runnable as a script for the
long run::

    .venv/bin/python tests/crash_harness.py --kills 2000 --seed 1
    .venv/bin/python tests/crash_harness.py --kills 300 --store postgres   # a server at hand

How it works (details and results: docs/reliability.md):

* a temporary project with a few small components is prepared, promoted up the ladder
  and given some history; its state store is ``sqlite``, or with ``--store postgres``
  the ``postgres`` store, in a database the harness creates on the server
  (``--pg-server``, a libpq string without ``dbname``) and drops afterwards;
* a *zygote* process imports lockgate once and forks one *runner* per kill; the runner
  opens the project (which settles open intents), then performs a random sequence of
  operations in a loop — edit a file and stage it, promote (to a random stage, sometimes
  with ``--rev``), roll back (``previous``, ``last-good``, ``none`` or a revision that was
  live) — through the Python API until it dies. Every so often a runner is started as a
  fresh interpreter instead (``--spawn-every``). The runner journals each operation it
  begins and ends; legitimate refusals (NotReady, Refused, Conflict, Locked) are fine,
  anything else is written with its traceback to ``errors.log`` and fails the run;
* the runner dies either (a) by the harness's SIGKILL after a random delay, or (b) by
  itself at a named failpoint (``LOCKGATE_FAILPOINTS``), or (c) in a *chain*: a first
  runner dies at a switch failpoint, a second one is killed while it recovers (at
  ``recover.after_switch`` or at a random moment) and only then is the project checked;
* after each kill (each chain), the open intents are read without settling them, then a
  NEW project object (every ``--check-every`` checks: a fresh interpreter) opens the
  project and the invariants are checked: no intent stays open, ``verify`` is clean,
  every stage's deployed entries equal its pointers, no temporary symlink is left in a
  stage directory, the audit chain verifies, every recover event says completed or
  undone, each interrupted operation was settled by a recover event consistent with
  its intent (completed: the new revision; undone: the previous one), a failpoint's
  outcome is the one documented for it, and the operation lock is free.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lockgate.contracts.audit import verify_chain
from lockgate.contracts.locks import LockOwner
from lockgate.contracts.manifest import digest_bytes, hash_file
from lockgate.core import failpoints
from lockgate.core.project import Project
from lockgate.core.session import Session
from lockgate.errors import ConflictError, LockedError, NotReadyError, RefusedError
from lockgate.operations.init import init_project
from lockgate.operations.promote import Promoter
from lockgate.operations.recover import settle
from lockgate.operations.stage import Stager
from lockgate.operations.switch import SwitchResult
from lockgate.operations.verify import verify

__all__ = [
    "COMPONENTS",
    "FAILPOINTS",
    "RECOVER_FAILPOINT",
    "SWITCH_FAILPOINTS",
    "HarnessConfig",
    "Summary",
    "create_project",
    "expected_outcome",
    "inspect_project",
    "open_project",
    "run_harness",
]

HARNESS = Path(__file__).resolve()
ENV: dict[str, str] = {
    "LOCKGATE_DISABLE_PLUGINS": "teamdefaults",
    "LOCKGATE_ACTOR": "crash-harness",
}
ACTIONS = ("promote", "rollback")
POINTS = ("after_intent", "after_prepare", "after_switch", "after_record")
SWITCH_FAILPOINTS = tuple(f"{action}.{point}" for action in ACTIONS for point in POINTS)
RECOVER_FAILPOINT = "recover.after_switch"
FAILPOINTS = (*SWITCH_FAILPOINTS, RECOVER_FAILPOINT)
COMPONENTS = ("alice:prep", "alice:calc", "bob:report")
OUTCOMES = ("completed", "undone")
TOLERATED = (NotReadyError, RefusedError, ConflictError)  # ConflictError covers LockedError
LOCK_WAIT = 5.0  # seconds: the operation lock must be free at once after a kill
TEMP_MARK = ".tmp-"
LINK_TEXT = "main.py"  # alice:calc/alias.py is a symlink to main.py
LINK_DIGEST = digest_bytes(LINK_TEXT.encode())


def expected_outcome(failpoint: str) -> str:
    """What recovery must decide for an operation killed at ``failpoint``."""
    return "completed" if failpoint.endswith(".after_record") else "undone"


# --------------------------------------------------------------------------- the project


def open_project(root: Path, *, recover: bool = True) -> Project:
    """A NEW project object for ``root``; ``recover=False`` leaves open intents open."""
    project = Project.open(root, environ=ENV)
    project.recover_on_open = recover
    return project


def component_dir(root: Path, ref: str) -> Path:
    """Where component ``WS:ID`` lives in the workspaces."""
    workspace, component_id = ref.split(":")
    return root / "workspaces" / workspace / "builders" / component_id


def create_project(root: Path, postgres: PostgresPlace | None = None) -> None:
    """A small project: three components, each promoted some way up, with history (its
    state in ``postgres`` when given)."""
    init_project(root)
    if postgres is not None:
        use_postgres(root, postgres)
    for ref in COMPONENTS:
        directory = component_dir(root, ref)
        directory.mkdir(parents=True)
        (directory / "main.py").write_text("VALUE = 0\n", encoding="utf-8")
        (directory / "README.txt").write_text(f"{ref}, under crash test\n", encoding="utf-8")
    (component_dir(root, "alice:calc") / "alias.py").symlink_to(LINK_TEXT)
    project = open_project(root)
    try:
        stager, promoter = Stager(project), Promoter(project)
        for ref in COMPONENTS:
            stager.stage(ref)
        for stage in project.stage_names:
            promoter.promote("alice:prep", to=stage)
            promoter.promote("alice:calc", to=stage)
        for ref in COMPONENTS:
            (component_dir(root, ref) / "main.py").write_text("VALUE = 1\n", encoding="utf-8")
            stager.stage(ref)
            promoter.promote(ref, to=project.stage_names[0])
    finally:
        project.close()


@dataclass(frozen=True)
class PostgresPlace:
    """Where the ``postgres`` state store keeps the harness's project."""

    dsn: str  # with dbname
    project: str


def use_postgres(root: Path, place: PostgresPlace) -> None:
    """Switch the project's state store to ``postgres`` (content stays ``local``)."""
    config = root / "lockgate.yaml"
    text = config.read_text(encoding="utf-8")
    settings = (
        f"  postgres:\n    dsn: {json.dumps(place.dsn)}\n    project: {place.project}\n"
        "    pool_size: 2\n"
    )
    text = text.replace("plugins:\n  disable: []\n", "plugins:\n  disable: []\n" + settings)
    assert settings in text, "lockgate init's starter configuration changed"
    config.write_text(text + "state:\n  store: postgres\n", encoding="utf-8")


@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[PostgresPlace]:
    """A database of the harness's own on ``server`` (libpq, no dbname), dropped after."""
    import uuid

    import psycopg
    from psycopg import sql

    name = f"lockgate_crash_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PostgresPlace(f"{server} dbname={name}", "crash-harness")
    finally:
        with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------- the runner


class Journal:
    """One JSON line per step, appended unbuffered (a SIGKILL loses nothing written)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, **record: Any) -> None:
        os.write(self.fd, (json.dumps(record, sort_keys=True) + "\n").encode())


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The records a runner journaled (a torn last line is skipped)."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


WEIGHTS: dict[str | None, dict[str, int]] = {
    None: {"edit": 3, "promote": 4, "rollback": 3},
    "promote": {"edit": 2, "promote": 6, "rollback": 1},
    "rollback": {"edit": 1, "promote": 2, "rollback": 6},
}


class Runner:
    """Random operations on the project, in a loop, until killed (or out of time)."""

    def __init__(self, spec: Mapping[str, Any], ready_fd: int | None) -> None:
        self.spec = spec
        self.ready_fd = ready_fd
        self.root = Path(spec["root"])
        self.rng = random.Random(spec["seed"])
        self.journal = Journal(spec["journal"])

    def run(self) -> int:
        self.journal.write(e="open", pid=os.getpid(), failpoints=self.spec["failpoints"])
        project = open_project(self.root)
        if self.ready_fd is not None:
            os.write(self.ready_fd, b"R")
        self.journal.write(e="begin", op="recover")
        session = Session(project)
        settle(session)  # what an earlier crash left open, as every operation does first
        state = session.state()
        self.journal.write(e="end", op="recover", result="ok")
        if self.spec["mode"] == "recover-only":
            return 0
        self.project, self.state = project, state
        if self.ready_fd is not None:
            self.announce_intents(state)
        self.stager, self.promoter = Stager(session), Promoter(session)
        self.ladder = project.stage_names
        weights = WEIGHTS[self.spec.get("focus")]
        names, counts = list(weights), list(weights.values())
        deadline = time.monotonic() + float(self.spec["max_seconds"])
        while time.monotonic() < deadline:
            op = self.rng.choices(names, counts)[0]
            getattr(self, f"op_{op}")()
        return 0

    def announce_intents(self, state: Any) -> None:
        """Tell the supervisor (``I`` on the ready pipe) when a switch has opened its intent.

        Instrumentation of this process's state-store object only: an aimed kill then
        lands at a random moment of the switch's critical section (deploy, record).
        """
        open_intent = state.open_intent
        ready_fd = self.ready_fd
        assert ready_fd is not None

        def announcing(intent: Any) -> None:
            open_intent(intent)
            os.write(ready_fd, b"I")

        state.open_intent = announcing

    def step(self, op: str, call: Callable[[], Any], **args: Any) -> Any:
        """Run one journaled operation; a legitimate refusal is recorded, not raised."""
        self.journal.write(e="begin", op=op, **args)
        try:
            result = call()
        except TOLERATED as exc:
            self.journal.write(e="end", op=op, result=type(exc).__name__)
            return None
        self.journal.write(e="end", op=op, result="ok")
        return result

    # ------------------------------------------------------------------ operations

    def op_edit(self) -> None:
        ref = self.rng.choice(COMPONENTS)
        directory = component_dir(self.root, ref)
        if self.rng.random() < 0.03:
            text = "VALUE = (\n"  # a syntax error: the gate refuses this revision
        else:
            text = f"VALUE = {self.rng.randrange(1 << 40)}\n"
        toggle = self.rng.random() < 0.15

        def edit() -> None:
            (directory / "main.py").write_text(text, encoding="utf-8")
            if toggle:
                extra = directory / "extra.py"
                if extra.exists():
                    extra.unlink()
                else:
                    extra.write_text(f"EXTRA = {len(text)}\n", encoding="utf-8")

        self.step("edit", edit, ref=ref)
        result = self.step("stage", lambda: self.stager.stage(ref), ref=ref)
        if result is not None:
            self.check_staged(ref, result.revision)

    def op_promote(self) -> None:
        ref = self.rng.choice(COMPONENTS)
        to = self.rng.choice([None, *self.ladder])
        rev = None
        if self.rng.random() < 0.25:
            revisions = self.state.revisions(ref)
            if revisions:
                rev = self.rng.choice(revisions).revision[:12]
        result = self.step(
            "promote",
            lambda: self.promoter.promote(ref, to=to, rev=rev),
            ref=ref,
            to=to,
            rev=rev,
        )
        if result is not None:
            self.check_switch(result)

    def op_rollback(self) -> None:
        component_id = self.rng.choice(sorted({r.split(":")[1] for r in COMPONENTS}))
        stage = self.rng.choice([None, *self.ladder])
        to = self.rng.choice(["previous", "last-good", "none", "rev"])
        if to == "rev":
            stage = stage or self.rng.choice(self.ladder)
            live = [c.revision for c in self.state.pointer_history(stage, component_id)]
            live = [r for r in live if r]
            to = self.rng.choice(live)[:12] if live else "previous"
        remove_if_none = self.rng.random() < 0.25
        result = self.step(
            "rollback",
            lambda: self.promoter.rollback(
                component_id, stage=stage, to=to, remove_if_none=remove_if_none
            ),
            component_id=component_id,
            stage=stage,
            to=to,
        )
        if result is not None:
            self.check_switch(result)

    # ------------------------------------------------------------------ runner-side checks

    def check_staged(self, ref: str, revision: str) -> None:
        """The revision staging returned holds exactly the files on disk."""
        directory = component_dir(self.root, ref)
        manifest = self.project.content().get_manifest(revision)
        recorded = {e.path: e for e in manifest.entries}
        on_disk = {
            p.relative_to(directory).as_posix(): p
            for p in directory.rglob("*")
            if p.is_symlink() or not p.is_dir()
        }
        if set(recorded) != set(on_disk):
            raise AssertionError(
                f"{ref} {revision[:12]}: records {sorted(recorded)}, disk has {sorted(on_disk)}"
            )
        for path, entry in recorded.items():
            file = on_disk[path]
            if entry.kind == "symlink":
                ok = file.is_symlink() and str(file.readlink()) == entry.target
            else:
                ok = not file.is_symlink() and hash_file(file) == entry.digest
            if not ok:
                raise AssertionError(f"{ref} {revision[:12]}: {path} differs from its record")

    def check_switch(self, result: SwitchResult) -> None:
        """After a switch returned: the pointer and every target show its revision."""
        pointer = self.state.pointer(result.stage, result.component_id)
        now = pointer.revision if pointer else None
        if now != result.revision:
            raise AssertionError(f"{result.summary()}, but the pointer says {now}")
        for target in self.promoter.targets(result.stage):
            deployed = target.deployed().get(result.component_id)
            if deployed != result.revision:
                raise AssertionError(f"{result.summary()}, but the target shows {deployed}")


def child_main(spec: Mapping[str, Any], ready_fd: int | None) -> int:
    """The runner's entry point: its exit code, its traceback in ``errors.log``."""
    try:
        return Runner(spec, ready_fd).run()
    except BaseException:
        with open(spec["errors"], "a", encoding="utf-8") as fh:
            fh.write(
                f"--- runner pid {os.getpid()} seed {spec['seed']} "
                f"failpoints {spec['failpoints']!r}\n{traceback.format_exc()}\n"
            )
        return 3


# --------------------------------------------------------------------------- launching and killing


def _readable(fd: int, until: float) -> bool:
    """Wait (at most until the monotonic time ``until``) for ``fd`` to be readable."""
    remaining = max(0.0, until - time.monotonic())
    readable, _, _ = select.select([fd], [], [], remaining)
    return bool(readable)


def supervise(ready_r: int, job: Mapping[str, Any], kill: Callable[[], None]) -> dict[str, Any]:
    """Watch a runner through its ready pipe (EOF: it died); kill it when its time comes.

    ``job["delay"]`` None: wait for the runner to die by itself (a failpoint) at most
    ``job["timeout"]`` seconds; otherwise SIGKILL it ``delay`` seconds after it is ready
    (``delay_from == "ready"``), after it was started (``"fork"``) or after its first
    switch opened its intent (``"intent"``: the runner writes ``I`` then).
    """
    start = time.monotonic()
    timeout_at = start + float(job["timeout"])
    delay, origin = job["delay"], job["delay_from"]
    kill_at = timeout_at
    armed = False  # the kill time is set (it is the timeout until then)
    if delay is not None and origin == "fork":
        kill_at, armed = min(timeout_at, start + float(delay)), True
    signals = {b"R": "ready", b"I": "intent"}
    ready_after = None
    killed = False
    while True:
        if not _readable(ready_r, kill_at):
            kill()
            killed = True
            break
        data = os.read(ready_r, 1)
        if not data:
            break  # EOF: the runner died by itself
        if data == b"R":
            ready_after = time.monotonic() - start
        if delay is not None and not armed and signals.get(data) == origin:
            kill_at, armed = min(timeout_at, time.monotonic() + float(delay)), True
    return {
        "harness_killed": killed,
        "timed_out": killed and time.monotonic() >= timeout_at,
        "ready_after": ready_after,
        "alive": time.monotonic() - start,
    }


def _status(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status), "exit": None}
    return {"signal": None, "exit": os.WEXITSTATUS(status)}


def fork_runner(job: Mapping[str, Any]) -> dict[str, Any]:
    """(In the zygote.) Fork a runner for ``job``, supervise it, reap it."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the runner: never returns
        code = 3
        try:
            os.close(ready_r)
            err = os.open(job["stderr"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)  # stdout is the zygote's answer channel
            os.dup2(err, 2)
            os.environ["LOCKGATE_FAILPOINTS"] = job["failpoints"]
            failpoints._ACTIVE = None  # read LOCKGATE_FAILPOINTS again, in this process
            code = child_main(job, ready_w)
        finally:
            os._exit(code)
    os.close(ready_w)
    try:
        result = supervise(ready_r, job, lambda: os.kill(pid, signal.SIGKILL))
    finally:
        os.close(ready_r)
    _, status = os.waitpid(pid, 0)
    return {**result, **_status(status), "pid": pid}


def import_lockgate() -> None:
    """Import every core and builtin-plugin module now (lockgate imports some lazily).

    The zygote's runners then share one snapshot of the code, which also spares each of
    them the imports.
    """
    import lockgate

    for module in pkgutil.walk_packages(lockgate.__path__, "lockgate."):
        if module.name.startswith(("lockgate.core.", "lockgate.builtin_plugins.")):
            importlib.import_module(module.name)
    with contextlib.suppress(ImportError):  # the postgres stores, when installed
        import lockgate_postgres

        for module in pkgutil.walk_packages(lockgate_postgres.__path__, "lockgate_postgres."):
            importlib.import_module(module.name)


def zygote_main(root: Path) -> int:
    """Import lockgate once, warm up, then fork one runner per job line on stdin."""
    import_lockgate()
    project = open_project(root, recover=False)  # loads the plugins; no state, no intent
    project.close()
    os.write(1, b"ready\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = fork_runner(json.loads(line))
        os.write(1, (json.dumps(answer) + "\n").encode())
    return 0


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE")}
    env.update(ENV)
    env.update(extra)
    return env


class Zygote:
    """The forking server, seen from the harness."""

    def __init__(self, root: Path, stderr: Path) -> None:
        with open(stderr, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HARNESS), "--zygote", str(root)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=_clean_env(),
            )
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.fileno()
        self.buffer = b""
        if self.readline(120.0) != "ready":
            raise RuntimeError(f"the zygote did not start (see {stderr})")

    def readline(self, timeout: float) -> str:
        until = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if not _readable(self.out, until):
                raise RuntimeError(f"the zygote did not answer within {timeout:g} s")
            chunk = os.read(self.out, 65536)
            if not chunk:
                raise RuntimeError("the zygote died")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def run(self, job: Mapping[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.readline(float(job["timeout"]) + 60.0))
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def spawn_runner(job: Mapping[str, Any]) -> dict[str, Any]:
    """Run a runner in a fresh interpreter (imports everything itself), supervise it."""
    ready_r, ready_w = os.pipe()
    try:
        with open(job["stderr"], "ab") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(HARNESS),
                    "--child",
                    json.dumps(job),
                    "--ready-fd",
                    str(ready_w),
                ],
                pass_fds=(ready_w,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=_clean_env(LOCKGATE_FAILPOINTS=job["failpoints"]),
            )
    finally:
        os.close(ready_w)
    try:
        result = supervise(ready_r, job, proc.kill)
    finally:
        os.close(ready_r)
    code = proc.wait(timeout=60)
    status = {"signal": -code, "exit": None} if code < 0 else {"signal": None, "exit": code}
    return {**result, **status, "pid": proc.pid}


# --------------------------------------------------------------------------- checking


def peek_intents(root: Path) -> list[dict[str, Any]]:
    """The open intents, read without settling them."""
    project = open_project(root, recover=False)
    try:
        return [
            {"id": i.id, "operation": i.operation, "payload": dict(i.payload)}
            for i in project.state().open_intents()
        ]
    finally:
        project.close()


def _short(revision: object) -> str:
    return str(revision)[:12] if revision else "none"


def _verify_kind(problem: str) -> str:
    """The violation kind of one of verify()'s problems.

    ``verify-symlink-object`` is the known false alarm about a symlink's digest: verify()
    looks up every manifest entry's digest in the content store, but a symlink entry's
    digest is that of its link text, which staging never stores; so a component holding
    a symlink always "misses" one object (see docs/reliability.md, Findings).
    """
    if problem.startswith(f"object {LINK_DIGEST[:12]} (") and problem.endswith("is missing"):
        return "verify-symlink-object"
    if problem.startswith("audit log:"):
        return "audit-chain"
    if "was left by an interrupted switch" in problem:
        return "leftover-temp-link"
    return "verify"


def inspect_project(root: Path, since_seq: int, *, thorough: bool = False) -> dict[str, Any]:
    """Open ``root`` with a NEW project object (settling intents); report what it finds.

    Plain data (JSON-able), so a fresh interpreter can run it: ``--check ROOT``.
    ``thorough`` adds an SQLite integrity check of the state database (when it is one).
    """
    problems: list[tuple[str, str]] = []
    project = open_project(root)
    try:
        settle(Session(project))  # every open intent, as an operation does first
        state = project.state()
        for intent in state.open_intents():
            problems.append(("open-intent", f"{intent.operation} intent {intent.id} still open"))
        report = verify(project)
        problems.extend((_verify_kind(p), p) for p in report.problems)
        promoter = Promoter(project)
        for stage in project.stage_names:
            pointers = {p.component_id: p for p in state.pointers(stage)}
            revisions = {cid: p.revision for cid, p in pointers.items()}
            for target in promoter.targets(stage):
                deployed = target.deployed()
                if deployed != revisions:
                    problems.append(
                        (
                            "deployed-mismatch",
                            f"{stage}: deployed "
                            f"{ {k: _short(v) for k, v in sorted(deployed.items())} } "
                            f"!= pointers { {k: _short(v) for k, v in sorted(revisions.items())} }",
                        )
                    )
                directory = getattr(target, "directory", None)
                if directory is not None and Path(directory).is_dir():
                    problems.extend(
                        ("leftover-temp-link", f"{stage}/{entry.name}")
                        for entry in Path(directory).iterdir()
                        if TEMP_MARK in entry.name
                    )
            for cid, pointer in sorted(pointers.items()):
                history = state.pointer_history(stage, cid)
                if (
                    not history
                    or history[-1].revision != pointer.revision
                    or len(history) != pointer.generation
                ):
                    problems.append(
                        (
                            "pointer-history",
                            f"{stage}/{cid} at generation {pointer.generation} "
                            f"({_short(pointer.revision)}), history has {len(history)} changes",
                        )
                    )
                known = {r.revision for r in state.revisions(pointer.component)}
                if pointer.revision not in known:
                    problems.append(
                        (
                            "pointer-unknown-revision",
                            f"{stage}/{cid} -> {_short(pointer.revision)}, not a revision of "
                            f"{pointer.component}",
                        )
                    )
        events = report.checked.get("events", 0)  # verify() verified the chain too
        if thorough:
            chain = verify_chain(state.chain())
            events = chain.events
            if not chain.ok:
                problems.append(
                    ("audit-chain", f"broken at {chain.first_bad_seq}: {chain.problem}")
                )
        recovered = []
        last_seq = since_seq
        for item in state.chain(after=since_seq):
            event = item.event
            last_seq = max(last_seq, event.seq or 0)
            if event.action != "recover":
                continue
            details = event.details
            recovered.append(
                {
                    "seq": event.seq,
                    "intent": details.get("intent"),
                    "operation": details.get("operation"),
                    "outcome": details.get("outcome"),
                    "revision": event.revision,
                    "intended": details.get("intended_revision"),
                }
            )
        try:
            owner = LockOwner.current("crash-harness-check")
            with state.lock("operation", owner=owner, lease=300, timeout=LOCK_WAIT):
                pass
        except LockedError as exc:
            problems.append(("lock-held", exc.message))
        if thorough and project.config.state.store == "sqlite":
            db = sqlite3.connect(project.state_dir / "state.db")
            try:
                verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                db.close()
            if verdict != "ok":
                problems.append(("db-integrity", str(verdict)))
    finally:
        project.close()
    return {
        "problems": [list(p) for p in problems],
        "recovered": recovered,
        "last_seq": last_seq,
        "events": events,
    }


def inspect_in_fresh_process(root: Path, since_seq: int) -> dict[str, Any]:
    """:func:`inspect_project` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, str(HARNESS), "--check", str(root), "--since", str(since_seq)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh-process check failed ({proc.returncode}): {proc.stderr}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def scan_leftovers(root: Path) -> dict[str, int]:
    """Temporary files left in .lockgate/ (informational: none is an invariant)."""
    found: Counter[str] = Counter()
    state_dir = root / ".lockgate"
    releases = state_dir / "releases"
    if releases.is_dir():
        for entry in releases.iterdir():
            if entry.name.startswith(TEMP_MARK):
                found["releases/.tmp-* (unfinished release directories)"] += 1
            elif ".verified." in entry.name:
                found["releases/*.verified.* (unfinished stamps)"] += 1
    tmp = state_dir / "objects" / "tmp"
    if tmp.is_dir():
        count = sum(1 for _ in tmp.iterdir())
        if count:
            found["objects/tmp/* (unfinished objects)"] += count
    for path in state_dir.rglob("*.tmp"):
        found[f"{path.parent.relative_to(state_dir).parts[0]}/**/*.tmp"] += 1
    return dict(found)


# --------------------------------------------------------------------------- the harness


@dataclass
class HarnessConfig:
    """What to run."""

    kills: int = 200
    seed: int = 1
    workdir: Path | None = None  # None: a temporary directory, removed afterwards
    check_every: int = 25  # every Nth check runs in a fresh interpreter
    spawn_every: int = 50  # every Nth runner is a fresh interpreter instead of a fork
    max_delay: float = 0.08  # random kills: up to this long after the runner is ready
    failpoint_timeout: float = 30.0
    tolerate: frozenset[str] = frozenset()  # violation kinds counted but not failing
    cli_checks: bool = True
    postgres: PostgresPlace | None = None  # None: the sqlite state store
    progress: Callable[[str], None] | None = None


@dataclass
class Pending:
    """An intent a kill left open, waiting for the next check."""

    kill: int
    kind: str
    expected: str | None
    payload: dict[str, Any]


@dataclass
class Summary:
    """What a run did and found."""

    seed: int
    store: str = "sqlite"
    kills: int = 0
    wall: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)  # runner wall time, by kind
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    inflight: Counter[str] = field(default_factory=Counter)
    ops: Counter[str] = field(default_factory=Counter)
    spawned: int = 0
    checks: int = 0
    fresh_checks: int = 0
    events: int = 0
    rerecovered: int = 0  # intents settled by more than one recover event
    violations: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    leftovers: dict[str, int] = field(default_factory=dict)
    tolerated: frozenset[str] = frozenset()

    @property
    def failing(self) -> dict[str, list[tuple[int, str]]]:
        """Violations of the kinds not tolerated."""
        return {k: v for k, v in self.violations.items() if k not in self.tolerated}

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failing

    def add_violation(self, kind: str, kill: int, detail: str) -> None:
        """Record a violation found after kill number ``kill`` (0: before any)."""
        self.violations.setdefault(kind, []).append((kill, detail))

    def tally(self, kind: str, outcome: str) -> None:
        self.outcomes.setdefault(kind, Counter())[outcome] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "state_store": self.store,
            "kills": self.kills,
            "wall_seconds": round(self.wall, 1),
            "kinds": dict(sorted(self.kinds.items())),
            "runner_seconds": {k: round(v, 2) for k, v in sorted(self.seconds.items())},
            "outcomes": {k: dict(sorted(v.items())) for k, v in sorted(self.outcomes.items())},
            "random_kills_in_flight": dict(self.inflight.most_common()),
            "operations": dict(sorted(self.ops.items())),
            "spawned_runners": self.spawned,
            "checks": self.checks,
            "fresh_process_checks": self.fresh_checks,
            "events": self.events,
            "intents_recovered_twice": self.rerecovered,
            "violations": {
                kind: {
                    "reports": len(found),
                    "distinct": len({d for _, d in found}),
                    "first_kill": min(k for k, _ in found),
                    "examples": sorted({d for _, d in found})[:5],
                    "tolerated": kind in self.tolerated,
                }
                for kind, found in sorted(self.violations.items())
            },
            "errors": self.errors,
            "leftovers": self.leftovers,
            "ok": self.ok,
        }

    def report(self) -> str:
        """The human summary the script prints."""
        lines = [
            f"crash harness ({self.store} state store): seed {self.seed}, "
            f"{self.kills} kills in {self.wall:.1f} s "
            f"({1000 * self.wall / max(1, self.kills):.0f} ms per kill); "
            f"{self.spawned} runners were fresh interpreters",
            f"checks: {self.checks} ({self.fresh_checks} in a fresh interpreter); "
            f"audit log: {self.events} events",
            "kills by kind (mean runner lifetime), and what recovery did with the operation "
            "each one interrupted:",
        ]
        for kind in sorted(self.kinds):
            outcomes = self.outcomes.get(kind, Counter())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            mean = 1000 * self.seconds[kind] / self.kinds[kind]
            lines.append(f"  {kind:<24} {self.kinds[kind]:>5} {mean:>5.0f} ms   {detail}")
        inflight = ", ".join(f"{k} {v}" for k, v in self.inflight.most_common())
        lines.append(f"random kills, by the runner's step in flight: {inflight}")
        lines.append(
            f"intents settled by more than one recover event (a recovery killed between "
            f"its audit event and closing the intent): {self.rerecovered}"
        )
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items()))
        lines.append(f"operations the runners finished: {ops}")
        if self.leftovers:
            junk = ", ".join(f"{k}: {v}" for k, v in sorted(self.leftovers.items()))
            lines.append(f"temporary files left in .lockgate/ (informational): {junk}")
        if not self.violations:
            lines.append("invariant violations: none")
        for kind, found in sorted(self.violations.items()):
            note = " (tolerated: known bug)" if kind in self.tolerated else ""
            distinct = sorted({d for _, d in found})
            lines.append(
                f"VIOLATION {kind}{note}: reported by {len(found)} check(s) from kill "
                f"{min(k for k, _ in found)} on, {len(distinct)} distinct; "
                f"e.g. {'; '.join(d.splitlines()[-1] for d in distinct[:3])}"
            )
        lines.extend(f"ERROR {e}" for e in self.errors)
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


@dataclass
class Step:
    """One item of the plan: a random kill, a failpoint kill, or a chain of two kills."""

    kind: str  # "random", "failpoint", "chain"
    failpoint: str | None = None
    second: str | None = None  # chain: RECOVER_FAILPOINT or "random"


def make_plan(kills: int, rng: random.Random) -> list[Step]:
    """Random kills, failpoint kills (every failpoint in turn) and recovery chains."""

    def cycle() -> Iterator[str]:
        while True:
            order = list(SWITCH_FAILPOINTS)
            rng.shuffle(order)
            yield from order

    points, setups = cycle(), cycle()
    plan: list[Step] = []
    left = kills
    while left > 0:
        draw = rng.random()
        if left >= 2 and draw < 0.10:
            plan.append(Step("chain", next(setups), RECOVER_FAILPOINT))
            left -= 2
        elif left >= 2 and draw < 0.15:
            plan.append(Step("chain", next(setups), "random"))
            left -= 2
        elif draw < 0.55:
            plan.append(Step("failpoint", next(points)))
            left -= 1
        else:
            plan.append(Step("random"))
            left -= 1
    return plan


@dataclass
class Killed:
    """One kill: its number, its kind, and the intents it left open."""

    number: int
    kind: str
    intents: list[str]


class Harness:
    """Runs a plan of kills against one project and checks it after each."""

    def __init__(self, config: HarnessConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.root = workdir / "project"
        self.journal = workdir / "journal.log"
        self.errors = workdir / "errors.log"
        self.stderr = workdir / "runner-stderr.log"
        self.rng = random.Random(config.seed)
        self.summary = Summary(
            seed=config.seed,
            store="sqlite" if config.postgres is None else "postgres",
            tolerated=config.tolerate,
        )
        self.pending: dict[str, Pending] = {}
        self.last_seq = 0
        self.errors_seen = 0
        self.zygote: Zygote | None = None

    def say(self, text: str) -> None:
        if self.config.progress is not None:
            self.config.progress(text)

    # ------------------------------------------------------------------ the run

    def run(self) -> Summary:
        start = time.monotonic()
        create_project(self.root, self.config.postgres)
        baseline = inspect_project(self.root, 0, thorough=True)
        for kind, detail in baseline["problems"]:
            self.summary.add_violation(kind, 0, detail)
        self.last_seq = baseline["last_seq"]
        self.zygote = Zygote(self.root, self.workdir / "zygote-stderr.log")
        try:
            plan = make_plan(self.config.kills, self.rng)
            for number, step in enumerate(plan, 1):
                self.run_step(step)
                if number % 50 == 0:
                    failing = sum(len(v) for v in self.summary.failing.values())
                    self.say(
                        f"{self.summary.kills} kills, {time.monotonic() - start:.0f} s, "
                        f"{failing} violation reports, {len(self.summary.errors)} errors"
                    )
        finally:
            self.zygote.close()
        self.check(fresh=True)
        if self.config.cli_checks:
            self.cli_checks()
        self.summary.leftovers = scan_leftovers(self.root)
        self.summary.wall = time.monotonic() - start
        return self.summary

    def run_step(self, step: Step) -> None:
        killed: list[Killed] = []
        if step.kind == "random":
            killed.append(self.kill_random())
        else:
            assert step.failpoint is not None
            killed.append(self.kill_at(step.failpoint))
            if step.second == RECOVER_FAILPOINT:
                killed.append(self.kill_in_recovery())
            elif step.second == "random":
                killed.append(self.kill_random(in_recovery=True))
        fresh = self.summary.checks % max(1, self.config.check_every) == 0
        outcomes = self.check(fresh=fresh)
        for kill in killed:
            if not kill.intents:
                self.summary.tally(kill.kind, "no open intent")
            for intent in kill.intents:
                self.summary.tally(kill.kind, outcomes.get(intent, "unsettled"))

    # ------------------------------------------------------------------ kills

    def job(
        self,
        *,
        failpoints: str = "",
        delay: float | None = None,
        delay_from: str = "ready",
        focus: str | None = None,
        mode: str = "ops",
    ) -> dict[str, Any]:
        self.journal.write_text("", encoding="utf-8")
        return {
            "root": str(self.root),
            "seed": self.rng.randrange(1 << 32),
            "failpoints": failpoints,
            "delay": delay,
            "delay_from": delay_from,
            "focus": focus,
            "mode": mode,
            "journal": str(self.journal),
            "errors": str(self.errors),
            "stderr": str(self.stderr),
            "timeout": self.config.failpoint_timeout,
            "max_seconds": self.config.failpoint_timeout + 5.0,
        }

    def launch(self, job: Mapping[str, Any]) -> dict[str, Any]:
        self.summary.kills += 1
        every = self.config.spawn_every
        if every and self.summary.kills % every == 0:
            self.summary.spawned += 1
            return spawn_runner(job)
        assert self.zygote is not None
        return self.zygote.run(job)

    def after_kill(
        self, kind: str, job: Mapping[str, Any], result: Mapping[str, Any], *, by_harness: bool
    ) -> tuple[list[dict[str, Any]], str]:
        """Common bookkeeping: errors, journal, how it died; the intents newly open."""
        number = self.summary.kills
        self.summary.kinds[kind] += 1
        self.summary.seconds[kind] += float(result.get("alive", 0.0))
        size = self.errors.stat().st_size if self.errors.exists() else 0
        if size > self.errors_seen:
            with open(self.errors, encoding="utf-8") as fh:
                fh.seek(self.errors_seen)
                text = fh.read()
            self.errors_seen = size
            self.summary.errors.append(f"kill {number} ({kind}): runner raised:\n{text.strip()}")
        records = read_journal(self.journal)
        for record in records:
            if record.get("e") == "end":
                self.summary.ops[f"{record['op']} {record['result']}"] += 1
        last = records[-1] if records else {"e": "start"}
        inflight = str(last["op"]) if last.get("e") == "begin" else f"between steps ({last['e']})"
        if result.get("signal") != signal.SIGKILL:
            self.summary.errors.append(
                f"kill {number} ({kind}): the runner was not SIGKILLed: {dict(result)}"
            )
        elif result["harness_killed"] != by_harness:
            why = (
                "the runner died before the harness killed it"
                if by_harness
                else f"failpoint {job['failpoints']} not reached within {job['timeout']:g} s"
            )
            self.summary.errors.append(f"kill {number} ({kind}): {why}")
        opened = [i for i in peek_intents(self.root) if i["id"] not in self.pending]
        return opened, inflight

    def kill_random(self, *, in_recovery: bool = False) -> Killed:
        """SIGKILL a runner after a random delay (``in_recovery``: a short one)."""
        draw = self.rng.random()
        if in_recovery:
            kind, delay, origin = "random-in-recovery", self.rng.uniform(0.0, 0.02), "ready"
        elif draw < 0.1:
            kind, delay, origin = "random-early", self.rng.uniform(0.0, 0.05), "fork"
        elif draw < 0.5:
            kind, delay, origin = "random-in-switch", self.rng.uniform(0.0, 0.005), "intent"
        else:
            kind, delay, origin = "random", self.rng.uniform(0.0, self.config.max_delay), "ready"
        job = self.job(delay=delay, delay_from=origin)
        result = self.launch(job)
        number = self.summary.kills
        opened, inflight = self.after_kill(kind, job, result, by_harness=True)
        self.summary.inflight[inflight] += 1
        if len(opened) > 1:
            self.summary.add_violation("intents", number, f"{len(opened)} intents left open")
        for intent in opened:
            self.pending[intent["id"]] = Pending(number, kind, None, intent["payload"])
        return Killed(number, kind, [i["id"] for i in opened])

    def kill_at(self, failpoint: str) -> Killed:
        """Let a runner die at a switch failpoint; it must leave one intent open."""
        action = failpoint.split(".")[0]
        job = self.job(failpoints=failpoint, focus=action)
        result = self.launch(job)
        number = self.summary.kills
        opened, _ = self.after_kill(failpoint, job, result, by_harness=False)
        if len(opened) != 1 or opened[0]["operation"] != action:
            self.summary.add_violation(
                "failpoint-intent",
                number,
                f"{failpoint} left {[i['operation'] for i in opened]} open, not one {action}",
            )
        expected = expected_outcome(failpoint)
        for intent in opened:
            self.pending[intent["id"]] = Pending(number, failpoint, expected, intent["payload"])
        return Killed(number, failpoint, [i["id"] for i in opened])

    def kill_in_recovery(self) -> Killed:
        """Let a runner die at ``recover.after_switch``, settling what the last kill left."""
        before = set(self.pending)
        job = self.job(failpoints=RECOVER_FAILPOINT, mode="recover-only")
        result = self.launch(job)
        number = self.summary.kills
        opened, _ = self.after_kill(RECOVER_FAILPOINT, job, result, by_harness=False)
        still = {i["id"] for i in peek_intents(self.root)}
        if opened or not before or not before <= still:
            self.summary.add_violation(
                "recover-failpoint", number, f"open before {sorted(before)}, after {sorted(still)}"
            )
        return Killed(number, RECOVER_FAILPOINT, sorted(before))

    # ------------------------------------------------------------------ checks

    def check(self, *, fresh: bool) -> dict[str, str]:
        """Check the invariants; settle the pending intents; their outcomes by id."""
        self.summary.checks += 1
        number = self.summary.kills
        try:
            if fresh:
                self.summary.fresh_checks += 1
                data = inspect_in_fresh_process(self.root, self.last_seq)
            else:
                data = inspect_project(self.root, self.last_seq)
        except Exception:
            self.summary.add_violation("check-raised", number, traceback.format_exc())
            self.pending.clear()
            return {}
        self.last_seq = data["last_seq"]
        self.summary.events = data["events"]
        for kind, detail in data["problems"]:
            self.summary.add_violation(kind, number, detail)
        by_intent: dict[str, list[dict[str, Any]]] = {}
        for event in data["recovered"]:
            if event["outcome"] not in OUTCOMES:
                self.summary.add_violation(
                    "recover-outcome", number, f"event {event['seq']}: {event['outcome']!r}"
                )
            by_intent.setdefault(str(event["intent"]), []).append(event)
        outcomes: dict[str, str] = {}
        for intent_id, pending in self.pending.items():
            events = by_intent.pop(intent_id, [])
            if not events:
                self.summary.add_violation(
                    "intent-unaudited", pending.kill, f"intent {intent_id} closed unrecorded"
                )
                continue
            seen = {e["outcome"] for e in events}
            if len(events) > 1:
                self.summary.rerecovered += 1
            if len(seen) > 1:
                self.summary.add_violation(
                    "recover-disagrees", pending.kill, f"intent {intent_id}: {sorted(seen)}"
                )
            last = events[-1]
            outcome = str(last["outcome"])
            outcomes[intent_id] = outcome
            if pending.expected is not None and outcome != pending.expected:
                self.summary.add_violation(
                    "recover-unexpected",
                    pending.kill,
                    f"{pending.kind}: {outcome}, expected {pending.expected}",
                )
            payload = pending.payload
            want = payload.get("revision" if outcome == "completed" else "previous_revision")
            if last["revision"] != want or (
                outcome == "completed" and last["intended"] != payload.get("revision")
            ):
                self.summary.add_violation(
                    "recover-inconsistent",
                    pending.kill,
                    f"{pending.kind}: {outcome} left {_short(last['revision'])}, "
                    f"the intent says {_short(want)}",
                )
        for intent_id in by_intent:
            self.summary.add_violation(
                "recover-unknown-intent", number, f"recovered {intent_id}, which no kill left"
            )
        self.pending.clear()
        return outcomes

    def cli_checks(self) -> None:
        """The command line agrees, from a fresh interpreter."""
        for args in (("recover",), ("verify",), ("audit", "verify")):
            proc = subprocess.run(
                [sys.executable, "-m", "lockgate", "-C", str(self.root), *args],
                capture_output=True,
                text=True,
                timeout=300,
                env=_clean_env(),
            )
            if proc.returncode == 0:
                continue
            output = proc.stdout + proc.stderr
            problems = [
                _verify_kind(line.removeprefix("problem: "))
                for line in output.splitlines()
                if line.startswith("problem: ")
            ]
            known = bool(problems) and set(problems) == {"verify-symlink-object"}
            self.summary.add_violation(
                "verify-symlink-object" if known else "cli",
                self.summary.kills,
                f"lockgate {' '.join(args)} exited {proc.returncode}: "
                + output.strip().replace("\n", " | "),
            )


S = TypeVar("S")


def in_workdir(
    name: str,
    workdir: Path | None,
    run: Callable[[Path], S],
    ok: Callable[[S], bool],
    kept: Callable[[S, Path], None],
) -> S:
    """``run(workdir)`` in ``workdir``, else in a temporary directory that is removed when
    the result is ``ok`` and kept (``kept`` says where) when it is not, or when ``run``
    raises. Shared by the crash and the race harness (``name`` is which)."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    workdir = Path(tempfile.mkdtemp(prefix=f"lockgate-{name}-"))
    try:
        result = run(workdir)
    except BaseException:
        print(f"{name} harness: work directory kept: {workdir}", file=sys.stderr)
        raise
    if ok(result):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        kept(result, workdir)
    return result


def run_harness(config: HarnessConfig) -> Summary:
    """Run the harness (in ``config.workdir``, else a temporary directory)."""
    return in_workdir(
        "crash",
        config.workdir,
        lambda workdir: Harness(config, workdir).run(),
        lambda summary: summary.ok,
        lambda summary, workdir: summary.errors.append(
            f"work directory kept for inspection: {workdir}"
        ),
    )


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep the project here (default: temp)")
    parser.add_argument("--check-every", type=int, default=25, help="fresh-process checks")
    parser.add_argument("--spawn-every", type=int, default=50, help="fresh-interpreter runners")
    parser.add_argument("--max-delay", type=float, default=0.08)
    parser.add_argument("--tolerate", action="append", default=[], help="violation kind")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    parser.add_argument("--no-cli", action="store_true", help="skip the final CLI checks")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pg-server",
        default=os.environ.get(
            "LOCKGATE_POSTGRES_TEST_DSN", "host=127.0.0.1 port=5432 user=postgres"
        ),
        help="with --store postgres: the server, a libpq string without dbname",
    )
    # Internal modes, used by the harness itself.
    parser.add_argument("--zygote", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--check", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--since", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zygote is not None:
        return zygote_main(args.zygote)
    if args.child is not None:
        return child_main(json.loads(args.child), args.ready_fd)
    if args.check is not None:
        print(json.dumps(inspect_project(args.check, args.since, thorough=True)))
        return 0
    if args.store == "postgres":
        with postgres_database(args.pg_server) as place:
            return _run_main(args, place)
    return _run_main(args, None)


def _run_main(args: argparse.Namespace, postgres: PostgresPlace | None) -> int:
    config = HarnessConfig(
        postgres=postgres,
        kills=args.kills,
        seed=args.seed,
        workdir=args.workdir,
        check_every=args.check_every,
        spawn_every=args.spawn_every,
        max_delay=args.max_delay,
        tolerate=frozenset(args.tolerate),
        cli_checks=not args.no_cli,
        progress=lambda text: print(text, file=sys.stderr, flush=True),
    )
    summary = run_harness(config)
    print(summary.report())
    if args.json is not None:
        args.json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
