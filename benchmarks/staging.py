"""Wall time of ``lockgate stage`` beside real peers on the same trees.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/staging.py                  # 5 rounds (median of 5)
    .venv/bin/python benchmarks/staging.py --runs 9 --json staging.json
    .venv/bin/python benchmarks/staging.py --quick --runs 2 --warmup 0 --no-prefill  # smoke
    .venv/bin/python benchmarks/staging.py --peers git,rsync,restic
    .venv/bin/python benchmarks/staging.py --compare-sources ../lockgate-before  # before/after

Two trees are generated once (deterministic pseudo-random, incompressible content) in a
temporary directory under /tmp, removed at the end:

* ``a``: 10,000 files of 4 KiB in 100 directories (40 MB);
* ``b``: 1,000 files of 1 MiB in 10 directories (1 GiB).

(``--quick``: 200 x 4 KiB in 10 directories and 20 x 1 MiB in 2, for smoke runs only.)

Each tree becomes the component ``workspaces/bench/data/<tree>/`` of a fresh project
(``lockgate init``, then ``cp -a`` of the tree). Per round and tree, every command is a
whole process, timed with ``time.perf_counter`` around ``subprocess.run``. Three
scenarios are measured wherever the tool has them: the first stage, an unchanged restage,
and a restage after one file (``d<middle>/f0000.bin``) was rewritten in place with new
content of the same size (untimed):

* ``lockgate -C PROJ stage bench:<tree>`` on the fresh project (first stage), then the
  same command again (unchanged restage: it must print "unchanged"), then after the
  one-file change (it must report one file changed); and a first stage of a second fresh
  project with ``plugins.local.flush: stage`` (for context: by default objects are left
  to the kernel's write-back, as the peers leave theirs, and the file system is flushed
  before a revision is deployed; ``flush: stage`` flushes it before the revision is
  recorded);
* ``cp -a SRC DST`` to a fresh DST; and, as the peer with the same durability as
  ``flush: stage``, ``cp -a SRC DST && sync`` (one ``sh -c``) — first only;
* ``python benchmarks/minimal_store.py SRC DST``: a naive content store that only copies,
  hashes (BLAKE3) and renames each file, on as many threads as lockgate's store uses —
  the floor of what storing by digest costs here, so lockgate's overhead is the rest
  (first only: it keeps no state);
* ``rsync -a COPY/ DST/`` to a fresh DST, then again (no-op), then after the change;
* ``git add -A`` in a fresh repository (``git init -q`` and the copy of the tree done
  before timing), then, after an untimed commit and one untimed ``git status``,
  ``git status --porcelain`` (no-op), ``git add -A`` again (unchanged), and ``git add -A``
  after the change;
* ``dvc add <tree>`` in a fresh DVC project (``dvc init --no-scm``, copy, untimed; DVC's
  default cache type, which copies on ext4), again unchanged, and after the change;
* ``git annex add .`` in a fresh repository (``git init``, ``git annex init`` and
  ``annex.addunlocked=true``, untimed: files stay editable in place and their content is
  copied into the annex, as lockgate's workspace and store do); after an untimed commit,
  again unchanged, and after the change;
* ``restic backup COPY`` into a fresh repository (``restic init`` untimed, password from
  ``RESTIC_PASSWORD`` set by the benchmark), again unchanged (restic's parent snapshot),
  and after the change.

``rsync`` and ``restic`` read one untimed copy of the tree made per round (COPY above),
changed once before their change rows; the other peers change their own copy. dvc is
installed with pip into its own virtualenv, ``.bench-tools/dvc/`` (git-ignored), and
``git-annex`` and ``restic`` with ``apt-get install -y`` when missing and this runs as
root; a peer that cannot be had is skipped with a one-line reason. ``--peers`` selects
peers (``cp,minimal,rsync,git,dvc,annex,restic``; lockgate always runs). Every
measurement checks that it did its work (files added, nothing or exactly one file
changed) or stops the benchmark.

For tree ``a`` the round also times, in a child process (``_stage_probe.py``), the path a
file watcher would use: ``Project.open`` once (untimed), then ``source().scan(component)``
and an unchanged ``Stager(project).stage("bench:a")``.

For tree ``a`` the round also times the warm path (docs/watcher.md): a third fresh
project, staged untimed, with ``lockgate -C PROJ -v watch`` started untimed on it (its
debounce raised to a minute, so that its own sync of the change never comes first) and
one untimed ``lockgate stage`` answered by it (the watcher imports the command's modules
then); then ``lockgate -C PROJ stage bench:a`` unchanged and after the one-file change,
each checked to be the watcher's answer (its ``-v`` note) and to have done its work. The
watcher's CPU time during each command (utime + stime from ``/proc/<pid>/stat``, in
10 ms clock ticks) is reported as a row beneath it.

``--compare-sources BEFORE [AFTER]`` measures two lockgate source trees in the same
rounds (AFTER defaults to this checkout): each is copied at the start with its own entry
points and console script (see :func:`_common.copy_source`), both use this virtualenv's
dependencies, and their lockgate rows run one after the other in every round, in turns;
the peers run once per round. The targets are then printed side by side, with the change
of each ratio from BEFORE to AFTER (WORSE when it grew by more than 10%).

Conditioning (this matters on a VM whose guest memory is backed lazily by the host):
first, free memory is filled with clean page cache by reading a sparse "ballast" file
(``--no-prefill`` skips it; see :func:`_common.prefill`); then one untimed warm-up round runs
(``--warmup``). Nothing is deleted before the end when /tmp has room for every round
(about 16.5 GiB of disk per round with every peer), as deleting hands pages back and
makes the next writes slow again; otherwise each round's files are deleted before the
next round's page-cache top-up, and the report says so. The load average and a
fingerprint of lockgate's sources are printed at the start and the end (a warning says
if the sources changed during the run; ``--pin-sources`` measures a copy made at the
start instead, for a checkout that others are editing). Everything runs warm:
the page cache is never dropped. ``os.sync()`` runs (untimed) before each timed command
so that write-back of the setup copies does not land inside it. All fresh destinations,
projects and repositories are created before the timed region. Reported numbers are
medians over the rounds; ratios compare medians of the same run. Every lockgate run has
the example plugins disabled (``LOCKGATE_DISABLE_PLUGINS``).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from _common import (
    BIN,
    LOCKGATE,
    RandomTree,
    RunConditions,
    Target,
    Timings,
    Tool,
    add_condition_options,
    copy_source,
    debian_tool,
    environment,
    expect,
    machine_json,
    package_dir,
    pip_tool,
    print_medians,
    print_ratios,
    print_ratios_side_by_side,
    print_table,
    python_and_cores,
    ratios,
    remove_tree,
    run,
    runs_json,
    size_label,
    timed_process,
)

PYTHON = str(BIN / "python")
MINIMAL_STORE = Path(__file__).with_name("minimal_store.py")
PROBE = Path(__file__).with_name("_stage_probe.py")
DVC_REQUIREMENT = "dvc>=3,<4"
RESTIC_PASSWORD = "lockgate-bench"  # the benchmark's throwaway repositories only
Results = Timings[tuple[str, str]]  # timed runs in ms, by (tree, row)

FIRST = "lockgate stage (first)"
FIRST_EAGER = "lockgate stage (first, flush: stage)"
RESTAGE = "lockgate stage (unchanged)"
CHANGE = "lockgate stage (one file changed)"
INPROC_SCAN = "in-process scan (unchanged)"
INPROC_STAGE = "in-process Stager.stage (unchanged)"
WARM_RESTAGE = "lockgate stage (unchanged), watcher running"
WARM_CHANGE = "lockgate stage (one file changed), watcher running"
WARM_RESTAGE_CPU = "  the watcher's CPU ms during it (unchanged)"
WARM_CHANGE_CPU = "  the watcher's CPU ms during it (one file changed)"
LOCKGATE_ROWS = (
    FIRST,
    FIRST_EAGER,
    RESTAGE,
    CHANGE,
    INPROC_SCAN,
    INPROC_STAGE,
    WARM_RESTAGE,
    WARM_RESTAGE_CPU,
    WARM_CHANGE,
    WARM_CHANGE_CPU,
)
CP = "cp -a"
MINIMAL = "minimal store (copy, hash, rename)"
CP_SYNC = "cp -a, then sync"
RSYNC_FIRST = "rsync -a (first copy)"
RSYNC_NOOP = "rsync -a (no-op)"
RSYNC_CHANGE = "rsync -a (one file changed)"
GIT_ADD = "git add -A"
GIT_STATUS = "git status --porcelain (no-op)"
GIT_ADD_NOOP = "git add -A (unchanged)"
GIT_ADD_CHANGE = "git add -A (one file changed)"
DVC_FIRST = "dvc add (first)"
DVC_NOOP = "dvc add (unchanged)"
DVC_CHANGE = "dvc add (one file changed)"
ANNEX_FIRST = "git annex add (first)"
ANNEX_NOOP = "git annex add (unchanged)"
ANNEX_CHANGE = "git annex add (one file changed)"
RESTIC_FIRST = "restic backup (first)"
RESTIC_NOOP = "restic backup (unchanged)"
RESTIC_CHANGE = "restic backup (one file changed)"
SCENARIOS = ("first", "unchanged", "one file changed")


class Tree(RandomTree):
    """A generated tree: ``files`` files of ``size`` bytes spread over ``dirs`` directories."""

    @property
    def label(self) -> str:
        return f"{self.files:,} x {size_label(self.size)} in {self.dirs} dirs"

    @property
    def changed_file(self) -> str:
        """The file the one-file change rewrites, relative to the tree's root."""
        return f"d{self.dirs // 2:03d}/f{0:0{self.digits}d}.bin"

    def change(self, root: Path) -> None:
        """Rewrite :attr:`changed_file` under ``root`` in place: new content, same size."""
        path = root / self.changed_file
        path.chmod(0o644)
        path.write_bytes(random.Random(self.seed + 1).randbytes(self.size))


