"""Pipelines: planning a large pipeline beside graphlib, and promoting a pipeline beside
one ``lockgate promote`` process per member.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/pipeline.py                          # the full sizes
    .venv/bin/python benchmarks/pipeline.py --plan-components 100 --plan-levels 5 \\
        --members 10 --runs 1                                        # a quick check

Two projects (``lockgate init``, default configuration) in a temporary directory under
/tmp, removed at the end, each with components of one small file each in workspace
``bench``, staged by one ``lockgate sync``.

**(a) planning.** ``--plan-components`` (1,000) components in ``--plan-levels`` (10)
levels of equal size; every component of a level above the first depends on two of the
level below (``depends_on`` in ``pipelines/big.yaml``). Timed in this process, with the
project opened once: ``plan_pipeline(session, "big", "staging")`` (reading the file and
checking it, resolving every member, its candidate revision and its ``component.yaml``
from the state and content stores, the levels, what each step does), median of
``--runs``; beside it the peer, a plain ``graphlib.TopologicalSorter`` over the same
graph (``prepare``, then ``get_ready``/``done`` level by level), median of the same
number of runs. Target: the plan under 50 ms. The peer shows what of that is the graph.

**(b) promoting.** ``--members`` (100) components with no dependencies, promoted into
``staging``: as one pipeline run (``lockgate pipeline promote many --to staging``, one
process: gates over all members, one intent, one group switch of the ``directory``
target, one pointer move per member) against the same members promoted by one ``lockgate
promote bench:<id> --to staging`` process each, one after the other (each: start-up,
plugins, gates, intent, switch, record). Each round starts from a fresh copy of the
staged project (nothing promoted), the pipeline's and the processes' alternately, so a
change of machine load hits both; median of ``--runs`` rounds. Target: the pipeline at
least 5 times faster end to end.

There are no assertions; ratios are printed with PASS/FAIL against their targets, and
the load average at the start and the end. Every lockgate process runs with the example
plugins disabled (``LOCKGATE_DISABLE_PLUGINS``).
"""

from __future__ import annotations

import argparse
import graphlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    LOCKGATE,
    environment,
    load_average,
    load_line,
    print_table,
    python_and_cores,
    run,
    timed_process,
)

PLAN_TARGET_MS = 50.0
SPEEDUP_TARGET = 5.0


def make_project(root: Path, env: dict[str, str], count: int) -> list[str]:
    """A project with ``count`` components of one file, staged; their ids."""
    run([LOCKGATE, "init", str(root)], env)
    ids = [f"c{n:04d}" for n in range(count)]
    for cid in ids:
        where = root / "workspaces" / "bench" / "scripts" / cid
        where.mkdir(parents=True)
        (where / "run.py").write_text(f"print({cid!r})\n")
    run([LOCKGATE, "-C", str(root), "sync"], env)
    return ids


