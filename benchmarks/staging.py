"""Wall time of ``lockgate stage`` beside real peers (cp, rsync, git) on the same trees.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/staging.py                  # 5 rounds (median of 5)
    .venv/bin/python benchmarks/staging.py --runs 9 --json staging.json

Two trees are generated once (deterministic pseudo-random, incompressible content) in a
temporary directory under /tmp, removed at the end:

* ``a``: 10,000 files of 4 KiB in 100 directories (40 MB);
* ``b``: 1,000 files of 1 MiB in 10 directories (1 GiB).

Each tree becomes the component ``workspaces/bench/data/<tree>/`` of a fresh project
(``lockgate init``, then ``cp -a`` of the tree). Per round and tree, every command is a
whole process, timed with ``time.perf_counter`` around ``subprocess.run``:

* ``lockgate -C PROJ stage bench:<tree>`` on the fresh project (first stage), then the
  same command again (unchanged restage: it must print "unchanged"), and a first stage
  of a second fresh project with ``plugins.local.flush: stage`` (for context: by default
  objects are left to the kernel's write-back, as the peers leave theirs, and the file
  system is flushed before a revision is deployed; ``flush: stage`` flushes it before
  the revision is recorded);
* ``cp -a SRC DST`` to a fresh DST; and, as the peer with the same durability as
  ``flush: stage``, ``cp -a SRC DST && sync`` (one ``sh -c``);
* ``python benchmarks/minimal_store.py SRC DST``: a naive content store that only copies,
  hashes (BLAKE3) and renames each file, on as many threads as lockgate's store uses —
  the floor of what storing by digest costs here, so lockgate's overhead is the rest;
* ``rsync -a SRC/ DST/`` to a fresh DST, then again (no-op) — skipped if rsync is absent;
* ``git add -A`` in a fresh repository (``git init -q`` and the copy of the tree done
  before timing), then, after an untimed commit and one untimed ``git status``,
  ``git status --porcelain`` (no-op).

For tree ``a`` the round also times, inside this process, the path a file watcher would
use: ``Project.open`` once (untimed), then ``source().scan(component)`` and an unchanged
``Stager(project).stage("bench:a")``.

Conditioning (this matters on a VM whose guest memory is backed lazily by the host):
first, free memory is filled with clean page cache by reading a sparse "ballast" file
(``--no-prefill`` skips it; see :func:`_common.prefill`); then one untimed warm-up round runs
(``--warmup``). Nothing is deleted before the end (about 10.5 GiB of disk per round), as
deleting hands pages back and makes the next writes slow again. The load average and a
fingerprint of lockgate's sources are printed at the start and the end (a warning says
if the sources changed during the run; ``--pin-sources`` measures a copy made at the
start instead, for a checkout that others are editing). Everything runs warm:
the page cache is never dropped. ``os.sync()`` runs (untimed) before each timed command
so that write-back of the setup copies does not land inside it. All fresh destinations,
projects and repositories are created before the timed region. Reported numbers are
medians over the rounds; ratios compare medians of the same run. Every lockgate run has
``LOCKGATE_DISABLE_PLUGINS=teamdefaults``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from _common import (
    BIN,
    LOCKGATE,
    RandomTree,
    RunConditions,
    Target,
    Timings,
    add_condition_options,
    environment,
    expect,
    machine_json,
    print_results,
    python_and_cores,
    run,
    runs_json,
    size_label,
    timed_process,
)

PYTHON = str(BIN / "python")
MINIMAL_STORE = Path(__file__).with_name("minimal_store.py")
Results = Timings[tuple[str, str]]  # timed runs in ms, by (tree, row)

FIRST = "lockgate stage (first)"
FIRST_EAGER = "lockgate stage (first, flush: stage)"
RESTAGE = "lockgate stage (unchanged)"
INPROC_SCAN = "in-process scan (unchanged)"
INPROC_STAGE = "in-process Stager.stage (unchanged)"
CP = "cp -a"
MINIMAL = "minimal store (copy, hash, rename)"
CP_SYNC = "cp -a, then sync"
RSYNC_FIRST = "rsync -a (first copy)"
RSYNC_NOOP = "rsync -a (no-op)"
GIT_ADD = "git add -A"
GIT_STATUS = "git status --porcelain (no-op)"
ROWS = (
    FIRST,
    FIRST_EAGER,
    RESTAGE,
    INPROC_SCAN,
    INPROC_STAGE,
    CP,
    CP_SYNC,
    MINIMAL,
    RSYNC_FIRST,
    RSYNC_NOOP,
    GIT_ADD,
    GIT_STATUS,
)


class Tree(RandomTree):
    """A generated tree: ``files`` files of ``size`` bytes spread over ``dirs`` directories."""

    @property
    def label(self) -> str:
        return f"{self.files:,} x {size_label(self.size)} in {self.dirs} dirs"


TREES = (
    Tree("a", files=10_000, size=4 << 10, dirs=100, seed=0xA),
    Tree("b", files=1_000, size=1 << 20, dirs=10, seed=0xB),
)


TARGETS = (
    Target("first stage (a) / git add -A (a)", ("a", FIRST), ("a", GIT_ADD), 1.0),
    Target("unchanged restage (a) / rsync no-op (a)", ("a", RESTAGE), ("a", RSYNC_NOOP), 2.0),
    Target("first stage (b) / cp -a (b)", ("b", FIRST), ("b", CP), 1.5),
    Target("in-process rescan (a) / git status (a)", ("a", INPROC_SCAN), ("a", GIT_STATUS), 2.0),
    Target("first stage (a) / cp -a (a)", ("a", FIRST), ("a", CP), None),
    Target("minimal store (b) / cp -a (b)", ("b", MINIMAL), ("b", CP), None),
    Target("first stage (b) / minimal store (b)", ("b", FIRST), ("b", MINIMAL), None),
    Target("minimal store (a) / cp -a (a)", ("a", MINIMAL), ("a", CP), None),
    Target("first stage (b) / git add -A (b)", ("b", FIRST), ("b", GIT_ADD), None),
    Target("flush: stage (a) / cp -a, then sync (a)", ("a", FIRST_EAGER), ("a", CP_SYNC), None),
    Target("flush: stage (b) / cp -a, then sync (b)", ("b", FIRST_EAGER), ("b", CP_SYNC), None),
    Target("flush: stage (a) / git add -A (a)", ("a", FIRST_EAGER), ("a", GIT_ADD), None),
    Target("flush: stage (b) / cp -a (b)", ("b", FIRST_EAGER), ("b", CP), None),
    Target("unchanged restage (b) / rsync no-op (b)", ("b", RESTAGE), ("b", RSYNC_NOOP), None),
    Target("unchanged restage (a) / git status (a)", ("a", RESTAGE), ("a", GIT_STATUS), None),
    Target("in-process stage (a) / git status (a)", ("a", INPROC_STAGE), ("a", GIT_STATUS), None),
)


def new_project(path: Path, src: Path, tree: str, env: Mapping[str, str]) -> Path:
    """``lockgate init`` plus a ``cp -a`` of the tree as component ``bench:<tree>``."""
    run([LOCKGATE, "init", str(path)], env)
    data = path / "workspaces" / "bench" / "data"
    data.mkdir(parents=True)
    run(["cp", "-a", str(src), str(data / tree)], env)
    return path


def in_process(
    project_dir: Path, env: Mapping[str, str], *, check: bool = True
) -> tuple[float, float]:
    """Open the project once; time a scan and an unchanged ``Stager.stage`` of bench:a.

    ``check``: the scan must find every file in the stat cache, the stage hash nothing.
    """
    from lockgate.core.project import Project
    from lockgate.core.refs import ComponentRef
    from lockgate.operations.stage import Stager

    project = Project.open(project_dir, environ=dict(env))
    try:
        source = project.source()
        component = source.find(ComponentRef.parse("bench:a"))
        source.scan(component)  # untimed: first use of the source
        os.sync()
        start = time.perf_counter()
        scan = source.scan(component)
        scan_ms = (time.perf_counter() - start) * 1000
        uncached = sum(1 for f in scan.files if f.digest is None)
        detail = f"{uncached} files not vouched for by the stat cache"
        expect("in-process scan", not check or uncached == 0, detail)
        start = time.perf_counter()
        result = Stager(project).stage("bench:a")
        stage_ms = (time.perf_counter() - start) * 1000
        clean = not result.created and (result.hashed == 0 or not check)
        expect("in-process stage", clean, result.summary())
    finally:
        project.close()
    return scan_ms, stage_ms


def round_for_tree(
    tree: Tree, src: Path, work: Path, env: dict[str, str], rsync: str | None, res: Results
) -> None:
    """One repetition of every measurement on one tree, in the empty directory ``work``.

    Nothing is deleted until the very end of the benchmark: deleting frees page-cache
    pages, which this VM hands back to the host, and the next writes that need them pay
    the first-touch cost again inside whichever timed command came next.
    """
    t = tree.name
    ref = f"bench:{t}"

    proj = new_project(work / "proj", src, t, env)
    ms, out = timed_process([LOCKGATE, "-C", str(proj), "stage", ref], env)
    expect(FIRST, "staged" in out, out)
    res.add((t, FIRST), ms)
    ms, out = timed_process([LOCKGATE, "-C", str(proj), "stage", ref], env)
    expect(RESTAGE, "unchanged" in out, out)
    res.add((t, RESTAGE), ms)
    if t == "a":
        scan_ms, stage_ms = in_process(proj, env)
        res.add((t, INPROC_SCAN), scan_ms)
        res.add((t, INPROC_STAGE), stage_ms)

    proj = new_project(work / "proj-eager", src, t, env)
    eager = env | {"LOCKGATE__PLUGINS__LOCAL__FLUSH": "stage"}
    ms, out = timed_process([LOCKGATE, "-C", str(proj), "stage", ref], eager)
    expect(FIRST_EAGER, "staged" in out, out)
    res.add((t, FIRST_EAGER), ms)

    ms, _ = timed_process(["cp", "-a", str(src), str(work / "cp")], env)
    res.add((t, CP), ms)
    ms, _ = timed_process(
        ["sh", "-c", 'cp -a "$0" "$1" && sync', str(src), str(work / "cp-sync")], env
    )
    res.add((t, CP_SYNC), ms)
    ms, _ = timed_process([PYTHON, str(MINIMAL_STORE), str(src), str(work / "minimal")], env)
    res.add((t, MINIMAL), ms)

    if rsync is not None:
        dst = work / "rsync"
        ms, _ = timed_process([rsync, "-a", f"{src}/", f"{dst}/"], env)
        res.add((t, RSYNC_FIRST), ms)
        ms, _ = timed_process([rsync, "-a", f"{src}/", f"{dst}/"], env)
        res.add((t, RSYNC_NOOP), ms)

    repo = work / "git"
    run(["cp", "-a", str(src), str(repo)], env)
    run(["git", "init", "-q", str(repo)], env)
    ms, _ = timed_process(["git", "add", "-A"], env, cwd=repo)
    res.add((t, GIT_ADD), ms)
    run(["git", "commit", "-q", "-m", "bench"], env, cwd=repo)
    run(["git", "status", "--porcelain"], env, cwd=repo)  # untimed: settles the index
    ms, out = timed_process(["git", "status", "--porcelain"], env, cwd=repo)
    expect(GIT_STATUS, out == "", out)
    res.add((t, GIT_STATUS), ms)


def warm_up(root: Path, env: dict[str, str]) -> None:
    """Compile lockgate's bytecode and load its modules once, on a tiny component."""
    src = root / "tiny"
    Tree("tiny", files=10, size=1024, dirs=2, seed=1).generate(src)
    proj = new_project(root / "warm", src, "a", env)
    for _ in range(2):
        run([LOCKGATE, "-C", str(proj), "stage", "bench:a"], env)
    in_process(proj, env, check=False)  # files this new may be racily clean