TREES = (
    Tree("a", files=10_000, size=4 << 10, dirs=100, seed=0xA),
    Tree("b", files=1_000, size=1 << 20, dirs=10, seed=0xB),
)
QUICK_TREES = (
    Tree("a", files=200, size=4 << 10, dirs=10, seed=0xA),
    Tree("b", files=20, size=1 << 20, dirs=2, seed=0xB),
)


TARGETS = (
    Target("first stage (a) / git add -A (a)", ("a", FIRST), ("a", GIT_ADD), 1.0),
    Target("unchanged restage (a) / rsync no-op (a)", ("a", RESTAGE), ("a", RSYNC_NOOP), 2.0),
    Target(
        "unchanged restage (a), watcher running / git annex add no-op (a)",
        ("a", WARM_RESTAGE),
        ("a", ANNEX_NOOP),
        1.0,
    ),
    Target(
        "one file changed (a), watcher running / rsync (a)",
        ("a", WARM_CHANGE),
        ("a", RSYNC_CHANGE),
        1.5,
    ),
    Target(
        "unchanged restage (a) / git annex add no-op (a)", ("a", RESTAGE), ("a", ANNEX_NOOP), None
    ),
    # Restated (was 1.5x `cp -a`, which nothing that hashes what it copies
    # meets on two cores: see docs/performance.md, "Why the (b) target ...").
    Target("first stage (b) / minimal store (b)", ("b", FIRST), ("b", MINIMAL), 1.2),
    Target("in-process rescan (a) / git status (a)", ("a", INPROC_SCAN), ("a", GIT_STATUS), 2.0),
    Target("first stage (b) / cp -a (b)", ("b", FIRST), ("b", CP), None),
    Target("first stage (a) / cp -a (a)", ("a", FIRST), ("a", CP), None),
    Target("minimal store (b) / cp -a (b)", ("b", MINIMAL), ("b", CP), None),
    Target("minimal store (a) / cp -a (a)", ("a", MINIMAL), ("a", CP), None),
    Target("first stage (b) / git add -A (b)", ("b", FIRST), ("b", GIT_ADD), None),
    Target("flush: stage (a) / cp -a, then sync (a)", ("a", FIRST_EAGER), ("a", CP_SYNC), None),
    Target("flush: stage (b) / cp -a, then sync (b)", ("b", FIRST_EAGER), ("b", CP_SYNC), None),
    Target("flush: stage (a) / git add -A (a)", ("a", FIRST_EAGER), ("a", GIT_ADD), None),
    Target("flush: stage (b) / cp -a (b)", ("b", FIRST_EAGER), ("b", CP), None),
    Target("unchanged restage (b) / rsync no-op (b)", ("b", RESTAGE), ("b", RSYNC_NOOP), None),
    Target("unchanged restage (a) / git status (a)", ("a", RESTAGE), ("a", GIT_STATUS), None),
    Target("in-process stage (a) / git status (a)", ("a", INPROC_STAGE), ("a", GIT_STATUS), None),
    Target("one file changed (a) / rsync (a)", ("a", CHANGE), ("a", RSYNC_CHANGE), None),
    Target("one file changed (b) / rsync (b)", ("b", CHANGE), ("b", RSYNC_CHANGE), None),
)


