"""``lockgate serve`` under load: many clients reading while others promote and roll back.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/server_load.py                  # 100 clients, 60 s
    .venv/bin/python benchmarks/server_load.py --smoke          # a few seconds
    .venv/bin/python benchmarks/server_load.py --clients 50 --duration 30 \\
        --stores sqlite --json load.json

For each store (``sqlite``, the embedded default; ``postgres`` — state and content — in
a database of the run's own on ``--pg-server``, dropped at the end, when a server
answers there), a project in a temporary directory with ``--components`` components of
one small file (``bench:c0`` …), each staged twice (revisions A and B) and both promoted
into ``staging`` once, so every switch moves between retained revisions. A real
``lockgate serve`` on 127.0.0.1 (a free port) serves it, and:

* **under load**: ``--clients`` concurrent HTTP clients (httpx, asynchronous, each with
  its own connection), for ``--duration`` seconds, spread over ``--client-procs``
  processes (2: the clients' own CPU time is reported beside the server's, so a run can
  tell whether the load generator was the bottleneck). By default a client sends its
  next request the moment an answer arrives (the headline figure); ``--think-ms T``
  makes each pause a random 0.5T to 1.5T between requests (a labelled, separate figure).
  Each request is a read (a share ``--reads`` of them: ``GET /api/v1/components``,
  ``GET /api/v1/components/{ref}`` or ``GET /api/v1/stages``) or a switch of a random
  component in ``staging``: a promotion to one of its two revisions
  (``POST .../promote``) or a rollback to one of them (``POST .../rollback``, ``to``);
  a switch to the current revision changes nothing.
  Every status is counted; latencies are kept per kind.
* **beside it, in the same run**, one caller at a time: the same read (the component
  list) and the same promotion through the server with one client, through the command
  line (``lockgate ls --json``, ``lockgate promote``: a process each, start-up included)
  and in-process through the operations layer (``list_components``,
  ``Promoter.promote``, the project opened once).
* **one kind at a time** (``--each N``, 300): the server's CPU time per request of each
  kind (the component list, one component, the stages, a promotion), N requests of one
  kind after another from one client, after the load (with the histories it grew).

Then the checks, which make the exit status non-zero when they fail: no answer was a 5xx;
``lockgate audit verify`` passes; and no update was lost — for every component, the
number of switches the clients were told happened (``changed: true``), the switch events
the audit log recorded and the moves of the stage pointer (its generation) are the same
number, and the pointer holds the revision of the last audited switch. Timings are
reported with the ``uptime`` load average, read p95 against its target (50 ms) with
PASS/FAIL, never as an exit status. Every promote and rollback takes the project's
operation lock, so switches are serial per project: the load measures how reads fare
beside them and how long a switch waits its turn. Example plugins and the other backends
are disabled (``LOCKGATE_DISABLE_PLUGINS``), as in every benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import build_switch_project as build
from _common import inherited_environment, load_average, plugin_env, python_and_cores

STAGE = "staging"
READ_P95_TARGET_MS = 50.0


def p95(times: list[float]) -> float:
    if not times:
        return float("nan")
    return statistics.quantiles(times, n=20)[18] if len(times) > 1 else times[0]


def median(times: list[float]) -> float:
    return statistics.median(times) if times else float("nan")


# --------------------------------------------------------------------------- the project


class Skipped(Exception):
    """A store this run cannot measure, and why (one line)."""


def admin_token(root: Path, store: str) -> str:
    from lockgate.core.project import Project
    from lockgate.core.session import Session
    from lockgate.errors import MissingCapabilityError
    from lockgate.operations.tokens import create_token

    project = Project.open(root, environ=plugin_env(store))
    try:
        return create_token(Session(project), "loadbench", "admin")[0]
    except MissingCapabilityError as exc:  # a store without AccessTokens cannot serve
        raise Skipped(exc.message) from None
    finally:
        project.close()


def snapshot(root: Path, store: str) -> tuple[dict[str, tuple[str | None, int]], int]:
    """Each component's pointer in the stage (revision, generation), and the last audit seq."""
    from lockgate.contracts.state import EventFilter
    from lockgate.core.project import Project
    from lockgate.core.session import Session

    project = Project.open(root, environ=plugin_env(store))
    try:
        state = Session(project).state()
        pointers = {p.component: (p.revision, p.generation) for p in state.pointers(STAGE)}
        last = state.events(EventFilter(limit=1, newest_first=True))
        return pointers, (last[0].seq or 0) if last else 0
    finally:
        project.close()


