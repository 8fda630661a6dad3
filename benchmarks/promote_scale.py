"""One promotion in a big project, or of a component staged many times: does a switch cost
more as the project grows, or as a watcher stages save after save?

Run from the repository root with the project's virtualenv (and, for ``postgres``, a
PostgreSQL server)::

    .venv/bin/python benchmarks/promote_scale.py                      # both, about 4 min
    .venv/bin/python benchmarks/promote_scale.py --sizes 0,1000 --stagings 0 --stores sqlite

A project per store in a temporary directory, removed at the end: the switch project of
``promote_team.py`` with one component (``bench:c0``, staged twice and promoted into
``staging``): the ``sqlite`` project (the embedded default) and the ``postgres`` project
(``postgres`` state and content, in a database of the run's own, dropped at the end; the
stagings below get projects and a database of their own). It
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
store), which grows with the project.

Then the same in two fresh projects whose ``bench:c0`` is staged again and again
(``--stagings``, each a real ``Stager.stage`` of a changed file, each revision the parent
of the next, as a watcher stages them; on PostgreSQL then ``ANALYZE``, as autovacuum
would soon after) before the timed switches between its first two
revisions: the ratio to the switch after no more stagings, and the peer, what a gate read
before it walked only the revisions it is about: every revision of the component and
every ``stage`` event of it (``state.revisions`` and ``state.events``). No assertions: the
figures are printed.
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


def restage(root: Path, store: str, dsn: str | None, start: int, end: int) -> None:
    """Stage ``bench:c0`` ``end - start`` more times, a changed file each time; on
    PostgreSQL then ``ANALYZE``, what autovacuum does within a minute of such a burst
    (the planner's choice of index for a revision's stagings needs the statistics)."""
    from lockgate.core.project import Project
    from lockgate.operations.stage import Stager

    project = Project.open(root, environ=plugin_env(store))
    try:
        stager, main = Stager(project), root / "workspaces" / "bench" / "scripts" / "c0"
        for n in range(start, end):
            (main / "main.py").write_text(f"SAVE = {n}\n", encoding="utf-8")
            stager.stage("bench:c0")
    finally:
        project.close()
    if store == "postgres" and dsn is not None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")


def whole_project(state: Any) -> None:
    state.components()
    state.pointers("staging")


def whole_history(state: Any) -> None:
    from lockgate.plugin import EventFilter

    state.revisions("bench:c0")
    state.events(EventFilter(component="bench:c0", action="stage"))


def measure(
    roots: dict[str, Path],
    revisions: dict[str, list[str]],
    runs: int,
    warmup: int,
    whole: Any = whole_project,
) -> dict[str, dict[str, list[float]]]:
    """Switch times, then the peer's read times (ms, ``whole``: what a gate read before)
    of each store, the stores alternating (the reads after the switches: they fill the
    caches with every row)."""
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
                whole(project.state())
                if i >= 1:
                    times[store]["whole"].append((time.perf_counter() - start) * 1000)
    finally:
        for project in projects.values():
            project.close()
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else max(values)


def report(
    sizes: list[int], results: dict[int, dict[str, dict[str, list[float]]]], label: str
) -> None:
    stores = list(results[sizes[0]])
    header = f"{label:>11}"
    for store in stores:
        header += f"{store + ' switch':>17}{'p95':>8}{'x first':>9}{'peer read':>11}"
    print(header)
    first = {s: statistics.median(results[sizes[0]][s]["switch"]) for s in stores}
    for size in sizes:
        line = f"{size:>11,}"
        for store in stores:
            switch = results[size][store]["switch"]
            whole = statistics.median(results[size][store]["whole"])
            line += f"{statistics.median(switch):>17.1f}{p95(switch):>8.1f}"
            line += f"{statistics.median(switch) / first[store]:>8.2f}x{whole:>11.1f}"
        print(line)


def series(
    tmp: Path, stores: list[str], dsn: str | None, args: argparse.Namespace, kind: str
) -> dict[int, dict[str, dict[str, list[float]]]]:
    """The switches at each count of ``kind``: ``components`` in the project (the key:
    the project's components, ``bench:c0`` among them), or more ``stagings`` of
    ``bench:c0``."""
    roots = {s: tmp / f"{s}-{kind}" for s in stores}
    revisions = {s: build(roots[s], s, dsn, 1)["bench:c0"] for s in stores}
    counts, whole = (
        (args.sizes, whole_project) if kind == "components" else (args.stagings, whole_history)
    )
    results, have = {}, 0
    for count in sorted(int(n) for n in counts.split(",")):
        for store in stores:
            if kind == "components":
                grow(roots[store], store, dsn, revisions[store][0], have, count)
            else:
                restage(roots[store], store, dsn, have, count)
        have = count
        key = count + 1 if kind == "components" else count
        results[key] = measure(roots, revisions, args.runs, args.warmup, whole)
        print(f"  measured {kind} {key:,}", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,1000,10000,100000", help="other components")
    parser.add_argument("--stagings", default="0,1000,5000", help="more stagings of bench:c0")
    parser.add_argument("--runs", type=int, default=30, help="timed switches per size (30)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed switches per size")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--pg-server", default="host=127.0.0.1 port=5432 user=postgres")
    args = parser.parse_args()
    stores = [s for s in args.stores.split(",") if s]
    unknown = set(stores) - set(STORES)
    if unknown or not stores:
        raise SystemExit(f"promote_scale: --stores takes {', '.join(STORES)}")
    started_load = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="lgscale-"))
    try:
        # A database each: the postgres projects of both share the project key "bench".
        with _database(args.pg_server, "postgres" in stores) as dsn:
            components = series(tmp, stores, dsn, args, "components") if args.sizes else {}
        with _database(args.pg_server, "postgres" in stores) as dsn:
            stagings = series(tmp, stores, dsn, args, "stagings") if args.stagings else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"promote_scale: {python_and_cores()}; {args.runs} switches per size and store "
        f"after {args.warmup} untimed"
    )
    print(f"load average (1/5/15 min): {started_load} at the start, {load_average()} at the end")
    if components:
        print("\none switch in a project of N components (ms)")
        report(sorted(components), components, "components")
    if stagings:
        print("\none switch of a component staged N more times (ms)")
        report(sorted(stagings), stagings, "stagings")
    print(
        "\n(median and p95 of the switches; 'x first': the median over the first row's; "
        "'peer read': what a gate read before, through the same store: every component "
        "and the stage's every pointer, or every revision and staging of the component)"
    )


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