# --------------------------------------------------------------------------- lockgate


@dataclass(frozen=True)
class Lockgate:
    """The lockgate measured: the checkout's (no label), or one of the compared copies."""

    label: str
    command: str
    env: dict[str, str]

    def row(self, row: str) -> str:
        return f"{row} [{self.label}]" if self.label else row

    @property
    def slug(self) -> str:
        return self.label or "lockgate"

    def targets(self) -> list[Target]:
        """:data:`TARGETS` on this lockgate's rows."""

        def mine(key: tuple[str, str]) -> tuple[str, str]:
            return (key[0], self.row(key[1])) if key[1] in LOCKGATE_ROWS else key

        return [Target(t.label, mine(t.num), mine(t.den), t.bound) for t in TARGETS]


def new_project(lg: Lockgate, path: Path, src: Path, tree: str) -> Path:
    """``lockgate init`` plus a ``cp -a`` of the tree as component ``bench:<tree>``."""
    run([lg.command, "init", str(path)], lg.env)
    data = path / "workspaces" / "bench" / "data"
    data.mkdir(parents=True)
    run(["cp", "-a", str(src), str(data / tree)], lg.env)
    return path


def in_process(lg: Lockgate, project_dir: Path, *, check: bool = True) -> tuple[float, float]:
    """The in-process scan and unchanged stage of bench:a (see ``_stage_probe.py``)."""
    argv = [PYTHON, str(PROBE), str(project_dir), *([] if check else ["--no-check"])]
    probe = json.loads(run(argv, lg.env))
    return float(probe["scan_ms"]), float(probe["stage_ms"])