def switch_events(root: Path, store: str, after: int) -> list[Any]:
    """The switches the audit log recorded after seq ``after``, oldest first."""
    from lockgate.contracts.state import EventFilter
    from lockgate.core.project import Project
    from lockgate.core.session import Session

    project = Project.open(root, environ=plugin_env(store))
    try:
        events = Session(project).state().events(EventFilter(stage=STAGE, limit=10**9))
        return [
            e
            for e in events
            if (e.seq or 0) > after and e.action in ("promote", "rollback") and e.outcome == "ok"
        ]
    finally:
        project.close()


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process ``pid`` and its live children (the workers of
    ``serve --workers N``) have used so far (None: not on Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = [
            int(k)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for k in (task / "children").read_text().split()
        ]
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(k) or 0.0 for k in kids)


@contextlib.contextmanager
def serving(
    root: Path, store: str, http: str = "auto", workers: int = 1
) -> Iterator[tuple[str, int]]:
    """A real ``lockgate serve`` on the project; its base URL and process id."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lockgate",
            "-C",
            str(root),
            "serve",
            "--port",
            str(port),
            "--auth-failures",
            "1000000",
            "--timeout",
            "600",
            "--http",
            http,
            "--workers",
            str(workers),
        ],
        env=inherited_environment() | plugin_env(store),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"server_load: lockgate serve did not start: {proc.stderr}")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


# --------------------------------------------------------------------------- the load


class Tally:
    """What the clients saw: latencies by kind, statuses, switches reported done."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {"read": [], "promote": [], "rollback": []}
        self.statuses: Counter[str] = Counter()
        self.changed: Counter[str] = Counter()
        self.errors: list[str] = []
        self.refusals: dict[str, str] = {}
        """The first message of each refused kind of request (4xx): why it was refused."""
        self.cpu = 0.0
        """CPU seconds the client processes used."""

    def merge(self, other: Tally) -> None:
        for kind, ms in other.ms.items():
            self.ms[kind] += ms
        self.statuses.update(other.statuses)
        self.changed.update(other.changed)
        self.errors += other.errors
        for what, text in other.refusals.items():
            self.refusals.setdefault(what, text)
        self.cpu += other.cpu


async def client(
    n: int,
    base: str,
    token: str,
    refs: list[str],
    revisions: dict[str, list[str]],
    reads: float,
    until: float,
    tally: Tally,
    think: float = 0.0,
) -> None:
    rng = random.Random(n)
    async with make_client(base, token) as http:
        while time.monotonic() < until:
            ref = rng.choice(refs)
            if rng.random() < reads:
                kind = "read"
                path = rng.choice(
                    ["/api/v1/components", f"/api/v1/components/{ref}", "/api/v1/stages"]
                )
                request = http.build_request("GET", path)
            elif rng.random() < 0.5:
                kind = "promote"
                body = {"to": STAGE, "rev": rng.choice(revisions[ref])}
                request = http.build_request("POST", f"/api/v1/components/{ref}/promote", json=body)
            else:
                kind = "rollback"
                body = {"stage": STAGE, "to": rng.choice(revisions[ref])}
                request = http.build_request(
                    "POST", f"/api/v1/components/{ref}/rollback", json=body
                )
            start = time.perf_counter()
            response = await http.send(request)
            elapsed = (time.perf_counter() - start) * 1000
            tally.ms[kind].append(elapsed)
            tally.statuses[f"{kind} {response.status_code}"] += 1
            if response.status_code >= 500:
                tally.errors.append(f"{kind} {request.url.path}: {response.text[:300]}")
            elif response.status_code >= 400:
                tally.refusals.setdefault(f"{kind} {response.status_code}", response.text[:300])
            elif kind != "read" and response.status_code == 200 and response.json()["changed"]:
                tally.changed[ref] += 1
            if think:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))