def report(res: Results, runs: int, warmup: int, rsync: str | None) -> list[dict[str, object]]:
    git_version = run(["git", "--version"], os.environ).strip()
    rsync_version = (
        run([rsync, "--version"], os.environ).splitlines()[0] if rsync else "rsync: absent"
    )
    print(
        f"median of {runs} rounds after {warmup} warm-up, warm page cache "
        "(os.sync() before each timed command); "
        f"{python_and_cores()}; {git_version}; {rsync_version}"
    )
    for tree in TREES:
        print(f"  tree {tree.name}: {tree.label}")
    print()
    return print_results("command", ROWS, [tree.name for tree in TREES], TARGETS, res)


def main() -> None:
    parser = argparse.ArgumentParser(description="lockgate staging benchmark")
    parser.add_argument("--runs", type=int, default=5, help="rounds per measurement (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    add_condition_options(parser)
    parser.add_argument("--json", type=Path, help="write the raw per-run times here")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    rsync = shutil.which("rsync")
    if rsync is None:
        print("rsync is not on PATH: skipping the rsync rows (apt-get install rsync)\n")
    if shutil.which("git") is None:
        sys.exit("git is not on PATH; it is one of the peers")
    rounds = args.warmup + args.runs
    need = sum(t.files * max(t.size, 4096) for t in TREES) * (1 + 10 * rounds) * 1.1
    free = shutil.disk_usage("/tmp").free
    if free < need:
        sys.exit(
            f"/tmp has {free / 2**30:.1f} GiB free; {rounds} rounds need about "
            f"{need / 2**30:.1f} GiB (nothing is deleted before the end); use fewer --runs"
        )
    with tempfile.TemporaryDirectory(prefix="lgbench-staging-", dir="/tmp") as tmp:
        root = Path(tmp)
        env = environment(root / "pycache", git=True)
        conditions = RunConditions(root, env, prefill=not args.no_prefill, pin=args.pin_sources)
        conditions.top_up()
        warm_up(root, env)
        sources = {}
        for tree in TREES:
            sources[tree.name] = root / "src" / tree.name
            print(f"generating tree {tree.name} ({tree.label}) ...", file=sys.stderr)
            tree.generate(sources[tree.name])
        res, untimed = Results(), Results()
        for n in range(rounds):
            warm = n < args.warmup
            conditions.top_up()
            for tree in TREES:
                what = "warm-up round" if warm else f"round {n + 1 - args.warmup}/{args.runs}"
                print(f"{what}, tree {tree.name} ...", file=sys.stderr)
                work = root / "work" / f"{n}-{tree.name}"
                work.mkdir(parents=True)
                round_for_tree(tree, sources[tree.name], work, env, rsync, untimed if warm else res)
        conditions.finish()
        computed = report(res, args.runs, args.warmup, rsync)
        if args.json:
            raw = {
                "runs": args.runs,
                "warmup": args.warmup,
                **conditions.to_json(),
                **machine_json(),
                "trees": {t.name: t.label for t in TREES},
                "results": runs_json(res, "tree", "command"),
                "ratios": computed,
            }
            args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
