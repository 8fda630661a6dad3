"""One promotion in a project of many components: does a switch cost more as the project grows?

Run from the repository root with the project's virtualenv (and, for ``postgres``, a
PostgreSQL server)::

    .venv/bin/python benchmarks/promote_scale.py                      # 0 to 100,000
    .venv/bin/python benchmarks/promote_scale.py --sizes 0,1000 --stores sqlite

A project per store in a temporary directory, removed at the end: the switch project of
``promote_team.py`` with one component (``bench:c0``, staged twice and promoted into
``staging``): the ``sqlite`` project (the embedded default) and the ``postgres`` project
(``postgres`` state and content, in a database of the run's own, dropped at the end). It
then grows, size after size (``--sizes``), by components of another workspace
(``other:o<n>``, one in ten of them also staged from a third workspace under the same
id), each current in ``staging``: rows inserted straight into the store's tables (what
``lockgate`` would write for them, in seconds instead of hours), the tables analysed on
PostgreSQL.

What is timed at each size, in this process with each project opened once: ``--runs``
switches of ``bench:c0`` between its two revisions (``Promoter.promote``, gates and all,
after ``--warmup`` untimed), the stores alternating within each round; the ratio to the same
switch at the first size (a project of one component) is how much the project's size
costs. The peer, timed next at each size, as many times: what a gate read before it
asked only about the ids its validators need, every component and every pointer of the
stage (``state.components()`` and ``state.pointers("staging")`` through the same
store), which grows with the project. No assertions: the figures are printed.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import build_switch_project as build
from _common import load_average, plugin_env, python_and_cores

STORES = ("sqlite", "postgres")
WHEN = "2026-12-01T00:00:00Z"


def grow(root: Path, store: str, dsn: str | None, revision: str, start: int, end: int) -> None:
    """Components ``other:o<start>`` … ``other:o<end - 1>`` current in ``staging`` (one
    in ten also staged as ``rival:o<n>``), inserted into the store's tables."""
    rows = [
        (f"{ws}:o{n}", ws, f"o{n}", "scripts", "promoted" if ws == "other" else "staged", revision)
        for n in range(start, end)
        for ws in (("other", "rival") if n % 10 == 0 else ("other",))
    ]
    pointers = [("staging", f"o{n}", f"other:o{n}", revision) for n in range(start, end)]
    if store == "sqlite":
        db = sqlite3.connect(root / ".lockgate" / "state.db")
        with db:
            db.executemany(f"INSERT INTO components VALUES (?, ?, ?, ?, ?, ?, '{WHEN}')", rows)
            db.executemany(
                f"INSERT INTO pointers VALUES (?, ?, ?, ?, 1, '{WHEN}', 'bench')", pointers
            )
        db.close()
        return
    import psycopg

    assert dsn is not None
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY lockgate.components (project, component, workspace, component_id, "
            "component_type, status, latest_revision, updated_at) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(("bench", *row, WHEN))
        with cur.copy(
            "COPY lockgate.pointers (project, stage, component_id, component, revision, "
            "generation, updated_at, actor) FROM STDIN"
        ) as copy:
            for pointer in pointers:
                copy.write_row(("bench", *pointer, 1, WHEN, "bench"))
        cur.execute("ANALYZE lockgate.components, lockgate.pointers")


def measure(
    roots: dict[str, Path], revisions: dict[str, list[str]], runs: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    """Switch times, then whole-project read times (ms) of each store, the stores
    alternating (the reads after the switches: they fill the caches with every row)."""
    from lockgate.core.project import Project
    from lockgate.operations.promote import Promoter

    projects = {s: Project.open(roots[s], environ=plugin_env(s)) for s in roots}
    promoters = {s: Promoter(projects[s]) for s in roots}
    times: dict[str, dict[str, list[float]]] = {s: {"switch": [], "whole": []} for s in roots}
    try:
        for i in range(warmup + runs):
            for store, promoter in promoters.items():
                start = time.perf_counter()
                promoter.promote("bench:c0", to="staging", rev=revisions[store][i % 2])
                if i >= warmup:
                    times[store]["switch"].append((time.perf_counter() - start) * 1000)
        for i in range(runs + 1):
            for store, project in projects.items():
                start = time.perf_counter()
                project.state().components()
                project.state().pointers("staging")
                if i >= 1:
                    times[store]["whole"].append((time.perf_counter() - start) * 1000)
    finally:
        for project in projects.values():
            project.close()
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else max(values)


def report(sizes: list[int], results: dict[int, dict[str, dict[str, list[float]]]]) -> None:
    stores = list(results[sizes[0]])
    header = f"{'components':>11}"
    for store in stores:
        header += f"{store + ' switch':>17}{'p95':>8}{'x first':>9}{'whole read':>12}"
    print(header)
    first = {s: statistics.median(results[sizes[0]][s]["switch"]) for s in stores}
    for size in sizes:
        line = f"{size + 1:>11,}"
        for store in stores:
            switch = results[size][store]["switch"]
            whole = statistics.median(results[size][store]["whole"])
            line += f"{statistics.median(switch):>17.1f}{p95(switch):>8.1f}"
            line += f"{statistics.median(switch) / first[store]:>8.2f}x{whole:>12.1f}"
        print(line)
    print(
        "\n(ms, median and p95 of the switches at each size; 'x first': the median over the "
        "first size's; 'whole read': every component and the stage's every pointer read "
        "through the store, what a gate read before, the peer)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,1000,10000,100000", help="other components")
    parser.add_argument("--runs", type=int, default=30, help="timed switches per size (30)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed switches per size")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--pg-server", default="host=127.0.0.1 port=5432 user=postgres")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    stores = [s for s in args.stores.split(",") if s]
    unknown = set(stores) - set(STORES)
    if unknown or not stores:
        raise SystemExit(f"promote_scale: --stores takes {', '.join(STORES)}")
    started_load = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="lgscale-"))
    results: dict[int, dict[str, dict[str, list[float]]]] = {}
    try:
        with _database(args.pg_server, "postgres" in stores) as dsn:
            roots = {s: tmp / s for s in stores}
            revisions = {s: build(roots[s], s, dsn, 1)["bench:c0"] for s in stores}
            have = 0
            for size in sizes:
                for store in stores:
                    grow(roots[store], store, dsn, revisions[store][0], have, size)
                have = size
                results[size] = measure(roots, revisions, args.runs, args.warmup)
                print(f"  measured {size + 1:,} components", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"promote_scale: {python_and_cores()}; {args.runs} switches per size and store "
        f"after {args.warmup} untimed"
    )
    print(f"load average (1/5/15 min): {started_load} at the start, {load_average()} at the end\n")
    report(sizes, results)


class _NoServer:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _database(server: str, wanted: bool) -> Any:
    if not wanted:
        return _NoServer()
    from _state_scale_pg import scratch_database

    return scratch_database(server, "promote_scale")


if __name__ == "__main__":
    main()
