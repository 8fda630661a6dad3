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
  of a second fresh project with ``plugins.local.fsync`` off (for context: the default
  flushes the file system once before recording the revision, the peers do not);
* ``cp -a SRC DST`` to a fresh DST; and, as the peer with the same durability as
  lockgate's default, ``cp -a SRC DST && sync`` (one ``sh -c``);
* ``rsync -a SRC/ DST/`` to a fresh DST, then again (no-op) — skipped if rsync is absent;
* ``git add -A`` in a fresh repository (``git init -q`` and the copy of the tree done
  before timing), then, after an untimed commit and one untimed ``git status``,
  ``git status --porcelain`` (no-op).

For tree ``a`` the round also times, inside this process, the path a file watcher would
use: ``Project.open`` once (untimed), then ``source().scan(component)`` and an unchanged
``Stager(project).stage("bench:a")``.

Conditioning (this matters on a VM whose guest memory is backed lazily by the host):
first, free memory is filled with clean page cache by reading a sparse "ballast" file
(``--no-prefill`` skips it; see :func:`prefill`); then one untimed warm-up round runs
(``--warmup``). Nothing is deleted before the end (about 9.5 GiB of disk per round), as
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
import hashlib
import importlib.util
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent  # the virtualenv's bin/, unresolved (keep the venv)
LOCKGATE = str(BIN / "lockgate")

FIRST = "lockgate stage (first)"
FIRST_NOFSYNC = "lockgate stage (first, fsync off)"
RESTAGE = "lockgate stage (unchanged)"
INPROC_SCAN = "in-process scan (unchanged)"
INPROC_STAGE = "in-process Stager.stage (unchanged)"
CP = "cp -a"
CP_SYNC = "cp -a, then sync"
RSYNC_FIRST = "rsync -a (first copy)"
RSYNC_NOOP = "rsync -a (no-op)"
GIT_ADD = "git add -A"
GIT_STATUS = "git status --porcelain (no-op)"
ROWS = (
    FIRST,
    FIRST_NOFSYNC,
    RESTAGE,
    INPROC_SCAN,
    INPROC_STAGE,
    CP,
    CP_SYNC,
    RSYNC_FIRST,
    RSYNC_NOOP,
    GIT_ADD,
    GIT_STATUS,
)


@dataclass(frozen=True)
class Tree:
    """A generated tree: ``files`` files of ``size`` bytes spread over ``dirs`` directories."""

    name: str
    files: int
    size: int
    dirs: int
    seed: int

    @property
    def label(self) -> str:
        unit = f"{self.size >> 20} MiB" if self.size >= 1 << 20 else f"{self.size >> 10} KiB"
        return f"{self.files:,} x {unit} in {self.dirs} dirs"

    def generate(self, dest: Path) -> None:
        rng = random.Random(self.seed)
        per_dir = self.files // self.dirs
        for d in range(self.dirs):
            directory = dest / f"d{d:03d}"
            directory.mkdir(parents=True)
            for f in range(per_dir):
                (directory / f"f{f:04d}.bin").write_bytes(rng.randbytes(self.size))


TREES = (
    Tree("a", files=10_000, size=4 << 10, dirs=100, seed=0xA),
    Tree("b", files=1_000, size=1 << 20, dirs=10, seed=0xB),
)


@dataclass(frozen=True)
class Target:
    """A ratio of two medians, and the bound it should stay under (None: context only)."""

    label: str
    num: tuple[str, str]  # (tree, row)
    den: tuple[str, str]
    bound: float | None


TARGETS = (
    Target("first stage (a) / git add -A (a)", ("a", FIRST), ("a", GIT_ADD), 1.0),
    Target("unchanged restage (a) / rsync no-op (a)", ("a", RESTAGE), ("a", RSYNC_NOOP), 2.0),
    Target("first stage (b) / cp -a (b)", ("b", FIRST), ("b", CP), 1.5),
    Target("in-process rescan (a) / git status (a)", ("a", INPROC_SCAN), ("a", GIT_STATUS), 2.0),
    Target("first stage (a) / cp -a (a)", ("a", FIRST), ("a", CP), None),
    Target("first stage (b) / git add -A (b)", ("b", FIRST), ("b", GIT_ADD), None),
    Target("first stage (a) / cp -a, then sync (a)", ("a", FIRST), ("a", CP_SYNC), None),
    Target("first stage (b) / cp -a, then sync (b)", ("b", FIRST), ("b", CP_SYNC), None),
    Target("first stage, fsync off (a) / git add (a)", ("a", FIRST_NOFSYNC), ("a", GIT_ADD), None),
    Target("first stage, fsync off (b) / cp -a (b)", ("b", FIRST_NOFSYNC), ("b", CP), None),
    Target("unchanged restage (b) / rsync no-op (b)", ("b", RESTAGE), ("b", RSYNC_NOOP), None),
    Target("unchanged restage (a) / git status (a)", ("a", RESTAGE), ("a", GIT_STATUS), None),
    Target("in-process stage (a) / git status (a)", ("a", INPROC_STAGE), ("a", GIT_STATUS), None),
)