def lockgate_round(lg: Lockgate, tree: Tree, src: Path, work: Path, res: Results) -> None:
    """One repetition of lockgate's rows on one tree."""
    t, ref = tree.name, f"bench:{tree.name}"
    proj = new_project(lg, work / f"proj-{lg.slug}", src, t)
    stage = [lg.command, "-C", str(proj), "stage", ref]
    ms, out = timed_process(stage, lg.env)
    expect(FIRST, "staged" in out, out)
    res.add((t, lg.row(FIRST)), ms)
    ms, out = timed_process(stage, lg.env)
    expect(RESTAGE, "unchanged" in out, out)
    res.add((t, lg.row(RESTAGE)), ms)
    if t == "a":
        scan_ms, stage_ms = in_process(lg, proj)
        res.add((t, lg.row(INPROC_SCAN)), scan_ms)
        res.add((t, lg.row(INPROC_STAGE)), stage_ms)
    tree.change(proj / "workspaces" / "bench" / "data" / t)
    ms, out = timed_process(stage, lg.env)
    expect(CHANGE, "staged" in out and "~1 " in out, out)
    res.add((t, lg.row(CHANGE)), ms)
    if t == "a":
        watched_round(lg, tree, src, work, res)

    proj = new_project(lg, work / f"proj-eager-{lg.slug}", src, t)
    eager = lg.env | {"LOCKGATE__PLUGINS__LOCAL__FLUSH": "stage"}
    ms, out = timed_process([lg.command, "-C", str(proj), "stage", ref], eager)
    expect(FIRST_EAGER, "staged" in out, out)
    res.add((t, lg.row(FIRST_EAGER)), ms)


WATCH_ENV = {
    # The watcher's own sync of the change must not come first: it waits for a quiet
    # minute (the command answered meanwhile is what is timed).
    "LOCKGATE__PLUGINS__WATCH__DEBOUNCE_MS": "60000",
    "LOCKGATE__PLUGINS__WATCH__MAX_WAIT_MS": "600000",
}
WARM_NOTE = "warm path: answered"


