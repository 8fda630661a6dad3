"""Promotions on PostgreSQL beside SQLite: one runner's latency, and many runners' throughput.

Run from the repository root with the project's virtualenv and a PostgreSQL server::

    .venv/bin/python benchmarks/promote_team.py                 # 8 runners, 40 switches
    .venv/bin/python benchmarks/promote_team.py --runners 4 --runs 20 \\
        --pg-server "host=db.internal user=me"                 # a libpq string, no dbname

Two projects in a temporary directory, removed at the end, each with ``--runners``
components of one small file (``bench:c0`` …) staged twice (revisions A and B) and both
promoted into ``staging`` once, so every timed switch moves between retained revisions
(the release is laid out, its gate result cached): the ``sqlite`` project (the embedded
default: ``sqlite`` state, ``local`` content) and the ``postgres`` project (``postgres``
state and content, in a database of the run's own on the server, dropped at the end).
What is timed, each switch a ``promote --to staging --rev`` to the other revision:

* **one runner's latency**, in this process with each project opened once
  (``Promoter.promote``), ``--runs`` switches after ``--warmup`` untimed ones, the two
  projects alternating within each round; and as whole processes (``lockgate -C PROJ
  promote …``, ``--cli-runs`` each, start-up included). Target: PostgreSQL's median at
  most 1.5x SQLite's (in-process).
* **throughput**: ``--runners`` processes at once, each switching its own component
  (``bench:c<n>``) ``--per-runner`` times, all started together, beside one such process
  alone; switches per second over the wall time from the first start to the last end.
  Two kinds of runner: an API runner (the project opened once, ``Promoter.promote`` in a
  loop: a long-lived process) and a CLI runner (a ``lockgate promote`` process per
  switch, as a CI job runs it). Target: N runners on PostgreSQL reach at least 3x one
  runner's throughput. The same for SQLite, beside it.

A promote or rollback holds the project's ``operation`` lock shared and its component's
lock (the ``directory`` target takes concurrent switches), so N runners on distinct
components overlap their switches too; what they still share is the audit chain's head,
which every state write holds for its transaction, and the machine's cores. There are no
assertions; ratios are printed with PASS/FAIL against their targets. Example plugins and
the other backends are disabled (``LOCKGATE_DISABLE_PLUGINS``), as in every benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import build_switch_project as build
from _common import inherited_environment, load_average, plugin_env, python_and_cores
from _state_scale_pg import scratch_database

STORES = ("sqlite", "postgres")
LATENCY_TARGET = 1.5
THROUGHPUT_TARGET = 3.0


# --------------------------------------------------------------------------- one runner


def runner_main(spec: dict[str, Any]) -> int:
    """A runner process: wait for the start signal, switch ``count`` times, report."""
    root, ref, store = Path(spec["root"]), spec["ref"], spec["store"]
    revisions, count, mode = spec["revisions"], int(spec["count"]), spec["mode"]
    env = plugin_env(store)
    if mode == "api":
        from lockgate.core.project import Project
        from lockgate.operations.promote import Promoter

        os.environ["PGAPPNAME"] = app = f"lgbench-{os.getpid()}"  # its server sessions
        project = Project.open(root, environ=env)
        promoter = Promoter(project)
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.002)
    start = time.time()
    if mode == "api":
        cpu = time.process_time(), server_cpu(spec.get("dsn"), app)
    for i in range(count):
        revision = revisions[(i + 1) % 2]
        if mode == "api":
            promoter.promote(ref, to="staging", rev=revision)
        else:
            cli(root, env, "promote", ref, "--to", "staging", "--rev", revision)
    end = time.time()
    report: dict[str, Any] = {"start": start, "end": end, "count": count}
    if mode == "api":
        report["client_cpu"] = time.process_time() - cpu[0]
        report["server_cpu"] = server_cpu(spec.get("dsn"), app) - cpu[1]
        project.close()
    print(json.dumps(report))
    return 0


def server_cpu(dsn: str | None, app: str) -> float:
    """CPU seconds the server's sessions named ``app`` have used (0 without a server, or
    when their processes cannot be read: a server on another host)."""
    if dsn is None:
        return 0.0
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
            )
        ]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cli(root: Path, env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lockgate", "-C", str(root), *args],
        env=inherited_environment() | env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"lockgate {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")


def throughput(
    root: Path,
    store: str,
    revisions: dict[str, list[str]],
    runners: int,
    count: int,
    mode: str,
    dsn: str | None = None,
) -> tuple[float, float]:
    """Switches per second of ``runners`` processes started together, and the cores their
    switches kept busy on average (API runners: client and server CPU over the wall time;
    0 for CLI runners)."""
    go = root.parent / f"go-{store}-{mode}-{runners}"
    procs = []
    for n in range(runners):
        ref = f"bench:c{n}"
        spec = {
            "root": str(root),
            "ref": ref,
            "store": store,
            "revisions": revisions[ref],
            "count": count,
            "mode": mode,
            "go": str(go),
            "dsn": dsn if store == "postgres" else None,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--runner", json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=inherited_environment(),
            )
        )
    time.sleep(3.0 if mode == "api" else 0.5)  # API runners open their project first
    go.touch()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a {store} {mode} runner failed: {err.strip()}")
        reports.append(json.loads(out))
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    busy = sum(r.get("client_cpu", 0.0) + r.get("server_cpu", 0.0) for r in reports) / wall
    return sum(r["count"] for r in reports) / wall, busy


# --------------------------------------------------------------------------- latency


def latency(
    roots: dict[str, Path], revisions: dict[str, dict[str, list[str]]], runs: int, warmup: int
) -> dict[str, list[float]]:
    """In-process switch times (ms) of each store, alternating within each round."""
    from lockgate.core.project import Project
    from lockgate.operations.promote import Promoter

    projects = {s: Project.open(roots[s], environ=plugin_env(s)) for s in STORES}
    promoters = {s: Promoter(projects[s]) for s in STORES}
    times: dict[str, list[float]] = {s: [] for s in STORES}
    try:
        for i in range(warmup + runs):
            for store in STORES:
                revision = revisions[store]["bench:c0"][i % 2]
                start = time.perf_counter()
                promoters[store].promote("bench:c0", to="staging", rev=revision)
                if i >= warmup:
                    times[store].append((time.perf_counter() - start) * 1000)
    finally:
        for project in projects.values():
            project.close()
    return times


def cli_latency(
    roots: dict[str, Path], revisions: dict[str, dict[str, list[str]]], runs: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s: [] for s in STORES}
    for i in range(runs + 1):
        for store in STORES:
            revision = revisions[store]["bench:c0"][i % 2]
            start = time.perf_counter()
            cli(
                roots[store],
                plugin_env(store),
                "promote",
                "bench:c0",
                "--to",
                "staging",
                "--rev",
                revision,
            )
            if i:
                times[store].append((time.perf_counter() - start) * 1000)
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[18] if len(times) > 1 else max(times)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runners", type=int, default=8)
    parser.add_argument("--runs", type=int, default=40, help="timed in-process switches (40)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cli-runs", type=int, default=7)
    parser.add_argument("--per-runner", type=int, default=30, help="API switches per runner")
    parser.add_argument("--cli-per-runner", type=int, default=6, help="CLI switches per runner")
    parser.add_argument("--pg-server", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--runner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runner is not None:
        sys.exit(runner_main(json.loads(args.runner)))
    started_load = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="lgteam-"))
    try:
        with scratch_database(args.pg_server, "promote_team") as dsn:
            roots = {s: tmp / s for s in STORES}
            revisions = {s: build(roots[s], s, dsn, args.runners) for s in STORES}
            times = latency(roots, revisions, args.runs, args.warmup)
            cli_times = cli_latency(roots, revisions, args.cli_runs)
            rates: dict[tuple[str, str, int], tuple[float, float]] = {}
            for mode, count in (("api", args.per_runner), ("cli", args.cli_per_runner)):
                for store in STORES:
                    for runners in (1, args.runners):
                        rates[store, mode, runners] = throughput(
                            roots[store], store, revisions[store], runners, count, mode, dsn
                        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, times, cli_times, rates, started_load)


def report(
    args: argparse.Namespace,
    times: dict[str, list[float]],
    cli_times: dict[str, list[float]],
    rates: dict[tuple[str, str, int], tuple[float, float]],
    started_load: str,
) -> None:
    print(f"promote_team: {python_and_cores()}; PostgreSQL at {args.pg_server}")
    print(f"load average (1/5/15 min): {started_load} at the start, {load_average()} at the end")
    print(
        f"\none runner's switch latency, ms ({args.runs} in-process after {args.warmup} "
        f"warm-up, {args.cli_runs} CLI processes after 1)"
    )
    print(f"{'':<28}{'sqlite med':>11}{'p95':>8}{'postgres med':>14}{'p95':>8}{'pg/sqlite':>11}")
    for label, data in (("promote, in-process", times), ("lockgate promote (CLI)", cli_times)):
        s, p = data["sqlite"], data["postgres"]
        ratio = statistics.median(p) / statistics.median(s)
        print(
            f"{label:<28}{statistics.median(s):>11.1f}{p95(s):>8.1f}"
            f"{statistics.median(p):>14.1f}{p95(p):>8.1f}{ratio:>10.2f}x"
        )
    ratio = statistics.median(times["postgres"]) / statistics.median(times["sqlite"])
    print(
        f"target: postgres / sqlite in-process at most {LATENCY_TARGET}x: {ratio:.2f}x "
        f"{verdict(ratio <= LATENCY_TARGET)}"
    )
    n = args.runners
    print("\nthroughput, switches per second (each runner on its own component)")
    print(f"{'':<34}{'1 runner':>10}{f'{n} runners':>12}{'ratio':>9}")
    for mode, what in (("api", "API runners (project open once)"), ("cli", "CLI runners")):
        for store in STORES:
            one, many = rates[store, mode, 1][0], rates[store, mode, n][0]
            target = f"  target {THROUGHPUT_TARGET}x: {verdict(many / one >= THROUGHPUT_TARGET)}"
            print(
                f"{store + ', ' + what:<34}{one:>10.1f}{many:>12.1f}{many / one:>8.2f}x"
                + (target if store == "postgres" else "")
            )
    cores = os.cpu_count() or 1
    print(
        f"\nCPU of the API runners (client process + its server sessions), {cores} cores: "
        f"the ratio N runners can reach is at most {cores} / the cores one runner keeps busy"
    )
    print(
        f"{'':<10}{'1 runner: cores busy':>22}{'CPU ms/switch':>15}{'bound':>8}"
        f"{f'{n} runners: cores busy':>24}"
    )
    for store in STORES:
        (rate1, busy1), (_, busy_n) = rates[store, "api", 1], rates[store, "api", n]
        per_switch = busy1 / rate1 * 1000
        bound = cores / busy1 if busy1 else float("inf")
        print(f"{store:<10}{busy1:>22.2f}{per_switch:>15.1f}{bound:>7.2f}x{busy_n:>24.2f}")


if __name__ == "__main__":
    main()
