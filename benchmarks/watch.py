"""Latency of ``lockgate watch`` from a file write to its validated revision, beside peers.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/watch.py                        # 100 edits per method
    .venv/bin/python benchmarks/watch.py --edits 30 --json watch.json
    .venv/bin/python benchmarks/watch.py --pin-sources   # a checkout edited meanwhile

The workspace (generated once, deterministic, in a temporary directory under /tmp that
is removed at the end) looks like a team's real one: many small components rather than a
few big ones. One workspace ``bench`` holds 100 components of 100 files each (10,000
files, about 10 MB of text): 40 ``steps`` and 30 ``scripts`` (a ``component.yaml``, a
Python package of 61 modules, 25 tests, 13 YAML configs), 20 ``configs`` (99 YAML files
in three environments) and 10 ``workflows`` (99 workflow YAML files). Every file is
valid Python or YAML, so the builtin validators do their real work.

Each method gets its own copy of that tree, staged (``lockgate sync``) before it is
timed, and the same 100 edits: a pseudo-random file (never ``component.yaml``) of a
pseudo-random component, each edit adding one line, in three styles taken in turn —
append in place, rewrite in place, and an editor's atomic save (write a temporary file,
then ``os.replace`` it over the original). Timed per edit, wall clock in this process:

* ``lockgate watch`` (the default debounce, 200 ms; ``--debounce`` changes it): from
  just before the write until the watcher's JSON line for that component's new
  revision — staged *and* validated — is read from its stdout. Beside it: the watcher's
  own figure (first event to validated revision, ``latency_ms``), its split from the
  line's ``timings`` (first event to staged revision, i.e. the debounce wait plus
  staging; validation alone), and the atomic saves alone;
* ``lockgate stage WS:ID && lockgate validate WS:ID`` run right after the write: a
  script that somehow knew at once what changed (no detection delay at all);
* a naive loop, ``while :; do lockgate sync; sleep 1; done``, running in the
  background: from the write until the loop prints the component's new revision. It does
  not validate (so it is the peer's best case), and each edit waits a pseudo-random
  0-1 s first so the edits do not fall in step with the loop;
* ``git add -A && git commit -q`` right after the write, in a git repository of the same
  tree (a developer's usual way to snapshot work).

Every method waits 50 ms between one edit's result and the next edit (the naive loop
its random pause instead). Start-up: ``lockgate watch`` until its "ready" line, with
everything staged already (``--startups`` runs, 5 by default) beside ``lockgate sync``
with nothing to do (the one-shot equivalent), and once on a copy never staged (it then
stages and validates all 100 components) beside a first ``lockgate sync`` of the same
tree. Every lockgate process runs with the example plugins disabled
(``LOCKGATE_DISABLE_PLUGINS``).
Median and p95 (nearest rank) are over the edits; ratios are peer / watcher.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from _common import (
    LOCKGATE,
    Timings,
    add_condition_options,
    environment,
    fmt_ms,
    load_average,
    load_line,
    machine_json,
    package_dir,
    pin_sources,
    print_table,
    python_and_cores,
    run,
    timed_process,
)

Results = Timings[str]  # timed runs in ms, by row

DEFAULT_DEBOUNCE_MS = 200
LOOP_INTERVAL_S = 1.0
TIMEOUT_S = 60.0

WATCH = "lockgate watch: write -> validated revision"
WATCH_OWN = "  watcher's own figure: first event -> validated"
WATCH_STAGED = "  of which first event -> staged"
WATCH_VALIDATE = "  of which validation"
WATCH_ATOMIC = "  atomic saves only: write -> validated"
STAGE_VALIDATE = "lockgate stage + validate, per edit"
NAIVE = f"naive loop: lockgate sync, sleep {LOOP_INTERVAL_S:g} s"
GIT = "git add -A && git commit, per edit"
START_WARM = "lockgate watch until ready (all staged)"
SYNC_NOOP = "lockgate sync (nothing to do)"
START_COLD = "lockgate watch until ready (nothing staged)"
SYNC_FIRST = "lockgate sync (first time)"


# --------------------------------------------------------------------------- the workspace


@dataclass(frozen=True)
class Kind:
    """One component type: how many components, and the files of each."""

    name: str
    count: int
    files: Callable[[random.Random, str], dict[str, str]]


def _py_module(rng: random.Random, name: str) -> str:
    lines = [f'"""{name}: generated for the watch benchmark."""', ""]
    lines += ["from __future__ import annotations", ""]
    for f in range(rng.randint(3, 12)):
        factor = rng.randint(2, 999)
        lines += [
            f"def step_{f}(rows: list[int]) -> int:",
            f'    """Sum of the rows times {factor}."""',
            "    total = 0",
            "    for row in rows:",
            f"        total += row * {factor}",
            "    return total",
            "",
        ]
    return "\n".join(lines)


def _yaml_doc(rng: random.Random, name: str) -> str:
    lines = [f"name: {name}", "settings:"]
    lines += [f"  key_{k}: {rng.randint(0, 10**6)}" for k in range(rng.randint(10, 60))]
    return "\n".join(lines) + "\n"


def _workflow(rng: random.Random, name: str) -> str:
    lines = [f"name: {name}", "on: [push]", "jobs:", "  run:", "    steps:"]
    for s in range(rng.randint(5, 25)):
        lines += [f"      - name: step {s}", f"        run: ./run.sh --part {rng.randint(0, 99)}"]
    return "\n".join(lines) + "\n"


def _code_component(rng: random.Random, cid: str) -> dict[str, str]:
    pkg = cid.replace("-", "_")
    files = {f"src/{pkg}/__init__.py": f'"""{cid}."""\n'}
    files |= {f"src/{pkg}/mod_{i:02d}.py": _py_module(rng, f"mod_{i:02d}") for i in range(60)}
    files |= {f"tests/test_{i:02d}.py": _py_module(rng, f"test_{i:02d}") for i in range(25)}
    files |= {f"conf/c_{i:02d}.yaml": _yaml_doc(rng, f"c_{i:02d}") for i in range(13)}
    return files


def _config_component(rng: random.Random, cid: str) -> dict[str, str]:
    return {
        f"envs/{env}/cfg_{i:02d}.yaml": _yaml_doc(rng, f"{cid}-{env}-{i}")
        for env in ("dev", "test", "prod")
        for i in range(33)
    }


def _workflow_component(rng: random.Random, cid: str) -> dict[str, str]:
    return {f"workflows/wf_{i:02d}.yaml": _workflow(rng, f"{cid}-{i}") for i in range(99)}


KINDS = (
    Kind("steps", 40, _code_component),
    Kind("scripts", 30, _code_component),
    Kind("configs", 20, _config_component),
    Kind("workflows", 10, _workflow_component),
)


def generate(dest: Path) -> list[tuple[str, str, list[str]]]:
    """Write the workspace ``bench`` under ``dest``; return (ref, type, files) per component."""
    rng = random.Random(0x5EED)
    components = []
    for kind in KINDS:
        for n in range(kind.count):
            cid = f"{kind.name}-{n:02d}"
            files = {"component.yaml": f"description: {kind.name} component {n}\n"}
            files |= kind.files(rng, cid)
            assert len(files) == 100, (cid, len(files))
            root = dest / kind.name / cid
            for rel, text in files.items():
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            editable = sorted(f for f in files if f != "component.yaml")
            components.append((f"bench:{cid}", kind.name, editable))
    return components


@dataclass(frozen=True)
class Edit:
    """One edit: which component and file, and how it is written."""

    ref: str
    path: str  # relative to workspaces/bench
    style: str  # "append", "rewrite" or "atomic"


def plan_edits(components: Sequence[tuple[str, str, list[str]]], n: int) -> list[Edit]:
    rng = random.Random(0xED17)
    styles = ("append", "rewrite", "atomic")
    edits = []
    for i in range(n):
        ref, kind, files = rng.choice(components)
        cid = ref.split(":")[1]
        edits.append(Edit(ref, f"{kind}/{cid}/{rng.choice(files)}", styles[i % 3]))
    return edits


def apply(edit: Edit, workspace: Path, serial: int) -> None:
    """Make the edit: one new comment line (valid in Python and YAML alike)."""
    path = workspace / edit.path
    line = f"# edit {serial}\n"
    if edit.style == "append":
        with open(path, "a") as fh:
            fh.write(line)
    elif edit.style == "rewrite":
        text = path.read_text()
        with open(path, "w") as fh:
            fh.write(text + line)
    else:
        text = path.read_text()
        tmp = path.with_name(f".{path.name}.tmp{serial}")
        tmp.write_text(text + line)
        tmp.replace(path)


# --------------------------------------------------------------------------- processes


class Lines:
    """A child process's stdout, line by line, each stamped with when it was read."""

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.errors: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()

    def _read(self, stream: IO[str], stdout: bool) -> None:
        for line in stream:
            if stdout:
                self.lines.put((time.perf_counter(), line.rstrip("\n")))
            else:
                self.errors.append(line.rstrip("\n"))

    def next_match(self, match: Callable[[str], bool]) -> tuple[float, str]:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            try:
                at, line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                self.stop()
                sys.exit(f"no expected output within {TIMEOUT_S:.0f} s; stderr: {self.errors}")
            if match(line):
                return at, line

    def drain(self) -> None:
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                return

    def stop(self) -> int:
        """SIGTERM the whole process group (the naive loop is a shell with children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def watch_events(project: Path, env: Mapping[str, str]) -> Lines:
    return Lines([LOCKGATE, "-C", str(project), "--json", "watch"], env)


def json_event(kind: str, ref: str | None = None) -> Callable[[str], bool]:
    def match(line: str) -> bool:
        event = json.loads(line)
        if event["event"] == "failed":
            sys.exit(f"the watcher failed: {event}")
        return bool(event["event"] == kind and (ref is None or event.get("component") == ref))

    return match


def starts_with(prefix: str) -> Callable[[str], bool]:
    return lambda line: line.startswith(prefix)


# --------------------------------------------------------------------------- measurements


def new_project(path: Path, tree: Path, env: Mapping[str, str]) -> Path:
    run([LOCKGATE, "init", str(path)], env)
    shutil.copytree(tree, path / "workspaces" / "bench", symlinks=True)
    return path


def measure_startup(
    warm: Path, cold: Path, runs: int, env: Mapping[str, str], res: Results
) -> None:
    sync_argv = [LOCKGATE, "-C", str(warm), "sync"]
    ms, _ = timed_process(sync_argv, env, sync=False)
    res.add(SYNC_FIRST, ms)
    run([LOCKGATE, "-C", str(warm), "validate"], env, ok=1)
    for _ in range(runs):
        ms, _ = timed_process(sync_argv, env, sync=False)
        res.add(SYNC_NOOP, ms)
        start = time.perf_counter()
        watcher = watch_events(warm, env)
        at, _ = watcher.next_match(json_event("ready"))
        res.add(START_WARM, (at - start) * 1000)
        watcher.stop()
    start = time.perf_counter()
    watcher = watch_events(cold, env)
    at, _ = watcher.next_match(json_event("ready"))
    res.add(START_COLD, (at - start) * 1000)
    watcher.stop()


def measure_watch(
    project: Path, edits: Sequence[Edit], env: Mapping[str, str], res: Results
) -> None:
    workspace = project / "workspaces" / "bench"
    watcher = watch_events(project, env)
    watcher.next_match(json_event("ready"))
    for n, edit in enumerate(edits):
        time.sleep(0.05)
        watcher.drain()
        start = time.perf_counter()
        apply(edit, workspace, n)
        at, line = watcher.next_match(json_event("staged", edit.ref))
        event = json.loads(line)
        timings = event["timings"]
        res.add(WATCH, (at - start) * 1000)
        res.add(WATCH_OWN, float(event["latency_ms"]))
        res.add(WATCH_STAGED, float(timings["wait_ms"] + timings["stage_ms"]))
        res.add(WATCH_VALIDATE, float(timings["validate_ms"]))
        if edit.style == "atomic":
            res.add(WATCH_ATOMIC, (at - start) * 1000)
        progress(WATCH, n, len(edits))
    code = watcher.stop()
    if code != 0:
        sys.exit(f"lockgate watch exited {code} on SIGTERM; stderr: {watcher.errors}")


def measure_stage_validate(
    project: Path, edits: Sequence[Edit], env: Mapping[str, str], res: Results
) -> None:
    workspace = project / "workspaces" / "bench"
    for n, edit in enumerate(edits):
        time.sleep(0.05)
        start = time.perf_counter()
        apply(edit, workspace, n)
        out = run([LOCKGATE, "-C", str(project), "stage", edit.ref], env)
        run([LOCKGATE, "-C", str(project), "validate", edit.ref], env, ok=1)
        res.add(STAGE_VALIDATE, (time.perf_counter() - start) * 1000)
        if "staged" not in out:
            sys.exit(f"lockgate stage {edit.ref} staged nothing: {out}")
        progress(STAGE_VALIDATE, n, len(edits))


def measure_naive(
    project: Path, edits: Sequence[Edit], env: Mapping[str, str], res: Results
) -> None:
    workspace = project / "workspaces" / "bench"
    script = f'while :; do "$0" -C "$1" sync; sleep {LOOP_INTERVAL_S:g}; done'
    loop = Lines(["sh", "-c", script, LOCKGATE, str(project)], env)
    loop.next_match(starts_with("found "))  # one whole pass first
    rng = random.Random(0x1007)
    for n, edit in enumerate(edits):
        time.sleep(rng.uniform(0, LOOP_INTERVAL_S))
        loop.drain()
        start = time.perf_counter()
        apply(edit, workspace, n)
        at, _ = loop.next_match(starts_with(f"{edit.ref}: staged"))
        res.add(NAIVE, (at - start) * 1000)
        progress(NAIVE, n, len(edits))
    loop.stop()


def measure_git(repo: Path, edits: Sequence[Edit], env: Mapping[str, str], res: Results) -> None:
    for n, edit in enumerate(edits):
        time.sleep(0.05)
        start = time.perf_counter()
        apply(edit, repo, n)
        run(["sh", "-c", "git add -A && git commit -q -m edit"], env, cwd=repo)
        res.add(GIT, (time.perf_counter() - start) * 1000)
        progress(GIT, n, len(edits))


def progress(what: str, n: int, total: int) -> None:
    if (n + 1) % 25 == 0 or n + 1 == total:
        print(f"  {what.strip()}: {n + 1}/{total}", file=sys.stderr)


# --------------------------------------------------------------------------- report


def ratio(num: float | None, den: float | None) -> str:
    return "-" if num is None or not den else f"{num / den:.2f}"


def report(res: Results, edits: int, startups: int, debounce_ms: int, files_mb: float) -> bool:
    git_version = run(["git", "--version"], os.environ).strip()
    print(
        f"workspace: 100 components x 100 files = 10,000 files ({files_mb:.1f} MB); "
        f"{edits} edits per method; debounce {debounce_ms} ms; "
        f"{python_and_cores()}; {git_version}"
    )
    print()
    w_med, w_p95 = res.median(WATCH), res.p95(WATCH)
    rows = []
    own = (WATCH, WATCH_OWN, WATCH_STAGED, WATCH_VALIDATE, WATCH_ATOMIC)
    for row in (*own, STAGE_VALIDATE, NAIVE, GIT):
        med, p95 = res.median(row), res.p95(row)
        peer = row not in own
        rows.append(
            (
                row,
                fmt_ms(med),
                fmt_ms(p95),
                ratio(med, w_med) if peer else "",
                ratio(p95, w_p95) if peer else "",
            )
        )
    print_table(
        ("edit -> revision", "median ms", "p95 ms", "peer/watch median", "peer/watch p95"), rows
    )
    print()
    s_warm, s_cold = res.median(START_WARM), res.median(START_COLD)
    rows = [
        (START_WARM, fmt_ms(s_warm), fmt_ms(res.p95(START_WARM)), "", str(startups)),
        (
            SYNC_NOOP,
            fmt_ms(res.median(SYNC_NOOP)),
            fmt_ms(res.p95(SYNC_NOOP)),
            ratio(res.median(SYNC_NOOP), s_warm),
            str(startups),
        ),
        (START_COLD, fmt_ms(s_cold), "", "", "1"),
        (
            SYNC_FIRST,
            fmt_ms(res.median(SYNC_FIRST)),
            "",
            ratio(res.median(SYNC_FIRST), s_cold),
            "1",
        ),
    ]
    print_table(("start-up", "median ms", "p95 ms", "peer/watch", "runs"), rows)
    print()
    bound = debounce_ms + 150
    met = w_p95 is not None and w_p95 <= bound
    staged_p95 = res.p95(WATCH_STAGED)
    own_met = staged_p95 is not None and staged_p95 <= bound
    print(
        f"target: watcher p95 <= debounce + 150 ms = {bound} ms: {'met' if met else 'MISSED'} "
        f"(write -> validated {fmt_ms(w_p95)} ms); without validation, first event -> staged "
        f"p95 {fmt_ms(staged_p95)} ms: {'met' if own_met else 'MISSED'}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description="lockgate watch latency benchmark")
    parser.add_argument("--edits", type=int, default=100, help="edits per method (100)")
    parser.add_argument("--startups", type=int, default=5, help="warm start-up runs (5)")
    parser.add_argument(
        "--debounce", type=int, default=DEFAULT_DEBOUNCE_MS, help="debounce in ms (200)"
    )
    parser.add_argument(
        "--only",
        choices=("watch", "stage", "naive", "git"),
        action="append",
        help="run only these edit methods (repeatable; start-up always runs)",
    )
    add_condition_options(parser, prefill=False)
    parser.add_argument("--json", type=Path, help="write the raw per-edit times here")
    args = parser.parse_args()
    if args.edits < 1 or args.startups < 1 or args.debounce < 0:
        parser.error("--edits and --startups must be at least 1, --debounce at least 0")
    if shutil.which("git") is None:
        sys.exit("git is not on PATH; it is one of the peers")
    methods = set(args.only or ("watch", "stage", "naive", "git"))
    with tempfile.TemporaryDirectory(prefix="lgbench-watch-", dir="/tmp") as tmp:
        root = Path(tmp)
        env = environment(root / "pycache", git=True)
        env["LOCKGATE__PLUGINS__WATCH__DEBOUNCE_MS"] = str(args.debounce)
        if args.pin_sources:
            pin_sources(package_dir(), root, env)
        start_load = load_average()
        print("generating the workspace ...", file=sys.stderr)
        components = generate(root / "tree")
        files_mb = sum(p.stat().st_size for p in (root / "tree").rglob("*") if p.is_file()) / 1e6
        edits = plan_edits(components, args.edits)
        res = Results()

        print("start-up ...", file=sys.stderr)
        warm = new_project(root / "watch", root / "tree", env)
        cold = new_project(root / "cold", root / "tree", env)
        measure_startup(warm, cold, args.startups, env, res)
        if "watch" in methods:
            measure_watch(warm, edits, env, res)
        if "stage" in methods:
            project = new_project(root / "stage", root / "tree", env)
            run([LOCKGATE, "-C", str(project), "sync"], env)
            measure_stage_validate(project, edits, env, res)
        if "naive" in methods:
            project = new_project(root / "naive", root / "tree", env)
            run([LOCKGATE, "-C", str(project), "sync"], env)
            measure_naive(project, edits, env, res)
        if "git" in methods:
            repo = root / "git"
            shutil.copytree(root / "tree", repo, symlinks=True)
            run(["git", "init", "-q"], env, cwd=repo)
            run(["sh", "-c", "git add -A && git commit -q -m base"], env, cwd=repo)
            measure_git(repo, edits, env, res)
        end_load = load_average()
        print(load_line(start_load, end_load))
        met = report(res, args.edits, args.startups, args.debounce, files_mb)
        if args.json:
            raw: dict[str, Any] = {
                "edits": args.edits,
                "debounce_ms": args.debounce,
                **machine_json(),
                "load_average": {"start": start_load, "end": end_load},
                "target_met": met,
                "results": {
                    row: {"times_ms": t, "median_ms": res.median(row), "p95_ms": res.p95(row)}
                    for row, t in res.times.items()
                },
            }
            args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