def cpu_ms(pid: int) -> float:
    """utime + stime of process ``pid`` so far, in ms, from ``/proc/<pid>/stat`` (counted
    in clock ticks: 10 ms steps, so one command's figure is coarse; its median over the
    rounds less so)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def watched_round(lg: Lockgate, tree: Tree, src: Path, work: Path, res: Results) -> None:
    """The restage rows again with ``lockgate watch`` running on the project (started,
    and its first answer given, untimed): the command is answered by the watcher (the
    warm path, docs/watcher.md). Checked: each timed command was the watcher's answer
    (its ``-v`` note), and did its work. The watcher's CPU time during each is a row."""
    t, ref = tree.name, f"bench:{tree.name}"
    env = lg.env | WATCH_ENV
    proj = new_project(lg, work / f"proj-watch-{lg.slug}", src, t)
    stage = [lg.command, "-C", str(proj), "stage", ref]
    run(stage, env)
    log = work / f"watch-{lg.slug}.err"
    with log.open("wb") as err:
        watcher = subprocess.Popen(
            [lg.command, "-C", str(proj), "-v", "watch"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            if line.startswith("watching "):
                break
        else:
            sys.exit(f"lockgate watch did not start: {log.read_text()}")
        threading.Thread(target=watcher.stdout.read, daemon=True).start()  # drain
        answered = 0

        def timed(row: str, cpu_row: str | None) -> str:
            nonlocal answered
            before = cpu_ms(watcher.pid)
            ms, out = timed_process(stage, env)
            spent = cpu_ms(watcher.pid) - before
            answered += 1
            expect(row, log.read_text().count(WARM_NOTE) == answered, log.read_text())
            if cpu_row is not None:
                res.add((t, lg.row(row)), ms)
                res.add((t, lg.row(cpu_row)), spent)
            return out

        timed("first answer", None)  # untimed: the watcher imports the command's modules
        out = timed(WARM_RESTAGE, WARM_RESTAGE_CPU)
        expect(WARM_RESTAGE, "unchanged" in out, out)
        tree.change(proj / "workspaces" / "bench" / "data" / t)
        out = timed(WARM_CHANGE, WARM_CHANGE_CPU)
        expect(WARM_CHANGE, "staged" in out and "~1 " in out, out)
    finally:
        watcher.kill()
        watcher.wait()
        if watcher.stdout is not None:
            watcher.stdout.close()


def warm_up(root: Path, lg: Lockgate) -> None:
    """Compile a lockgate's bytecode and load its modules once, on a tiny component."""
    src = root / "tiny"
    if not src.exists():
        Tree("tiny", files=10, size=1024, dirs=2, seed=1).generate(src)
    proj = new_project(lg, root / f"warm-{lg.slug}", src, "a")
    for _ in range(2):
        run([lg.command, "-C", str(proj), "stage", "bench:a"], lg.env)
    in_process(lg, proj, check=False)  # files this new may be racily clean


# --------------------------------------------------------------------------- peers


@dataclass(frozen=True)
class Round:
    """What the peers work with in one round on one tree."""

    tree: Tree
    src: Path  # the generated tree, never written
    copy: Path  # the round's copy that rsync and restic read, changed before their change rows
    work: Path
    env: dict[str, str]
    res: Results

    def add(self, row: str, ms: float) -> None:
        self.res.add((self.tree.name, row), ms)


class Peer:
    """A tool doing the same job; :meth:`first` times its first and unchanged rows, then
    (after the round's copy was changed) :meth:`changed` its one-file change."""

    key: ClassVar[str]  # its name in --peers
    rows: ClassVar[tuple[str, str | None, str | None]]  # first, unchanged, one file changed
    context: ClassVar[tuple[str, ...]] = ()  # its other rows
    copies: ClassVar[int]  # tree-sized copies it leaves per round (disk)
    shared: ClassVar[bool] = False  # reads the round's copy

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.cmd = list(tool.argv)

    @property
    def title(self) -> str:
        return self.rows[0].removesuffix(" (first)").removesuffix(" (first copy)")

    def first(self, r: Round) -> None:
        raise NotImplementedError

    def changed(self, r: Round) -> None:
        """The one-file change; none for a tool without one."""


class Cp(Peer):
    key, rows, context, copies = "cp", (CP, None, None), (CP_SYNC,), 2

    def first(self, r: Round) -> None:
        ms, _ = timed_process(["cp", "-a", str(r.src), str(r.work / "cp")], r.env)
        r.add(CP, ms)
        script = 'cp -a "$0" "$1" && sync'
        ms, _ = timed_process(["sh", "-c", script, str(r.src), str(r.work / "cp-sync")], r.env)
        r.add(CP_SYNC, ms)


class Minimal(Peer):
    key, rows, copies = "minimal", (MINIMAL, None, None), 1

    def first(self, r: Round) -> None:
        ms, _ = timed_process(
            [PYTHON, str(MINIMAL_STORE), str(r.src), str(r.work / "minimal")], r.env
        )
        r.add(MINIMAL, ms)


class Rsync(Peer):
    key, rows, copies, shared = "rsync", (RSYNC_FIRST, RSYNC_NOOP, RSYNC_CHANGE), 1, True

    def _sync(self, r: Round, row: str) -> None:
        ms, _ = timed_process([*self.cmd, "-a", f"{r.copy}/", f"{r.work / 'rsync'}/"], r.env)
        r.add(row, ms)

    def first(self, r: Round) -> None:
        self._sync(r, RSYNC_FIRST)
        self._sync(r, RSYNC_NOOP)

    def changed(self, r: Round) -> None:
        self._sync(r, RSYNC_CHANGE)
        name = r.tree.changed_file
        same = filecmp.cmp(r.copy / name, r.work / "rsync" / name, shallow=False)
        expect(RSYNC_CHANGE, same, f"{name} differs after the sync")


class Git(Peer):
    key, rows, context, copies = "git", (GIT_ADD, GIT_ADD_NOOP, GIT_ADD_CHANGE), (GIT_STATUS,), 2

    def first(self, r: Round) -> None:
        repo = r.work / "git"
        run(["cp", "-a", str(r.src), str(repo)], r.env)
        run([*self.cmd, "init", "-q", str(repo)], r.env)
        ms, _ = timed_process([*self.cmd, "add", "-A"], r.env, cwd=repo)
        r.add(GIT_ADD, ms)
        run([*self.cmd, "commit", "-q", "-m", "bench"], r.env, cwd=repo)
        run([*self.cmd, "status", "--porcelain"], r.env, cwd=repo)  # untimed: settles the index
        ms, out = timed_process([*self.cmd, "status", "--porcelain"], r.env, cwd=repo)
        expect(GIT_STATUS, out == "", out)
        r.add(GIT_STATUS, ms)
        ms, _ = timed_process([*self.cmd, "add", "-A"], r.env, cwd=repo)
        r.add(GIT_ADD_NOOP, ms)

    def changed(self, r: Round) -> None:
        repo = r.work / "git"
        r.tree.change(repo)
        ms, _ = timed_process([*self.cmd, "add", "-A"], r.env, cwd=repo)
        r.add(GIT_ADD_CHANGE, ms)
        out = run([*self.cmd, "diff", "--cached", "--name-only"], r.env, cwd=repo)
        expect(GIT_ADD_CHANGE, out.split() == [r.tree.changed_file], out)


class Dvc(Peer):
    key, rows, copies = "dvc", (DVC_FIRST, DVC_NOOP, DVC_CHANGE), 2
    last = ""  # the .dvc file after the unchanged add, which the change must alter

    def _add(self, r: Round, row: str) -> str:
        proj, t = r.work / "dvc", r.tree.name
        ms, _ = timed_process([*self.cmd, "add", "-q", t], r.env, cwd=proj)
        r.add(row, ms)
        return (proj / f"{t}.dvc").read_text()

    def first(self, r: Round) -> None:
        proj = r.work / "dvc"
        proj.mkdir()
        run(["cp", "-a", str(r.src), str(proj / r.tree.name)], r.env)
        run([*self.cmd, "init", "-q", "--no-scm"], r.env, cwd=proj)
        run([*self.cmd, "config", "core.analytics", "false"], r.env, cwd=proj)
        before = self._add(r, DVC_FIRST)
        expect(DVC_FIRST, f"nfiles: {r.tree.files}" in before, before)
        after = self._add(r, DVC_NOOP)
        expect(DVC_NOOP, after == before, after)
        self.last = after

    def changed(self, r: Round) -> None:
        r.tree.change(r.work / "dvc" / r.tree.name)
        after = self._add(r, DVC_CHANGE)
        expect(DVC_CHANGE, after != self.last, after)


class Annex(Peer):
    key, rows, copies = "annex", (ANNEX_FIRST, ANNEX_NOOP, ANNEX_CHANGE), 2

    def _add(self, r: Round, row: str, added: int) -> None:
        ms, out = timed_process([*self.cmd, "add", "."], r.env, cwd=r.work / "annex")
        count = sum(1 for line in out.splitlines() if line.startswith("add "))
        expect(row, count == added, f"{count} files added, not {added}: {out[-300:]}")
        r.add(row, ms)

    def first(self, r: Round) -> None:
        repo = r.work / "annex"
        run(["cp", "-a", str(r.src), str(repo)], r.env)
        run(["git", "init", "-q", str(repo)], r.env)
        run([*self.cmd, "init", "-q", "bench"], r.env, cwd=repo)
        run(["git", "config", "annex.addunlocked", "true"], r.env, cwd=repo)
        self._add(r, ANNEX_FIRST, r.tree.files)
        run(["git", "commit", "-q", "-m", "bench"], r.env, cwd=repo)
        self._add(r, ANNEX_NOOP, 0)

    def changed(self, r: Round) -> None:
        r.tree.change(r.work / "annex")
        self._add(r, ANNEX_CHANGE, 1)


class Restic(Peer):
    key, rows, copies, shared = "restic", (RESTIC_FIRST, RESTIC_NOOP, RESTIC_CHANGE), 1, True

    def _backup(self, r: Round, row: str, field: str, count: int) -> None:
        env = r.env | {"RESTIC_REPOSITORY": str(r.work / "restic")}
        argv = [*self.cmd, "backup", "--json", "--host", "bench", str(r.copy)]
        ms, out = timed_process(argv, env)
        summary = [line for line in out.splitlines() if '"message_type":"summary"' in line]
        got = json.loads(summary[-1]).get(field) if summary else None
        expect(row, got == count, f"{field} = {got}, not {count}: {out[-300:]}")
        r.add(row, ms)

    def first(self, r: Round) -> None:
        env = r.env | {"RESTIC_REPOSITORY": str(r.work / "restic")}
        run([*self.cmd, "init", "-q"], env)
        self._backup(r, RESTIC_FIRST, "files_new", r.tree.files)
        self._backup(r, RESTIC_NOOP, "files_unmodified", r.tree.files)

    def changed(self, r: Round) -> None:
        self._backup(r, RESTIC_CHANGE, "files_changed", 1)


PEERS: tuple[type[Peer], ...] = (Cp, Minimal, Rsync, Git, Dvc, Annex, Restic)


def provide(keys: Sequence[str]) -> dict[str, Tool]:
    """Each selected peer's tool, installed first where the benchmark may (see the
    module's docstring)."""
    tools: dict[str, Tool] = {}
    for key in keys:
        if key in ("cp", "minimal"):
            tools[key] = Tool((key,), "")
        elif key == "rsync":
            tools[key] = debian_tool("rsync", "rsync", ["--version"])
        elif key == "git":
            tools[key] = debian_tool("git", "git", ["--version"])
        elif key == "dvc":
            tools[key] = pip_tool("dvc", DVC_REQUIREMENT, "dvc")
        elif key == "annex":
            git = shutil.which("git")
            annex = debian_tool("git-annex", "git-annex", ["version", "--raw"])
            if git is None and annex.present:
                annex = Tool((), "git-annex needs git, which is not on PATH")
            note = f"git-annex {annex.note}" if annex.present else annex.note
            tools[key] = Tool((git, "annex") if annex.present and git else (), note)
        elif key == "restic":
            tools[key] = debian_tool("restic", "restic", ["version"])
    return tools


def peer_environment(root: Path) -> dict[str, str]:
    """What keeps the peers to the benchmark's temporary directory, and quiet: DVC's
    configuration, site cache and analytics; restic's password and cache."""
    return {
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(root / "dvc-config" / "global"),
        "DVC_SYSTEM_CONFIG_DIR": str(root / "dvc-config" / "system"),
        "DVC_SITE_CACHE_DIR": str(root / "dvc-config" / "site"),
        "RESTIC_PASSWORD": RESTIC_PASSWORD,
        "RESTIC_CACHE_DIR": str(root / "restic-cache"),
    }


# --------------------------------------------------------------------------- rounds


def round_for_tree(
    tree: Tree,
    src: Path,
    work: Path,
    lockgates: Sequence[Lockgate],
    peers: Sequence[Peer],
    env: dict[str, str],
    res: Results,
) -> None:
    """One repetition of every measurement on one tree, in the empty directory ``work``.

    Nothing is deleted here: deleting frees page-cache pages, which this VM hands back to
    the host, and the next writes that need them pay the first-touch cost again inside
    whichever timed command came next.
    """
    for lg in lockgates:
        lockgate_round(lg, tree, src, work, res)
    r = Round(tree, src, work / "copy", work, env, res)
    if any(p.shared for p in peers):
        run(["cp", "-a", str(src), str(r.copy)], env)
    for peer in peers:
        peer.first(r)
    if any(p.shared for p in peers):
        tree.change(r.copy)
    for peer in peers:
        peer.changed(r)


# --------------------------------------------------------------------------- report


def print_against_peers(
    lg: Lockgate, peers: Sequence[Peer], trees: Sequence[Tree], res: Results
) -> dict[str, dict[str, float | None]]:
    """lockgate's median over each peer's, per scenario and tree, side by side."""
    columns = [(i, s, t.name) for i, s in enumerate(SCENARIOS) for t in trees]
    header = [f"lockgate{f' [{lg.label}]' if lg.label else ''} / peer"]
    header += [f"{s} ({t})" for _, s, t in columns]
    rows, out = [], {}
    for peer in peers:
        cells, values = [peer.title], {}
        for i, scenario, t in columns:
            mine = res.median((t, lg.row((FIRST, RESTAGE, CHANGE)[i])))
            row = peer.rows[i]
            theirs = res.median((t, row)) if row else None
            value = mine / theirs if mine is not None and theirs else None
            values[f"{scenario} ({t})"] = value
            cells.append("-" if value is None else f"{value:.2f}")
        rows.append(cells)
        out[peer.title] = values
    print_table(header, rows)
    return out


def report(
    res: Results,
    args: argparse.Namespace,
    trees: Sequence[Tree],
    lockgates: Sequence[Lockgate],
    peers: Sequence[Peer],
    tools: Mapping[str, Tool],
) -> dict[str, object]:
    print(
        f"median of {args.runs} rounds after {args.warmup} warm-up, warm page cache "
        f"(os.sync() before each timed command); {python_and_cores()}"
    )
    for key, tool in tools.items():
        if key not in ("cp", "minimal"):
            print(f"  {key}: {tool.note}" + ("" if tool.present else " -- SKIPPED"))
    for tree in trees:
        print(f"  tree {tree.name}: {tree.label}" + (" (--quick)" if args.quick else ""))
    print()
    rows = [lg.row(row) for row in LOCKGATE_ROWS for lg in lockgates]
    rows += [row for p in peers for row in (*p.rows, *p.context) if row]
    print_medians("command", rows, [t.name for t in trees], res)
    print()
    computed = {lg.label: ratios(lg.targets(), res) for lg in lockgates}
    if len(lockgates) == 1:
        print_ratios(computed[lockgates[0].label])
    else:
        print_ratios_side_by_side(computed)
    against = {}
    for lg in lockgates:
        print()
        against[lg.label] = print_against_peers(lg, peers, trees, res)
    if len(lockgates) == 1:  # the JSON report's shape before --compare-sources existed
        return {"ratios": computed[""], "against_peers": against[""]}
    return {"ratios": computed, "against_peers": against}


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="lockgate staging benchmark")
    parser.add_argument("--runs", type=int, default=5, help="rounds per measurement (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    parser.add_argument(
        "--peers",
        default=",".join(p.key for p in PEERS),
        help="comma-separated peers to run beside lockgate (default: all of "
        f"{','.join(p.key for p in PEERS)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small trees (200 x 4 KiB, 20 x 1 MiB): a smoke run, not a measurement",
    )
    parser.add_argument(
        "--compare-sources",
        nargs="+",
        metavar="DIR",
        type=Path,
        help="BEFORE [AFTER]: measure two lockgate checkouts in the same rounds "
        "(AFTER: this checkout)",
    )
    add_condition_options(parser)
    parser.add_argument("--json", type=Path, help="write the raw per-run times here")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    args.peers = [k for k in args.peers.split(",") if k]
    unknown = set(args.peers) - {p.key for p in PEERS}
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(sorted(unknown))}")
    if args.compare_sources and len(args.compare_sources) > 2:
        parser.error("--compare-sources takes BEFORE and at most one AFTER")
    if args.compare_sources and args.pin_sources:
        parser.error("--compare-sources already measures copies; drop --pin-sources")
    return args