def make_client(base: str, token: str) -> Any:
    """An asynchronous client of the server, one connection. Plain HTTP to 127.0.0.1:
    no TLS context (building httpx's default one loads the CA bundle, tens of ms of CPU
    per client, and it blocked every other client of the event loop while 100 were
    made), no proxy or ``.netrc`` from the environment."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(
        base_url=base, headers=headers, timeout=600, verify=False, trust_env=False, limits=limits
    )


async def load(
    base: str,
    token: str,
    revisions: dict[str, list[str]],
    numbers: range,
    until: float,
    reads: float,
    think: float,
) -> Tally:
    """Clients ``numbers`` (each its own random sequence) until ``until`` (monotonic)."""
    tally = Tally()
    refs = sorted(revisions)
    await asyncio.gather(
        *(client(n, base, token, refs, revisions, reads, until, tally, think) for n in numbers)
    )
    return tally


def load_share(
    base: str,
    token: str,
    revisions: dict[str, list[str]],
    numbers: range,
    until: float,
    reads: float,
    think: float,
) -> Tally:
    """One client process's share of the load, with the CPU time it took."""
    started = time.process_time()
    tally = asyncio.run(load(base, token, revisions, numbers, until, reads, think))
    tally.cpu = time.process_time() - started
    return tally


def load_all(
    base: str, token: str, revisions: dict[str, list[str]], args: argparse.Namespace
) -> Tally:
    """``--clients`` clients over ``--client-procs`` processes (1: this one)."""
    procs = max(1, min(args.client_procs, args.clients))
    # monotonic clocks agree between the processes of one machine (Linux: CLOCK_MONOTONIC)
    until = time.monotonic() + args.duration
    shares = [range(k, args.clients, procs) for k in range(procs)]
    work = (base, token, revisions)
    think = args.think_ms / 1000
    if procs == 1:
        return load_share(*work, shares[0], until, args.reads, think)
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with concurrent.futures.ProcessPoolExecutor(procs, mp_context=context) as pool:
        futures = [
            pool.submit(load_share, *work, numbers, until, args.reads, think) for numbers in shares
        ]
        tally = Tally()
        for future in futures:
            tally.merge(future.result())
    return tally


# --------------------------------------------------------------------------- one at a time