@dataclass
class Results:
    """Timed runs in ms, by (tree, row)."""

    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, tree: str, row: str, ms: float) -> None:
        self.times.setdefault((tree, row), []).append(ms)

    def median(self, tree: str, row: str) -> float | None:
        runs = self.times.get((tree, row))
        return statistics.median(runs) if runs else None

    def minimum(self, tree: str, row: str) -> float | None:
        runs = self.times.get((tree, row))
        return min(runs) if runs else None


def environment(pycache: Path) -> dict[str, str]:
    """The inherited environment minus LOCKGATE* and bytecode settings, plus ours.

    Bytecode is cached under ``pycache`` (warm after the warm-up), nothing is written to
    the checkout; git ignores the user's and the system's configuration.
    """
    drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE") and k not in drop}
    env |= {
        "PYTHONPYCACHEPREFIX": str(pycache),
        "LOCKGATE_DISABLE_PLUGINS": "teamdefaults",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    return env


def run(argv: list[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    """Run untimed; any non-zero exit stops the benchmark. Returns stdout."""
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def timed(argv: list[str], env: Mapping[str, str], cwd: Path | None = None) -> tuple[float, str]:
    """Flush dirty pages (untimed), then the wall time of one process in ms, and its stdout."""
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return elapsed, proc.stdout


def expect(what: str, ok: bool, detail: str) -> None:
    if not ok:
        sys.exit(f"{what}: unexpected result: {detail.strip()}")


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
    from lockgate.core.staging import Stager

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
    ms, out = timed([LOCKGATE, "-C", str(proj), "stage", ref], env)
    expect(FIRST, "staged" in out, out)
    res.add(t, FIRST, ms)
    ms, out = timed([LOCKGATE, "-C", str(proj), "stage", ref], env)
    expect(RESTAGE, "unchanged" in out, out)
    res.add(t, RESTAGE, ms)
    if t == "a":
        scan_ms, stage_ms = in_process(proj, env)
        res.add(t, INPROC_SCAN, scan_ms)
        res.add(t, INPROC_STAGE, stage_ms)

    proj = new_project(work / "proj-nofsync", src, t, env)
    nofsync = env | {"LOCKGATE__PLUGINS__LOCAL__FSYNC": "false"}
    ms, out = timed([LOCKGATE, "-C", str(proj), "stage", ref], nofsync)
    expect(FIRST_NOFSYNC, "staged" in out, out)
    res.add(t, FIRST_NOFSYNC, ms)

    ms, _ = timed(["cp", "-a", str(src), str(work / "cp")], env)
    res.add(t, CP, ms)
    ms, _ = timed(["sh", "-c", 'cp -a "$0" "$1" && sync', str(src), str(work / "cp-sync")], env)
    res.add(t, CP_SYNC, ms)

    if rsync is not None:
        dst = work / "rsync"
        ms, _ = timed([rsync, "-a", f"{src}/", f"{dst}/"], env)
        res.add(t, RSYNC_FIRST, ms)
        ms, _ = timed([rsync, "-a", f"{src}/", f"{dst}/"], env)
        res.add(t, RSYNC_NOOP, ms)

    repo = work / "git"
    run(["cp", "-a", str(src), str(repo)], env)
    run(["git", "init", "-q", str(repo)], env)
    ms, _ = timed(["git", "add", "-A"], env, cwd=repo)
    res.add(t, GIT_ADD, ms)
    run(["git", "commit", "-q", "-m", "bench"], env, cwd=repo)
    run(["git", "status", "--porcelain"], env, cwd=repo)  # untimed: settles the index
    ms, out = timed(["git", "status", "--porcelain"], env, cwd=repo)
    expect(GIT_STATUS, out == "", out)
    res.add(t, GIT_STATUS, ms)


def package_dir() -> Path:
    """Where ``import lockgate`` finds the package (without importing it)."""
    spec = importlib.util.find_spec("lockgate")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("lockgate is not importable: run with the project's .venv/bin/python")
    return Path(next(iter(spec.submodule_search_locations)))


def source_fingerprint(package: Path) -> str:
    """A digest of the package's sources, to notice edits during a run."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def pin_sources(package: Path, root: Path, env: dict[str, str]) -> None:
    """Copy lockgate's sources into ``root`` and import them from there, in here and in
    every lockgate process, so edits made to the checkout during the run are not mixed in.
    """
    dest = root / "pinned"
    shutil.copytree(package, dest / "lockgate", ignore=shutil.ignore_patterns("__pycache__"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dest), env.get("PYTHONPATH")]))
    sys.path.insert(0, str(dest))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def mem_free() -> int | None:
    """``MemFree`` from /proc/meminfo in bytes (None where there is no /proc/meminfo)."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemFree:"):
            return int(line.split()[1]) * 1024
    return None


def prefill(ballast: Path) -> tuple[int, int] | None:
    """Fill free memory with clean page cache; return MemFree before and after.

    On this kind of VM, the first use of a guest page that is free (never used, or
    handed back to the host after a deletion freed it) costs about 3 s per GiB in the
    kernel, so any command that writes a GiB takes 2-5x longer until the page cache has
    filled RAM, and how much longer depends on what ran before. Reading a sparse file as
    large as free memory (no disk space used) fills the page cache with clean pages that
    later writes reclaim cheaply: the steady state of a machine that has been up a while.
    Nothing is dropped from the page cache; the ballast is only ever read. Other
    processes freeing memory during the run undo part of this, so it is topped up (with a
    new ballast file) before each round whenever more than 1 GiB is free again.
    """
    before = mem_free()
    if before is None:
        return None
    with open(ballast, "wb") as fh:
        fh.truncate(before + (1 << 30))
    fd = os.open(ballast, os.O_RDONLY)
    try:
        buf = bytearray(8 << 20)
        while os.readv(fd, [buf]):
            pass
    finally:
        os.close(fd)
    return before, mem_free() or 0


def warm_up(root: Path, env: dict[str, str]) -> None:
    """Compile lockgate's bytecode and load its modules once, on a tiny component."""
    src = root / "tiny"
    Tree("tiny", files=10, size=1024, dirs=2, seed=1).generate(src)
    proj = new_project(root / "warm", src, "a", env)
    for _ in range(2):
        run([LOCKGATE, "-C", str(proj), "stage", "bench:a"], env)
    in_process(proj, env, check=False)  # files this new may be racily clean


def fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:,.1f}"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = [header, tuple("-" * w for w in widths), *rows]
    for row in lines:
        cells = [
            f"{v:<{w}}" if col == 0 else f"{v:>{w}}"
            for col, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def ratios(res: Results) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for target in TARGETS:
        num, den = res.median(*target.num), res.median(*target.den)
        value = num / den if num is not None and den else None
        passed = None if value is None or target.bound is None else value <= target.bound
        out.append({"ratio": target.label, "value": value, "bound": target.bound, "pass": passed})
    return out


def report(res: Results, runs: int, warmup: int, rsync: str | None) -> list[dict[str, object]]:
    git_version = run(["git", "--version"], os.environ).strip()
    rsync_version = (
        run([rsync, "--version"], os.environ).splitlines()[0] if rsync else "rsync: absent"
    )
    print(
        f"median of {runs} rounds after {warmup} warm-up, warm page cache "
        "(os.sync() before each timed command); "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"{git_version}; {rsync_version}"
    )
    for tree in TREES:
        print(f"  tree {tree.name}: {tree.label}")
    print()
    header = ("command", "a median ms", "a min ms", "b median ms", "b min ms")
    rows = []
    for row in ROWS:
        cells = [row]
        for tree in TREES:
            cells += [fmt(res.median(tree.name, row)), fmt(res.minimum(tree.name, row))]
        rows.append(tuple(cells))
    table(header, rows)
    print()
    computed = ratios(res)
    rows = []
    for r in computed:
        value, bound, passed = r["value"], r["bound"], r["pass"]
        shown = "skipped" if value is None else f"{value:.2f}"
        limit = "" if bound is None else f"<= {bound:.1f}"
        verdict = "" if passed is None else ("PASS" if passed else "FAIL")
        if value is None and bound is not None:
            verdict = "SKIP"
        rows.append((str(r["ratio"]), shown, limit, verdict))
    table(("ratio of medians", "ratio", "target", ""), rows)
    return computed


def main() -> None:
    parser = argparse.ArgumentParser(description="lockgate staging benchmark")
    parser.add_argument("--runs", type=int, default=5, help="rounds per measurement (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    parser.add_argument(
        "--no-prefill", action="store_true", help="do not fill free memory with page cache first"
    )
    parser.add_argument(
        "--pin-sources",
        action="store_true",
        help="measure a copy of lockgate's sources made at the start (for a checkout that "
        "is being edited during the run)",
    )
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
    need = sum(t.files * max(t.size, 4096) for t in TREES) * (1 + 9 * rounds) * 1.1
    free = shutil.disk_usage("/tmp").free
    if free < need:
        sys.exit(
            f"/tmp has {free / 2**30:.1f} GiB free; {rounds} rounds need about "
            f"{need / 2**30:.1f} GiB (nothing is deleted before the end); use fewer --runs"
        )
    with tempfile.TemporaryDirectory(prefix="lgbench-staging-", dir="/tmp") as tmp:
        root = Path(tmp)
        env = environment(root / "pycache")
        package = package_dir()
        start_load, start_sources = load(), source_fingerprint(package)
        if args.pin_sources:
            pin_sources(package, root, env)
        fills: list[tuple[int, int]] = []

        def top_up() -> None:
            free = mem_free()
            if args.no_prefill or free is None or (fills and free < 1 << 30):
                return
            print(f"filling {free / 2**30:.1f} GiB of free memory ...", file=sys.stderr)
            filled = prefill(root / f"ballast-{len(fills)}")
            if filled:
                fills.append(filled)

        top_up()
        warm_up(root, env)
        sources = {}
        for tree in TREES:
            sources[tree.name] = root / "src" / tree.name
            print(f"generating tree {tree.name} ({tree.label}) ...", file=sys.stderr)
            tree.generate(sources[tree.name])
        res, untimed = Results(), Results()
        for n in range(rounds):
            warm = n < args.warmup
            top_up()
            for tree in TREES:
                what = "warm-up round" if warm else f"round {n + 1 - args.warmup}/{args.runs}"
                print(f"{what}, tree {tree.name} ...", file=sys.stderr)
                work = root / "work" / f"{n}-{tree.name}"
                work.mkdir(parents=True)
                round_for_tree(tree, sources[tree.name], work, env, rsync, untimed if warm else res)
        if fills:
            shown = ", ".join(f"{a / 2**30:.1f} -> {b / 2**30:.1f}" for a, b in fills)
            print(f"page cache prefilled {len(fills)} time(s), MemFree GiB: {shown}")
        else:
            print("page cache not prefilled (--no-prefill)")
        end_load, end_sources = load(), source_fingerprint(package)
        print(f"load average (1/5/15 min): {start_load} at the start, {end_load} at the end")
        if args.pin_sources:
            print(
                f"lockgate sources {start_sources}, pinned (a copy made at the start); "
                f"the checkout's sources at the end: {end_sources}"
            )
        elif end_sources == start_sources:
            print(f"lockgate sources {start_sources} (unchanged during the run)")
        else:
            print(
                f"WARNING: lockgate's sources changed during the run ({start_sources} -> "
                f"{end_sources}): the numbers mix versions"
            )
        computed = report(res, args.runs, args.warmup, rsync)
        if args.json:
            raw = {
                "runs": args.runs,
                "warmup": args.warmup,
                "prefill_memfree_before_after": fills,
                "load_average": {"start": start_load, "end": end_load},
                "sources": {"start": start_sources, "end": end_sources},
                "pinned": args.pin_sources,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "trees": {t.name: t.label for t in TREES},
                "results": [
                    {"tree": tree, "command": row, "times_ms": times}
                    | {"median_ms": statistics.median(times), "min_ms": min(times)}
                    for (tree, row), times in res.times.items()
                ],
                "ratios": computed,
            }
            args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
