"""Latency of promote and rollback: a 1-file component beside a 1,000-file (1 GiB) one,
and beside a naive copy-the-tree promotion of the same trees.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/promote.py                   # 20 switches per row
    .venv/bin/python benchmarks/promote.py --runs 40 --copy-runs 9 --json promote.json
    .venv/bin/python benchmarks/promote.py --pin-sources    # while others edit the checkout

One fresh project (``lockgate init``, default configuration: gates on for every stage)
in a temporary directory under /tmp, removed at the end, holds two components of type
``data`` in workspace ``bench``, generated once (deterministic pseudo-random,
incompressible content):

* ``one``: 1 file of 1 MiB;
* ``big``: 1,000 files of 1 MiB in 10 directories (1 GiB).

Each is staged three times (in this process): revision A, then B and C, each differing
from the one before in one file. What is timed:

* **first promotion** (reported on its own, not part of the flat figures): the first
  promotion of A and of B into ``staging`` (in-process ``Promoter.promote``). It builds
  the release (``.lockgate/releases/<rev>/``, hardlinks to the stored objects), hashes
  every byte of it against the manifest, runs the validators and switches. For C the
  same work is split, one step at a time: ``ensure_release``, ``verify_release`` (hashes
  every byte), ``Validation.run`` for ``staging``, then ``Promoter.promote`` (the switch,
  with the release already verified and the gate result cached). One sample each.
* then A and B are promoted (untimed) into ``integration`` and ``production``, so both
  are retained and each one's gate result for ``production`` is cached;
* **switches between retained revisions** in ``production``, median of ``--runs``
  (after ``--warmup`` untimed ones), alternating A and B: in this process with the
  project opened once, ``Promoter.promote(ref, to="production", rev=X)`` and
  ``Promoter.rollback(id, stage="production", to="previous")``; and as whole processes,
  ``lockgate -C PROJ promote bench:<c> --to production --rev X`` and ``lockgate -C PROJ
  rollback <c> --stage production --to previous`` (these include interpreter start-up and
  plugin loading, about 0.25 s);
* **the peer**, median of ``--copy-runs``: a naive promotion that copies the revision's
  tree (its release directory) into ``naive/<c>/.new-<n>`` and swaps it in as
  ``naive/<c>/production`` with two renames (the old tree is renamed aside; nothing is
  deleted before the end): in this
  process with ``shutil.copytree`` (beside the in-process rows), and as one ``sh -c``
  process with ``cp -a`` and ``mv`` (beside the CLI rows), also followed by ``sync`` (the
  peer with lockgate's durability: every switch fsyncs the stage directory and commits
  the state database with ``synchronous=FULL``).

Rounds interleave the components (a round runs every switch row for ``one``, then for
``big``; likewise the copies), so changes in machine load hit both alike. Every timed
operation is preceded by an untimed ``os.sync()``. Memory is first filled with
clean page cache (a sparse "ballast" file is read; ``--no-prefill`` skips it; see
``prefill`` in benchmarks/_common.py), as in benchmarks/staging.py: on this kind of VM
the first touch of a free guest page costs about 3 s per GiB, which would land in the
peer's copies. The target: for every lockgate switch row, big / one at most 1.5 (the
cost of a switch does not depend on the size of the tree). There are no assertions;
ratios are printed with PASS/FAIL against their targets.
Every lockgate run has the example plugins disabled (``LOCKGATE_DISABLE_PLUGINS``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    LOCKGATE,
    MiB,
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

Results = Timings[tuple[str, str]]  # timed runs in ms, by (component, row)

FIRST = "first promote into staging (build + hash + gates + switch)"
C_BUILD = "  new revision, step 1: ensure_release (hardlinks)"
C_HASH = "  new revision, step 2: verify_release (hash every byte)"
C_GATES = "  new revision, step 3: validators for staging"
C_SWITCH = "  new revision, step 4: Promoter.promote (verified, gated)"
PROMOTE_IN = "promote --to production --rev (in-process)"
ROLLBACK_IN = "rollback --to previous (in-process)"
PROMOTE_CLI = "lockgate promote --to production --rev (CLI)"
ROLLBACK_CLI = "lockgate rollback --to previous (CLI)"
NAIVE_IN = "naive: shutil.copytree + 2 renames (in-process)"
NAIVE_CP = "naive: cp -a + 2 mv (one sh process)"
NAIVE_CP_SYNC = "naive: cp -a + 2 mv, then sync"
ROWS = (
    FIRST,
    C_BUILD,
    C_HASH,
    C_GATES,
    C_SWITCH,
    PROMOTE_IN,
    ROLLBACK_IN,
    PROMOTE_CLI,
    ROLLBACK_CLI,
    NAIVE_IN,
    NAIVE_CP,
    NAIVE_CP_SYNC,
)


class Component(RandomTree):
    """A component of ``files`` files of ``size`` bytes in ``dirs`` directories."""

    @property
    def ref(self) -> str:
        return f"bench:{self.name}"

    @property
    def label(self) -> str:
        return f"{self.files:,} x {size_label(self.size)} in {self.dirs} dir(s)"

    def change_one_file(self, dest: Path, seed: int) -> None:
        (dest / "d000" / "f0000.bin").write_bytes(random.Random(seed).randbytes(self.size))


COMPONENTS = (
    Component("one", files=1, size=MiB, dirs=1, seed=0x1),
    Component("big", files=1_000, size=MiB, dirs=10, seed=0xB16),
)


TARGETS = (
    Target("promote, in-process: big / one", ("big", PROMOTE_IN), ("one", PROMOTE_IN), 1.5),
    Target("rollback, in-process: big / one", ("big", ROLLBACK_IN), ("one", ROLLBACK_IN), 1.5),
    Target("promote, CLI: big / one", ("big", PROMOTE_CLI), ("one", PROMOTE_CLI), 1.5),
    Target("rollback, CLI: big / one", ("big", ROLLBACK_CLI), ("one", ROLLBACK_CLI), 1.5),
    Target("naive copytree: big / one", ("big", NAIVE_IN), ("one", NAIVE_IN), None),
    Target("naive cp -a + sync: big / one", ("big", NAIVE_CP_SYNC), ("one", NAIVE_CP_SYNC), None),
    Target("big: promote (in-process) / copytree", ("big", PROMOTE_IN), ("big", NAIVE_IN), None),
    Target("big: rollback (in-process) / copytree", ("big", ROLLBACK_IN), ("big", NAIVE_IN), None),
    Target("big: promote (CLI) / cp -a + sync", ("big", PROMOTE_CLI), ("big", NAIVE_CP_SYNC), None),
    Target(
        "big: rollback (CLI) / cp -a + sync", ("big", ROLLBACK_CLI), ("big", NAIVE_CP_SYNC), None
    ),
    Target("big: rollback (CLI) / cp -a", ("big", ROLLBACK_CLI), ("big", NAIVE_CP), None),
    Target("one: rollback (in-process) / copytree", ("one", ROLLBACK_IN), ("one", NAIVE_IN), None),
    Target(
        "one: rollback (CLI) / cp -a + sync", ("one", ROLLBACK_CLI), ("one", NAIVE_CP_SYNC), None
    ),
    Target("big: first promote / copytree", ("big", FIRST), ("big", NAIVE_IN), None),
    Target(
        "big: first promote / rollback (in-process)", ("big", FIRST), ("big", ROLLBACK_IN), None
    ),
)


def timed_call(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Flush dirty pages (untimed), then the wall time of one call in ms, and its result."""
    os.sync()
    start = time.perf_counter()
    result = call(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, result


# --------------------------------------------------------------------------- the project


@dataclass
class Bench:
    """The project, its revisions per component, and where the naive peer deploys."""

    root: Path
    env: dict[str, str]
    revisions: dict[str, list[str]] = field(default_factory=dict)
    project: Any = None
    promoter: Any = None

    def open(self) -> None:
        from lockgate.core.project import Project
        from lockgate.operations.promote import Promoter

        self.project = Project.open(self.root, environ=dict(self.env))
        self.promoter = Promoter(self.project)

    def close(self) -> None:
        if self.project is not None:
            self.project.close()
        self.project = self.promoter = None

    def release(self, revision: str) -> Path:
        return self.root / ".lockgate" / "releases" / revision

    def entry(self, component: Component) -> Path:
        return self.root / "stages" / "production" / component.name


def build(root: Path, env: dict[str, str], res: Results) -> Bench:
    """The project, three revisions per component, and the first-promotion measurements."""
    from lockgate.operations.stage import Stager
    from lockgate.operations.validate import Validation

    run([LOCKGATE, "init", str(root)], env)
    bench = Bench(root, env)
    bench.open()
    for comp in COMPONENTS:
        src = root / "workspaces" / "bench" / "data" / comp.name
        print(f"generating and staging {comp.name} ({comp.label}) ...", file=sys.stderr)
        comp.generate(src)
        revs = []
        for n in range(3):
            if n:
                comp.change_one_file(src, comp.seed + n)
            result = Stager(bench.project).stage(comp.ref)
            expect(f"stage {comp.ref}", result.created, result.summary())
            revs.append(result.revision)
        bench.revisions[comp.name] = revs
    for comp in COMPONENTS:
        a, b, c = bench.revisions[comp.name]
        for rev in (a, b):
            ms, result = timed_call(bench.promoter.promote, comp.ref, to="staging", rev=rev)
            expect(FIRST, result.changed and not result.forced, result.summary())
            res.add((comp.name, FIRST), ms)
        store = bench.project.content()  # the local store: its release cache
        ms, _ = timed_call(store.release, c)  # type: ignore[attr-defined]
        res.add((comp.name, C_BUILD), ms)
        ms, problems = timed_call(store.verify_release, c)  # type: ignore[attr-defined]
        expect(C_HASH, problems == [], problems)
        res.add((comp.name, C_HASH), ms)
        validation = Validation(bench.project)
        ms, report = timed_call(validation.run, [comp.ref], "staging", revisions={comp.ref: c})
        expect(C_GATES, report.ready, report.summary())
        res.add((comp.name, C_GATES), ms)
        ms, result = timed_call(bench.promoter.promote, comp.ref, to="staging", rev=c)
        expect(C_SWITCH, result.changed, result.summary())
        res.add((comp.name, C_SWITCH), ms)
        for stage in ("integration", "production"):  # untimed: retain A and B, cache gates
            for rev in (a, b):
                bench.promoter.promote(comp.ref, to=stage, rev=rev)
    return bench


def switch_round(bench: Bench, comp: Component, sink: Results) -> None:
    """One promote and one rollback between A and B in production, in-process, then the
    same as two CLI processes."""
    a, b = bench.revisions[comp.name][:2]
    root = str(bench.root)

    def other() -> str:
        current = bench.entry(comp).readlink().name
        return a if current == b else b

    rev = other()
    ms, result = timed_call(bench.promoter.promote, comp.ref, to="production", rev=rev)
    expect(PROMOTE_IN, result.changed and bench.entry(comp).readlink().name == rev, result)
    sink.add((comp.name, PROMOTE_IN), ms)
    rev = other()
    rollback = bench.promoter.rollback
    ms, result = timed_call(rollback, comp.name, stage="production", to="previous")
    expect(ROLLBACK_IN, result.changed and bench.entry(comp).readlink().name == rev, result)
    sink.add((comp.name, ROLLBACK_IN), ms)

    rev = other()
    argv = [LOCKGATE, "-C", root, "promote", comp.ref, "--to", "production", "--rev", rev]
    ms, out = timed_process(argv, bench.env)
    expect(PROMOTE_CLI, "promoted" in out and bench.entry(comp).readlink().name == rev, out)
    sink.add((comp.name, PROMOTE_CLI), ms)
    rev = other()
    argv = [LOCKGATE, "-C", root, "rollback", comp.name, "--stage", "production"]
    ms, out = timed_process([*argv, "--to", "previous"], bench.env)
    expect(ROLLBACK_CLI, "rolled back" in out and bench.entry(comp).readlink().name == rev, out)
    sink.add((comp.name, ROLLBACK_CLI), ms)


NAIVE_SCRIPT = 'cp -a "$0" "$1" && if [ -e "$2" ]; then mv "$2" "$3"; fi && mv "$1" "$2"'


def naive_round(bench: Bench, comp: Component, n: int, sink: Results) -> None:
    """The naive peer, each way once: copy the revision's tree beside the live one and
    swap it in with two renames (the old tree is kept until the end)."""
    base = bench.root.parent / "naive" / comp.name
    base.mkdir(parents=True, exist_ok=True)
    live = base / "production"
    revs = bench.revisions[comp.name][:2]
    for i, row in enumerate((NAIVE_IN, NAIVE_CP, NAIVE_CP_SYNC)):
        k = 3 * n + i
        src, new, old = bench.release(revs[k % 2]), base / f".new-{k}", base / f".old-{k}"
        if row == NAIVE_IN:
            ms, _ = timed_call(naive_in_process, src, new, live, old)
        else:
            body = NAIVE_SCRIPT + (" && sync" if row == NAIVE_CP_SYNC else "")
            argv = ["sh", "-c", body, str(src), str(new), str(live), str(old)]
            ms, _ = timed_process(argv, bench.env)
        got = sorted(p.name for p in (live / "d000").iterdir())
        expect(row, len(got) == comp.files // comp.dirs, got[:3])
        sink.add((comp.name, row), ms)


def naive_in_process(src: Path, new: Path, live: Path, old: Path) -> None:
    shutil.copytree(src, new, symlinks=True)
    if live.exists():
        live.rename(old)
    new.rename(live)


# --------------------------------------------------------------------------- report


def report(res: Results, args: argparse.Namespace) -> list[dict[str, object]]:
    print(
        f"switches: median of {args.runs} after {args.warmup} warm-up; naive copies: median "
        f"of {args.copy_runs} after {args.warmup} warm-up; first promotion: 2 samples (A, B), "
        "steps for C: 1 sample; os.sync() before each timed operation; "
        f"{python_and_cores()}"
    )
    for comp in COMPONENTS:
        print(f"  {comp.name}: {comp.label}")
    print()
    return print_results("operation", ROWS, [comp.name for comp in COMPONENTS], TARGETS, res)


def main() -> None:
    parser = argparse.ArgumentParser(description="lockgate promote/rollback benchmark")
    parser.add_argument("--runs", type=int, default=20, help="switches per row (20)")
    parser.add_argument("--copy-runs", type=int, default=5, help="naive copies per row (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (1)")
    add_condition_options(parser)
    parser.add_argument("--json", type=Path, help="write the raw per-run times here")
    args = parser.parse_args()
    if args.runs < 1 or args.copy_runs < 1 or args.warmup < 0:
        parser.error("--runs and --copy-runs must be at least 1, --warmup at least 0")
    copies = 3 * (args.copy_runs + args.warmup)
    need = sum(c.files * c.size for c in COMPONENTS) * (copies + 3) * 1.1
    free = shutil.disk_usage("/tmp").free
    if free < need:
        sys.exit(f"/tmp has {free / 2**30:.1f} GiB free; this run needs about {need / 2**30:.1f}")
    with tempfile.TemporaryDirectory(prefix="lgbench-promote-", dir="/tmp") as tmp:
        root = Path(tmp)
        env = environment(root / "pycache")
        os.environ.pop("LOCKGATE_FAILPOINTS", None)
        conditions = RunConditions(root, env, prefill=not args.no_prefill, pin=args.pin_sources)
        conditions.top_up()
        run([LOCKGATE, "--version"], env)  # compiles bytecode into the pycache
        res = Results()
        bench = build(root / "proj", env, res)
        try:  # one round = each row once for each component, interleaved
            for n in range(args.warmup + args.runs):
                print(f"switches, round {n + 1}/{args.warmup + args.runs} ...", file=sys.stderr)
                for comp in COMPONENTS:
                    switch_round(bench, comp, res if n >= args.warmup else Results())
            for n in range(args.warmup + args.copy_runs):
                conditions.top_up()
                print(f"naive copies, round {n + 1} ...", file=sys.stderr)
                for comp in COMPONENTS:
                    naive_round(bench, comp, n, res if n >= args.warmup else Results())
        finally:
            bench.close()
        conditions.finish()
        computed = report(res, args)
        if args.json:
            raw = {
                "runs": args.runs,
                "copy_runs": args.copy_runs,
                "warmup": args.warmup,
                **conditions.to_json(),
                **machine_json(),
                "components": {c.name: c.label for c in COMPONENTS},
                "results": runs_json(res, "component", "operation"),
                "ratios": computed,
            }
            args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