def beside(
    root: Path,
    store: str,
    base: str,
    token: str,
    revisions: dict[str, list[str]],
    runs: int,
    cli_runs: int,
) -> dict[str, dict[str, list[float]]]:
    """The component list and a promotion, one caller at a time: over HTTP (one client),
    through the CLI, in-process."""
    import httpx

    from lockgate.core.project import Project
    from lockgate.operations.listing import list_components
    from lockgate.operations.promote import Promoter

    ref = "bench:c0"
    times: dict[str, dict[str, list[float]]] = {
        path: {"read": [], "promote": []} for path in ("http", "cli", "in-process")
    }

    def timed(path: str, kind: str, action: Any, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        action(*args, **kwargs)
        times[path][kind].append((time.perf_counter() - start) * 1000)

    def http_promote(http: Any, rev: str) -> None:
        body = {"to": STAGE, "rev": rev}
        http.post(f"/api/v1/components/{ref}/promote", json=body).raise_for_status()

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(runs):
            timed("http", "read", lambda: http.get("/api/v1/components").raise_for_status())
            timed("http", "promote", http_promote, http, revisions[ref][i % 2])
    env = inherited_environment() | plugin_env(store)
    lockgate = [sys.executable, "-m", "lockgate", "-C", str(root)]
    for i in range(cli_runs):
        timed("cli", "read", run, [*lockgate, "--json", "ls"], env)
        promote = [*lockgate, "promote", ref, "--to", STAGE, "--rev", revisions[ref][i % 2]]
        timed("cli", "promote", run, promote, env)
    project = Project.open(root, environ=plugin_env(store))
    try:
        promoter = Promoter(project)
        for i in range(runs):
            timed("in-process", "read", lambda: list_components(project))
            rev = revisions[ref][i % 2]
            timed("in-process", "promote", promoter.promote, ref, to=STAGE, rev=rev)
    finally:
        project.close()
    return times


def cpu_each(
    base: str, token: str, revisions: dict[str, list[str]], pid: int, n: int
) -> dict[str, float]:
    """The server's CPU time per request of each kind, one kind at a time (``n`` requests
    each, one client, after the load: the histories it grew included), in ms."""
    import httpx

    refs = sorted(revisions)
    per: dict[str, float] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:

        def promote(i: int) -> None:
            ref = refs[i % len(refs)]
            body = {"to": STAGE, "rev": revisions[ref][(i // len(refs)) % 2]}
            http.post(f"/api/v1/components/{ref}/promote", json=body).raise_for_status()

        kinds = {
            "GET /api/v1/components": lambda i: http.get("/api/v1/components"),
            "GET /api/v1/components/{ref}": lambda i: http.get(
                f"/api/v1/components/{refs[i % len(refs)]}"
            ),
            "GET /api/v1/stages": lambda i: http.get("/api/v1/stages"),
            "POST .../promote": promote,
        }
        for kind, send in kinds.items():
            for i in range(10):  # warm: the server's idle projects, its caches
                send(i)
            before = cpu_seconds(pid)
            for i in range(n):
                send(i)
            after = cpu_seconds(pid)
            if before is not None and after is not None:
                per[kind] = (after - before) * 1000 / n
    return per


def run(argv: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"server_load: {' '.join(argv[3:])}: exit {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout


# --------------------------------------------------------------------------- checks


def check(
    root: Path, store: str, before: dict[str, tuple[str | None, int]], seq: int, tally: Tally
) -> list[str]:
    """What went wrong: 5xx answers, a broken audit chain, lost updates (empty: none)."""
    problems = [f"5xx: {e}" for e in tally.errors[:5]]
    if len(tally.errors) > 5:
        problems.append(f"... and {len(tally.errors) - 5} more 5xx answers")
    env = inherited_environment() | plugin_env(store)
    verify = subprocess.run(
        [sys.executable, "-m", "lockgate", "-C", str(root), "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if verify.returncode != 0:
        problems.append(f"audit verify failed: {verify.stdout.strip()} {verify.stderr.strip()}")
    after, _ = snapshot(root, store)
    events = switch_events(root, store, seq)
    for ref, (revision, generation) in sorted(after.items()):
        mine = [e for e in events if e.component == ref]
        moves = generation - before[ref][1]
        told = tally.changed[ref]
        if not moves == len(mine) == told:
            problems.append(
                f"{ref}: pointer moved {moves} times, audit log has {len(mine)} switches, "
                f"clients were told {told}"
            )
        if mine and mine[-1].revision != revision:
            problems.append(
                f"{ref}: pointer holds {revision}, the last audited switch {mine[-1].revision}"
            )
    return problems


# --------------------------------------------------------------------------- the run


def measure(store: str, dsn: str | None, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    root = tmp / store
    revisions = build(root, store, dsn, args.components)
    token = admin_token(root, store)
    before, seq = snapshot(root, store)
    with serving(root, store, args.http, args.workers) as (base, pid):
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        tally = load_all(base, token, revisions, args)
        wall = time.monotonic() - started
        cpu_after = cpu_seconds(pid)
        server_cpu = (
            cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        )
        problems = check(root, store, before, seq, tally)
        alone = beside(root, store, base, token, revisions, args.runs, args.cli_runs)
        each = cpu_each(base, token, revisions, pid, args.each) if args.each else {}
    return {
        "each": each,
        "store": store,
        "tally": tally,
        "wall": wall,
        "server_cpu": server_cpu,
        "problems": problems,
        "alone": alone,
    }


def measure_store(store: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """:func:`measure` on ``store``: postgres in a scratch database of its own (Skipped
    when no server answers at ``--pg-server``)."""
    if store == "sqlite":
        return measure(store, None, args, tmp)
    try:
        from _state_scale_pg import scratch_database

        database = scratch_database(args.pg_server, "server_load")
        dsn = database.__enter__()
    except (SystemExit, ImportError) as exc:
        raise Skipped(str(exc)) from None
    try:
        return measure(store, dsn, args, tmp)
    finally:
        database.__exit__(None, None, None)


def report(results: list[dict[str, Any]], args: argparse.Namespace, load_start: str) -> None:
    mode = "SMOKE run (figures not representative)" if args.smoke else "full run"
    pauses = (
        f"clients PAUSE {args.think_ms:g} ms on average between requests (not the headline)"
        if args.think_ms
        else "clients never pause between requests"
    )
    print(
        f"server_load: {mode}; {python_and_cores()}; {args.clients} clients in "
        f"{args.client_procs} process(es), {args.duration:g} s, {args.components} components, "
        f"reads {args.reads:.0%}; serve --http {args.http} --workers {args.workers}; {pauses}"
    )
    print(f"load average (1/5/15 min): {load_start} at the start, {load_average()} at the end")
    for r in results:
        tally: Tally = r["tally"]
        total = sum(len(v) for v in tally.ms.values())
        fivexx = sum(c for k, c in tally.statuses.items() if k.split()[1].startswith("5"))
        print(
            f"\n[{r['store']}] {total} requests in {r['wall']:.1f} s "
            f"({total / r['wall']:.0f}/s); 5xx: {fivexx}; statuses: "
            + ", ".join(f"{k}: {c}" for k, c in sorted(tally.statuses.items()))
        )
        for what, text in sorted(tally.refusals.items()):
            print(f"  {what}, e.g.: {text}")
        print(f"CPU per answered request: {cpu_line(r, total)}")
        if r["each"]:
            print(
                f"server CPU per request, one kind at a time ({args.each} each, after the "
                "load): " + ", ".join(f"{k} {ms:.2f} ms" for k, ms in r["each"].items())
            )
        print(f"{'':<34}{'n':>7}{'median ms':>11}{'p95 ms':>9}")
        for kind in ("read", "promote", "rollback"):
            ms = tally.ms[kind]
            print(
                f"{'under load, HTTP, ' + kind:<34}{len(ms):>7}{median(ms):>11.1f}{p95(ms):>9.1f}"
            )
        for path in ("http", "cli", "in-process"):
            for kind in ("read", "promote"):
                ms = r["alone"][path][kind]
                label = f"one at a time, {path}, {kind}"
                print(f"{label:<34}{len(ms):>7}{median(ms):>11.1f}{p95(ms):>9.1f}")
        read95 = p95(tally.ms["read"])
        verdict = "PASS" if read95 <= READ_P95_TARGET_MS else "FAIL"
        print(
            f"target: read p95 under load at most {READ_P95_TARGET_MS:g} ms: "
            f"{read95:.1f} ms {verdict}"
        )
        inproc = median(r["alone"]["in-process"]["promote"])
        print(
            f"promote p95 under load: {p95(tally.ms['promote']):.1f} ms "
            f"({p95(tally.ms['promote']) / inproc:.1f}x the in-process median)"
        )
        print(
            "checks: "
            + (
                "no 5xx, audit chain verified, no lost update"
                if not r["problems"]
                else "; ".join(r["problems"])
            )
        )


def cpu_per_request(r: dict[str, Any], total: int) -> dict[str, float | None]:
    """Milliseconds of CPU per answered request: the server process's, the clients'."""
    server = r["server_cpu"]
    return {
        "server_ms": server * 1000 / total if server is not None and total else None,
        "clients_ms": r["tally"].cpu * 1000 / total if total else None,
    }


def cpu_line(r: dict[str, Any], total: int) -> str:
    per = cpu_per_request(r, total)
    wall = r["wall"]
    server = r["server_cpu"]
    text = (
        f"server {per['server_ms']:.2f} ms ({server / wall:.0%} of one core)"
        if server is not None and per["server_ms"] is not None
        else "server n/a (no /proc)"
    )
    if per["clients_ms"] is not None:
        text += f", clients {per['clients_ms']:.2f} ms ({r['tally'].cpu / wall:.0%} of one core)"
    return text


def to_json(results: list[dict[str, Any]], args: argparse.Namespace, load_start: str) -> Any:
    return {
        "smoke": args.smoke,
        "clients": args.clients,
        "duration": args.duration,
        "components": args.components,
        "client_procs": args.client_procs,
        "think_ms": args.think_ms,
        "http": args.http,
        "workers": args.workers,
        "load_average": {"start": load_start, "end": load_average()},
        "stores": {
            r["store"]: {
                "requests": {k: len(v) for k, v in r["tally"].ms.items()},
                "per_second": sum(len(v) for v in r["tally"].ms.values()) / r["wall"],
                "cpu_per_request": cpu_per_request(r, sum(len(v) for v in r["tally"].ms.values())),
                "statuses": dict(r["tally"].statuses),
                "server_cpu_ms_each": r["each"],
                "p95_ms": {k: p95(v) for k, v in r["tally"].ms.items()},
                "alone_median_ms": {
                    f"{path} {kind}": median(ms)
                    for path, kinds in r["alone"].items()
                    for kind, ms in kinds.items()
                },
                "problems": r["problems"],
            }
            for r in results
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--reads", type=float, default=0.8, help="share of reads (0.8)")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=2,
        help="processes the clients are spread over (2), each with its share of them",
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="clients pause a random 0.5x to 1.5x this between requests (0: never pause)",
    )
    parser.add_argument(
        "--http",
        default="auto",
        choices=["auto", "httptools", "h11"],
        help="the server's HTTP stack (lockgate serve --http): auto, httptools or h11",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (lockgate serve --workers); server CPU adds them all up",
    )
    parser.add_argument("--runs", type=int, default=50, help="one-at-a-time HTTP/in-process")
    parser.add_argument("--cli-runs", type=int, default=10, help="one-at-a-time CLI processes")
    parser.add_argument(
        "--each",
        type=int,
        default=300,
        help="server CPU per request of each kind, this many one at a time (0: skip)",
    )
    parser.add_argument(
        "--stores",
        default="sqlite,postgres",
        help="sqlite,postgres (postgres skipped when no server answers)",
    )
    parser.add_argument("--pg-server", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 10 clients, 2 s, 4 components, few runs",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.duration, args.components = 10, 2.0, 4
        args.runs, args.cli_runs, args.each = 5, 2, min(args.each, 20)
    if args.client_procs < 1 or args.think_ms < 0:
        parser.error("--client-procs takes 1 or more, --think-ms 0 or more")
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = sorted(set(stores) - {"sqlite", "postgres"})
    if unknown or not stores:
        parser.error(
            f"--stores: unknown store {unknown[0] if unknown else '(none)'}; "
            "give sqlite, postgres or both"
        )
    load_start = load_average()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="lgload-"))
    try:
        for store in stores:
            try:
                results.append(measure_store(store, args, tmp))
            except Skipped as exc:
                print(f"server_load: {store} skipped: {exc}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, args, load_start)
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(results, args, load_start), indent=2))
    problems = [f"{r['store']}: {p}" for r in results for p in r["problems"]]
    if problems:
        sys.exit("server_load: FAILED: " + "; ".join(problems))


if __name__ == "__main__":
    main()