def layered_graph(ids: list[str], levels: int) -> dict[str, list[str]]:
    """Each id of a level above the first depends on two ids of the level below."""
    size = len(ids) // levels
    graph: dict[str, list[str]] = {}
    for index, cid in enumerate(ids):
        level = min(index // size, levels - 1)
        below = ids[(level - 1) * size : level * size] if level else []
        graph[cid] = (
            [below[index % len(below)], below[(index * 7 + 3) % len(below)]] if below else []
        )
    return graph


def sorter_levels(graph: dict[str, list[str]]) -> list[list[str]]:
    """The peer: graphlib's levels of the same graph."""
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    levels = []
    while sorter.is_active():
        ready = sorter.get_ready()
        levels.append(sorted(ready))
        sorter.done(*ready)
    return levels


def bench_plan(
    tmp: Path, env: dict[str, str], count: int, levels: int, runs: int
) -> dict[str, float]:
    root = tmp / "plan"
    ids = make_project(root, env, count)
    graph = layered_graph(ids, levels)
    refs = {cid: f"bench:{cid}" for cid in ids}
    lines = [f"components: [{', '.join(refs[c] for c in ids)}]", "depends_on:"]
    lines += [
        f"  {refs[c]}: [{', '.join(refs[d] for d in deps)}]" for c, deps in graph.items() if deps
    ]
    (root / "pipelines").mkdir()
    (root / "pipelines" / "big.yaml").write_text("\n".join(lines) + "\n")

    from lockgate.core.project import Project
    from lockgate.core.session import Session
    from lockgate.operations.pipeline_spec import plan_pipeline

    project = Project.open(root, environ=dict(env))
    try:
        session = Session(project)
        plan = plan_pipeline(session, "big", "staging")  # warm-up, and the check
        want = sorter_levels({refs[c]: [refs[d] for d in deps] for c, deps in graph.items()})
        got = [sorted(s.component for s in level) for level in plan.levels]
        if got != want:
            sys.exit("the plan's levels differ from graphlib's")
        plans, peers = [], []
        for _ in range(runs):
            started = time.perf_counter()
            plan_pipeline(session, "big", "staging")
            plans.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            sorter_levels(graph)
            peers.append((time.perf_counter() - started) * 1000)
    finally:
        project.close()
    return {"plan": statistics.median(plans), "graphlib": statistics.median(peers)}


def bench_promote(tmp: Path, env: dict[str, str], count: int, runs: int) -> dict[str, float]:
    staged = tmp / "staged"
    ids = make_project(staged, env, count)
    (staged / "pipelines").mkdir()
    members = ", ".join(f"bench:{cid}" for cid in ids)
    (staged / "pipelines" / "many.yaml").write_text(f"components: [{members}]\n")
    pipeline: list[float] = []
    singles: list[float] = []
    for n in range(runs):
        for kind in ("pipeline", "singles") if n % 2 == 0 else ("singles", "pipeline"):
            work = tmp / f"work-{n}-{kind}"
            shutil.copytree(staged, work, symlinks=True)
            os.sync()
            started = time.perf_counter()
            if kind == "pipeline":
                timed_process(
                    [LOCKGATE, "-C", str(work), "pipeline", "promote", "many", "--to", "staging"],
                    env,
                    sync=False,
                )
            else:
                for cid in ids:
                    timed_process(
                        [LOCKGATE, "-C", str(work), "promote", f"bench:{cid}", "--to", "staging"],
                        env,
                        sync=False,
                    )
            elapsed = (time.perf_counter() - started) * 1000
            (pipeline if kind == "pipeline" else singles).append(elapsed)
            deployed = sorted(p.name for p in (work / "stages" / "staging").iterdir())
            if deployed != ids:
                sys.exit(f"{kind}: staging holds {len(deployed)} of {len(ids)} members")
            shutil.rmtree(work)
    return {"pipeline": statistics.median(pipeline), "singles": statistics.median(singles)}


def main() -> None:
    parser = argparse.ArgumentParser(description="lockgate pipeline benchmark")
    parser.add_argument("--plan-components", type=int, default=1000, help="(1000)")
    parser.add_argument("--plan-levels", type=int, default=10, help="(10)")
    parser.add_argument("--plan-runs", type=int, default=20, help="timed plans (20)")
    parser.add_argument("--members", type=int, default=100, help="pipeline members (100)")
    parser.add_argument("--runs", type=int, default=3, help="promotion rounds (3)")
    args = parser.parse_args()
    if args.plan_levels < 2 or args.plan_components < 2 * args.plan_levels or args.members < 1:
        parser.error("give at least 2 levels of 2 components, and 1 member")
    start_load = load_average()
    with tempfile.TemporaryDirectory(prefix="lgbench-pipeline-", dir="/tmp") as name:
        tmp = Path(name)
        env = environment(tmp / "pycache")
        os.environ.pop("LOCKGATE_FAILPOINTS", None)
        run([LOCKGATE, "--version"], env)  # compiles bytecode into the pycache
        plan = bench_plan(tmp, env, args.plan_components, args.plan_levels, args.plan_runs)
        promote = bench_promote(tmp, env, args.members, args.runs)
    end_load = load_average()
    print(f"lockgate pipelines; {python_and_cores()}; {load_line(start_load, end_load)}")
    print()
    print(
        f"(a) planning {args.plan_components} components in {args.plan_levels} levels, "
        f"median of {args.plan_runs}"
    )
    print_table(
        ["", "ms"],
        [
            ["plan_pipeline (in-process)", f"{plan['plan']:.1f}"],
            ["graphlib.TopologicalSorter", f"{plan['graphlib']:.2f}"],
        ],
    )
    verdict = "PASS" if plan["plan"] < PLAN_TARGET_MS else "FAIL"
    print(f"target: plan < {PLAN_TARGET_MS:g} ms: {verdict}")
    print()
    print(f"(b) promoting {args.members} members into staging, median of {args.runs} rounds")
    ratio = promote["singles"] / promote["pipeline"]
    print_table(
        ["", "s"],
        [
            ["lockgate pipeline promote (1 process)", f"{promote['pipeline'] / 1000:.2f}"],
            [f"lockgate promote x {args.members} processes", f"{promote['singles'] / 1000:.2f}"],
        ],
    )
    verdict = "PASS" if ratio >= SPEEDUP_TARGET else "FAIL"
    print(f"target: the pipeline >= {SPEEDUP_TARGET:g}x faster: {ratio:.1f}x {verdict}")


if __name__ == "__main__":
    main()