def disk_plan(trees: Sequence[Tree], copies: int, rounds: int) -> bool:
    """Whether every round's files can stay until the end (else each round's are deleted
    before the next); stops when /tmp cannot hold even one round's."""
    one = sum(t.files * max(t.size, 4096) for t in trees) * copies * 1.1
    free = shutil.disk_usage("/tmp").free
    if free >= one * rounds + one / copies:
        return True
    if free < 2 * one:
        sys.exit(
            f"/tmp has {free / 2**30:.1f} GiB free; one round needs about "
            f"{one / 2**30:.1f} GiB (use --peers to run fewer peers)"
        )
    print(
        f"/tmp has {free / 2**30:.1f} GiB free, {rounds} rounds need "
        f"{one * rounds / 2**30:.1f}: each round's files are deleted before the next round\n"
    )
    return False


def main() -> None:
    args = parse_args()
    tools = provide(args.peers)
    peers = [cls(tools[cls.key]) for cls in PEERS if cls.key in tools and tools[cls.key].present]
    for key, tool in tools.items():
        if not tool.present:
            print(f"skipping {key}: {tool.note}", file=sys.stderr)
    trees = QUICK_TREES if args.quick else TREES
    rounds = args.warmup + args.runs
    lockgate_copies = 4 * (len(args.compare_sources) + 1 if args.compare_sources else 1)
    copies = lockgate_copies + sum(p.copies for p in peers) + any(p.shared for p in peers)
    keep = disk_plan(trees, copies, rounds)
    with tempfile.TemporaryDirectory(prefix="lgbench-staging-", dir="/tmp") as tmp:
        root = Path(tmp)
        env = environment(root / "pycache", git=True) | peer_environment(root)
        if args.compare_sources:
            before, *rest = args.compare_sources
            origins = [("before", before), ("after", rest[0] if rest else package_dir())]
            copied = [copy_source(o, root / "sources" / label, label) for label, o in origins]
            conditions = RunConditions(
                root, env, prefill=not args.no_prefill, pin=False, compared=copied
            )
            lockgates = [Lockgate(c.label, str(c.command), c.environment(env)) for c in copied]
        else:
            conditions = RunConditions(root, env, prefill=not args.no_prefill, pin=args.pin_sources)
            lockgates = [Lockgate("", LOCKGATE, env)]
        conditions.top_up()
        for lg in lockgates:
            warm_up(root, lg)
        sources = {}
        for tree in trees:
            sources[tree.name] = root / "src" / tree.name
            print(f"generating tree {tree.name} ({tree.label}) ...", file=sys.stderr)
            tree.generate(sources[tree.name])
        res, untimed = Results(), Results()
        for n in range(rounds):
            warm = n < args.warmup
            if n and not keep:
                remove_tree(root / "work" / str(n - 1))
            conditions.top_up()
            # The compared lockgates take turns at going first.
            turn = list(lockgates[n % len(lockgates) :]) + list(lockgates[: n % len(lockgates)])
            for tree in trees:
                what = "warm-up round" if warm else f"round {n + 1 - args.warmup}/{args.runs}"
                print(f"{what}, tree {tree.name} ...", file=sys.stderr)
                work = root / "work" / str(n) / tree.name
                work.mkdir(parents=True)
                target = untimed if warm else res
                round_for_tree(tree, sources[tree.name], work, turn, peers, env, target)
        conditions.finish()
        if not keep:
            print("each round's files were deleted before the next round (not enough disk)")
        computed = report(res, args, trees, lockgates, peers, tools)
        if args.json:
            raw = {
                "runs": args.runs,
                "warmup": args.warmup,
                "quick": args.quick,
                "kept_every_round": keep,
                **conditions.to_json(),
                **machine_json(),
                "peers": {key: {"present": t.present, "note": t.note} for key, t in tools.items()},
                "trees": {t.name: t.label for t in trees},
                "results": runs_json(res, "tree", "command"),
                **computed,
            }
            args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
