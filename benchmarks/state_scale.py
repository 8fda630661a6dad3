"""Report queries on a large state database: 100,000 components, 1,000,000 audit events.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/state_scale.py                      # 100k / 1M (about 1 min)
    .venv/bin/python benchmarks/state_scale.py --components 10000 --events 100000
    .venv/bin/python benchmarks/state_scale.py --project /tmp/big   # build once, keep, reuse
    .venv/bin/python benchmarks/state_scale.py --store postgres     # and beside PostgreSQL

What it builds, in a fresh project (``init_project``) in a temporary directory:
``SqliteStateStore(path)`` creates ``.lockgate/state.db`` with the real schema and
indexes, then one transaction bulk-inserts (``executemany``) a synthetic but consistent
history over one simulated year (2025-11-23 to 2026-11-23), deterministic (``--seed``):

* ``--components`` components in 100 workspaces, six component types, ids unique;
* ``--events`` audit events in one valid hash chain (``lockgate.contracts.audit.event_hash``,
  so ``lockgate audit verify`` passes; checked once unless ``--no-verify``), interleaved
  at random between components; ``event_counts`` counted from exactly those events;
* every successful ``stage`` adds a revision; ``approve``/``reject`` add an approval;
  ``validate`` and some ``stage``/``promote`` attempts fail (outcome ``failed``);
* ``--production`` components (default 5,000) are promoted to ``production`` six times
  each (two of the six moves are rollbacks), spread over the year: every move is a
  ``promote``/``rollback`` event, a ``pointer_history`` row (generation 1..n, event_seq,
  and ``valid_until`` set when the next move replaces it, as ``move_pointer`` does) and
  the final ``pointers`` row. No ``ANALYZE`` is run, as a real project has none.

Then, in this process with a warm cache (one untimed call first), each the median of
``--runs`` calls (default 15): ``reports.summary(project)``,
``reports.statistics(project)``, one production component's history
``state.events(EventFilter(component=...))``, and ``state.live_at("production", T)`` at
mid-year and, as the worst case, at the last event's time (every earlier move is read).
PASS means a median under 100 ms. The peer, timed in the same rounds: the very SELECTs
each call issued (traced, values bound) on a plain read-only ``sqlite3`` connection,
fetched as tuples; "x SQL" is the ratio. For context, the same through whole CLI
processes (``python -m lockgate -C PROJ ...``, median of ``--cli-runs``, default 7; these
include interpreter start-up and plugin loading). Every SELECT each in-process call
issues is printed with its EXPLAIN QUERY PLAN and the indexes it uses.

``--store postgres`` (a server at ``--pg-server``, a libpq string without ``dbname``;
default 127.0.0.1:5432 as ``postgres``) also copies the same history into the
``postgres`` state store, in a database of the run's own dropped at the end
(benchmarks/_state_scale_pg.py), and times the same calls on it through a project that
selects it, each beside the SELECTs it issued run as raw SQL on the same server (the
floor), and beside the SQLite figures of the same run: median and p95 of each, PASS for a
p95 under 100 ms, and the ratio PostgreSQL / SQLite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import example_plugins, inherited_environment

from lockgate.builtin_plugins.sqlite_state import SqliteStateStore
from lockgate.contracts.audit import GENESIS, event_hash
from lockgate.contracts.manifest import digest_bytes
from lockgate.contracts.state import AuditEvent, EventFilter
from lockgate.core.guard import unguarded
from lockgate.core.project import Project
from lockgate.core.session import Session
from lockgate.operations import reports
from lockgate.operations.init import init_project

ENV = {"LOCKGATE_DISABLE_PLUGINS": ",".join(example_plugins())}
# With --store postgres: the same, but the postgres plugin loads.
PG_ENV = {"LOCKGATE_DISABLE_PLUGINS": ",".join(p for p in example_plugins() if p != "postgres")}
LIMIT_MS = 100.0
FIRST_STAGE, PRODUCTION = "staging", "production"
START = dt.datetime(2025, 11, 23, tzinfo=dt.timezone.utc)
SPAN = dt.timedelta(days=365)
WORKSPACES = 100
TYPES = ("scripts", "jobs", "notebooks", "models", "data", "configs")
ACTORS = tuple(f"user{i:02d}" for i in range(50))
# One production component's plan: four release cycles and two rollbacks (six moves).
RELEASE = ("stage", "validate", "approve", "promote")
PRODUCTION_PLAN = (*RELEASE, *RELEASE, "rollback", *RELEASE, *RELEASE, "rollback")
# Where each action is allowed from (the status machine of lockgate.operations.lifecycle).
ALLOWED = {
    "approve": {"staged", "approved"},
    "reject": {"staged", "approved", "promoted"},
    "promote": {"staged", "approved", "promoted", "rolled_back"},
    "rollback": {"promoted", "rolled_back"},
}
AFTER = {
    "stage": "staged",
    "approve": "approved",
    "reject": "rejected",
    "promote": "promoted",
    "rollback": "rolled_back",
}
EVENT_SQL = (
    "INSERT INTO events (seq, at, actor, action, component, stage, revision, "
    "previous_revision, reason, details, prev_hash, hash, outcome) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
BATCH = 50_000


# --------------------------------------------------------------------------- building


class Builder:
    """Generates the synthetic history and writes it with one connection, one transaction."""

    def __init__(self, db_path: Path, components: int, events: int, production: int, seed: int):
        self.rng = random.Random(seed)
        self.n, self.total, self.prod = components, events, production
        self.refs = [f"ws{i % WORKSPACES:02d}:c{i:06d}" for i in range(components)]
        self.status: list[str] = ["pending"] * components
        self.latest: list[str | None] = [None] * components
        self.nrev = [0] * components
        self.updated = [""] * components
        self.generation = [0] * production
        self.current: list[str | None] = [None] * production
        self.history: list[list[Any]] = []
        self.last_move: list[int | None] = [None] * production
        self.counts: Counter[tuple[str, str]] = Counter()
        self.revisions: list[tuple[Any, ...]] = []
        self.approvals: list[tuple[Any, ...]] = []
        self.db = sqlite3.connect(db_path, isolation_level=None)

    def schedule(self) -> list[int]:
        """Which component each event (in sequence order) belongs to."""
        rest = self.total - self.prod * len(PRODUCTION_PLAN)
        others = self.n - self.prod
        if others < 1 or rest < others:
            raise SystemExit(
                f"--events {self.total} is too few: {self.prod} production components take "
                f"{len(PRODUCTION_PLAN)} each and every other component needs at least one"
            )
        base, extra = divmod(rest, others)
        lengths = [len(PRODUCTION_PLAN)] * self.prod
        lengths += [base + (1 if i < extra else 0) for i in range(others)]
        for i in range(self.prod, self.n - 1, 2):  # vary the lengths, keep the total
            shift = self.rng.randint(0, max(0, min(lengths[i], lengths[i + 1]) - 1))
            lengths[i] += shift
            lengths[i + 1] -= shift
        owners = [i for i, length in enumerate(lengths) for _ in range(length)]
        self.rng.shuffle(owners)
        return owners

    def action(self, comp: int, k: int) -> str:
        """The k-th action of component ``comp`` (falls back to validate when not allowed)."""
        if k == 0:
            return "stage"
        if comp < self.prod:
            wanted = PRODUCTION_PLAN[k]
        else:
            wanted = self.rng.choices(
                ("stage", "validate", "approve", "reject"), weights=(35, 35, 22, 8)
            )[0]
        if wanted in ALLOWED and self.status[comp] not in ALLOWED[wanted]:
            return "validate"
        if wanted == "rollback":
            last = self.last_move[comp]
            if last is None or self.history[last][4] is None:
                return "validate"
        return wanted

    def build(self) -> float:
        """Generate and insert everything; return the seconds spent hashing the chain."""
        rng, db = self.rng, self.db
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -1000000")
        db.execute("BEGIN IMMEDIATE")
        owners = self.schedule()
        seen = [0] * self.n
        start, step = START.timestamp(), SPAN.total_seconds() / (self.total + 1)
        prev, rows, hashing = GENESIS, [], 0.0
        for seq, comp in enumerate(owners, start=1):
            k = seen[comp]
            seen[comp] = k + 1
            at = dt.datetime.fromtimestamp(start + seq * step, dt.timezone.utc).isoformat(
                timespec="microseconds"
            )
            event = self.event(comp, self.action(comp, k), k, seq, at, rng.choice(ACTORS))
            t0 = time.perf_counter()
            digest = event_hash(prev, event)
            hashing += time.perf_counter() - t0
            details = json.dumps(event.details, sort_keys=True, default=str)
            rows.append(
                (
                    seq,
                    event.at,
                    event.actor,
                    event.action,
                    event.component,
                    event.stage,
                    event.revision,
                    event.previous_revision,
                    event.reason,
                    details,
                    prev,
                    digest,
                    event.outcome,
                )
            )
            prev = digest
            self.counts[event.action, event.outcome] += 1
            if len(rows) >= BATCH:
                db.executemany(EVENT_SQL, rows)
                rows.clear()
        db.executemany(EVENT_SQL, rows)
        self.write_rest()
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return hashing

    def event(self, comp: int, action: str, k: int, seq: int, at: str, actor: str) -> AuditEvent:
        """The event for one action, applying its effect on the generated state."""
        ref, rng = self.refs[comp], self.rng
        self.updated[comp] = at
        latest = self.latest[comp]
        if action == "stage":
            if k > 0 and comp >= self.prod and rng.random() < 0.03:
                return AuditEvent(
                    at=at,
                    actor=actor,
                    action="stage",
                    component=ref,
                    stage=FIRST_STAGE,
                    details={"error": "a file changed while it was read; run again"},
                    outcome="failed",
                    seq=seq,
                )
            revision = digest_bytes(f"{ref}#{self.nrev[comp]}".encode())
            self.nrev[comp] += 1
            files = rng.randint(1, 200)
            size = files * rng.randint(100, 50_000)
            self.revisions.append((ref, revision, at, actor, FIRST_STAGE, files, size, latest))
            self.latest[comp], self.status[comp] = revision, "staged"
            details: dict[str, object] = {"files": files, "size": size}
            details.update(
                {"added": files, "modified": 0, "removed": 0}
                if latest is None
                else {"added": rng.randint(0, 3), "modified": rng.randint(1, 9), "removed": 0}
            )
            return AuditEvent(
                at=at,
                actor=actor,
                action="stage",
                component=ref,
                stage=FIRST_STAGE,
                revision=revision,
                previous_revision=latest,
                details=details,
                seq=seq,
            )
        if action == "validate":
            failed = rng.random() < 0.08
            return AuditEvent(
                at=at,
                actor=actor,
                action="validate",
                component=ref,
                stage=FIRST_STAGE,
                revision=latest,
                details={"validators": 2, "errors": 1 if failed else 0},
                outcome="failed" if failed else "ok",
                seq=seq,
            )
        if action in ("approve", "reject"):
            self.status[comp] = AFTER[action]
            reason = None if action == "approve" else "does not meet the review checklist"
            self.approvals.append((ref, latest, actor, action, at, FIRST_STAGE, reason))
            return AuditEvent(
                at=at,
                actor=actor,
                action=action,
                component=ref,
                stage=FIRST_STAGE,
                revision=latest,
                reason=reason,
                seq=seq,
            )
        return self.move(comp, action, seq, at, actor)

    def move(self, comp: int, action: str, seq: int, at: str, actor: str) -> AuditEvent:
        """A production promote or rollback: pointer history, valid_until, generation."""
        ref = self.refs[comp]
        current = self.current[comp]
        if action == "promote":
            target = self.latest[comp]
            reason = f"release {self.generation[comp] + 1}"
            if self.rng.random() < 0.05:
                return AuditEvent(
                    at=at,
                    actor=actor,
                    action="promote",
                    component=ref,
                    stage=PRODUCTION,
                    revision=target,
                    previous_revision=current,
                    reason=reason,
                    details={"error": "not ready: 1 validator reported errors"},
                    outcome="failed",
                    seq=seq,
                )
        else:
            target = self.history[self.last_move[comp]][4]  # type: ignore[index]
            reason = "error rate up after the release"
        generation = self.generation[comp] + 1
        self.generation[comp], self.current[comp] = generation, target
        self.status[comp] = AFTER[action]
        if self.last_move[comp] is not None:
            self.history[self.last_move[comp]][10] = at  # type: ignore[index]
        self.last_move[comp] = len(self.history)
        component_id = ref.split(":")[1]
        self.history.append(
            [
                PRODUCTION,
                component_id,
                ref,
                target,
                current,
                generation,
                at,
                actor,
                action,
                reason,
                None,  # valid_until: set when the next move replaces this one
                seq,
            ]
        )
        return AuditEvent(
            at=at,
            actor=actor,
            action=action,
            component=ref,
            stage=PRODUCTION,
            revision=target,
            previous_revision=current,
            reason=reason,
            details={"generation": generation},
            seq=seq,
        )

    def write_rest(self) -> None:
        db = self.db
        db.executemany(
            "INSERT INTO components VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    ref,
                    ref.split(":")[0],
                    ref.split(":")[1],
                    TYPES[i % len(TYPES)],
                    self.status[i],
                    self.latest[i],
                    self.updated[i],
                )
                for i, ref in enumerate(self.refs)
            ),
        )
        db.executemany(
            "INSERT INTO revisions (component, revision, created_at, actor, stage, files, size, "
            "parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self.revisions,
        )
        db.executemany(
            "INSERT INTO approvals (component, revision, actor, decision, at, stage, comment) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            self.approvals,
        )
        db.executemany(
            "INSERT INTO pointer_history (stage, component_id, component, revision, "
            "previous_revision, generation, at, actor, action, reason, valid_until, event_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.history,
        )
        last = {row[2]: row for row in self.history}
        db.executemany(
            "INSERT INTO pointers VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((r[0], r[1], r[2], r[3], r[5], r[6], r[7]) for r in last.values()),
        )
        db.executemany(
            "INSERT INTO event_counts VALUES (?, ?, ?)",
            ((action, outcome, n) for (action, outcome), n in sorted(self.counts.items())),
        )


def build_project(root: Path, components: int, events: int, production: int, seed: int) -> None:
    init_project(root)
    db_path = root / ".lockgate" / "state.db"
    SqliteStateStore(db_path).close()  # the real schema, indexes and migrations
    started = time.perf_counter()
    builder = Builder(db_path, components, events, production, seed)
    hashing = builder.build()
    elapsed = time.perf_counter() - started
    size = db_path.stat().st_size / 2**20
    print(
        f"built {components:,} components, {events:,} events, {len(builder.history):,} "
        f"production pointer moves, {len(builder.revisions):,} revisions in {elapsed:.1f} s "
        f"(hash chain {hashing:.1f} s); state.db {size:,.0f} MiB"
    )


# --------------------------------------------------------------------------- measuring


def ms(value: float) -> str:
    """Milliseconds with one decimal, or two below 1 ms."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def p95(times: list[float]) -> float:
    """The 95th percentile (interpolated; the largest of fewer than two)."""
    return statistics.quantiles(times, n=20)[18] if len(times) > 1 else max(times)


def paired_ms(
    call: Callable[[], object], peer: Callable[[], object], runs: int
) -> tuple[float, float, float, float, float, float]:
    """(first, median, min, p95) of ``call`` and the median and p95 of ``peer``, in ms.

    The first call warms the caches and is not in the median; then each round times
    ``call`` and ``peer`` one after the other, so load on the machine hits both alike.
    """
    t0 = time.perf_counter()
    call()
    first = (time.perf_counter() - t0) * 1000
    peer()
    times, peer_times = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        peer()
        t2 = time.perf_counter()
        times.append((t1 - t0) * 1000)
        peer_times.append((t2 - t1) * 1000)
    return (
        first,
        statistics.median(times),
        min(times),
        p95(times),
        statistics.median(peer_times),
        p95(peer_times),
    )


def traced(db: sqlite3.Connection, call: Callable[[], object]) -> list[str]:
    """The SQL statements (values bound) that ``call`` runs on ``db``."""
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        call()
    finally:
        db.set_trace_callback(None)
    out: list[str] = []
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT") and sql not in out:
            out.append(sql)
    return out


def query_plan(db: sqlite3.Connection, sql: str) -> list[str]:
    return [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]


def indexes_used(plan: list[str]) -> str:
    """What a plan reads, in words: the indexes, rowid look-ups, and table scans."""
    used: list[str] = []
    for line in plan:
        if match := re.search(r"USING (?:COVERING )?INDEX (\w+)", line):
            used.append(match.group(1))
        elif match := re.match(r"SEARCH (\w+)", line):
            used.append(f"{match.group(1)} by rowid")
        elif match := re.match(r"SCAN (\w+)$", line):
            used.append(f"{match.group(1)} in rowid order (no index)")
    return ", ".join(dict.fromkeys(used)) or "-"


def cli_ms(argv: list[str], runs: int) -> tuple[float, Any]:
    """Median wall time of a whole CLI process, and its (last) JSON output."""
    cmd = [sys.executable, "-m", "lockgate", *argv]
    env, times, out = inherited_environment() | ENV, [], None
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        elapsed = (time.perf_counter() - t0) * 1000
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
        out = json.loads(proc.stdout)
        times.append(elapsed)
    return statistics.median(times[1:]), out  # the first run warms the caches


Case = tuple[str, Callable[[], Any], Callable[[Any], "int | str"]]


def report_cases(session: Session, ref: str, mid: str, end: str) -> list[Case]:
    """The calls timed on each store: summary, statistics, a history, live_at twice."""
    state = session.state()

    def no_rows(_: object) -> str:
        return "-"

    return [
        ("reports.summary(project)", lambda: reports.summary(session), no_rows),
        ("reports.statistics(project)", lambda: reports.statistics(session), no_rows),
        (
            f"state.events(EventFilter(component={ref!r}))",
            lambda: state.events(EventFilter(component=ref)),
            len,
        ),
        (f"state.live_at('production', {mid[:19]!r})", lambda: state.live_at(PRODUCTION, mid), len),
        (
            f"state.live_at('production', {end[:19]!r}) (end)",
            lambda: state.live_at(PRODUCTION, end),
            len,
        ),
    ]


def measure(
    root: Path, runs: int, cli_runs: int, verify: bool, postgres: str | None = None
) -> None:
    project = Project.open(root, environ=ENV)
    session = Session(project)  # one unit of work: settles once, as a command would
    state = session.state()
    db: sqlite3.Connection = unguarded(state)._db  # the store itself, not the kernel's guard
    n_components = db.execute("SELECT COUNT(*) FROM components").fetchone()[0]
    n_events = db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    n_moves = db.execute("SELECT COUNT(*) FROM pointer_history").fetchone()[0]
    ref = db.execute("SELECT component FROM pointers ORDER BY component LIMIT 1").fetchone()[0]
    first, last = db.execute("SELECT MIN(at), MAX(at) FROM events").fetchone()
    lo, hi = dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last)
    mid = (lo + (hi - lo) / 2).isoformat(timespec="microseconds")
    end = hi.isoformat(timespec="microseconds")
    print(
        f"state: {n_components:,} components, {n_events:,} events, {n_moves:,} production "
        f"pointer moves; history of {ref}; live_at {mid}\n"
    )

    cases = report_cases(session, ref, mid, end)
    # The peer: the very SELECTs each call issues (traced, values bound), run on a plain
    # read-only connection and fetched as tuples: the floor for the same answer.
    plain = sqlite3.connect(f"file:{root / '.lockgate' / 'state.db'}?mode=ro", uri=True)
    statements = {label: traced(db, call) for label, call, _ in cases}
    results = []
    for label, call, count in cases:
        sqls = statements[label]

        def peer(sqls: list[str] = sqls) -> None:
            for sql in sqls:
                plain.execute(sql).fetchall()

        first, median, fastest, high, floor, _ = paired_ms(call, peer, runs)
        results.append((label, count(call()), first, median, fastest, floor, high))
    plain.close()
    cli_cases = [
        ("lockgate summary --json", ["summary", "--json"]),
        ("lockgate stats --json", ["stats", "--json"]),
        (f"lockgate history {ref} --json", ["history", ref, "--json"]),
        ("lockgate history --stage production --at T --json", ["history", "--stage", PRODUCTION]),
    ]
    cli_results = []
    for label, argv in cli_cases:
        if label.startswith("lockgate history --stage"):
            argv = [*argv, "--at", mid, "--json"]
        median, out = cli_ms(["-C", str(root), *argv], cli_runs)
        rows = len(out["events"]) if "events" in out else len(out["live"]) if "live" in out else "-"
        cli_results.append((label, rows, median))

    print(
        f"{runs} rounds (median) after 1 warm-up, in-process, warm cache; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores\n"
    )
    width = max(len(r[0]) for r in results)
    print(
        f"{'in-process call':<{width}}  {'rows':>5}  {'first ms':>8}  {'median ms':>9}  "
        f"{'min ms':>7}  {'SQL ms':>6}  {'x SQL':>5}  result"
    )
    print(f"{'-' * width}  -----  --------  ---------  -------  ------  -----  ------")
    for label, rows, first, median, fastest, floor, _ in results:
        verdict = "PASS" if median < LIMIT_MS else "FAIL"
        print(
            f"{label:<{width}}  {rows:>5}  {ms(first):>8}  {ms(median):>9}  {ms(fastest):>7}  "
            f"{ms(floor):>6}  {median / floor:>5.1f}  {verdict}"
        )
    print(
        f"\n(PASS: median under {LIMIT_MS:g} ms. first: the call that warmed the caches. "
        "SQL: median of the same SELECTs\non a plain sqlite3 connection, fetched as tuples, "
        "timed in the same rounds.)\n"
    )
    width = max(len(r[0]) for r in cli_results)
    print(f"{'whole CLI process':<{width}}  {'rows':>5}  {'median ms':>9}")
    print(f"{'-' * width}  -----  ---------")
    for label, rows, median in cli_results:
        print(f"{label:<{width}}  {rows:>5}  {median:>9.1f}")
    print(f"\n(median of {cli_runs} processes after 1 warm-up; includes start-up)\n")

    print("query plans (EXPLAIN QUERY PLAN of every SELECT each call runs):")
    for label, _, _ in cases[:-1]:  # the end-of-year live_at runs the same query
        print(f"\n{label}")
        for sql in statements[label]:
            plan = query_plan(db, sql)
            print(f"  {sql}")
            for line in plan:
                print(f"      {line}")
            print(f"      -> {indexes_used(plan)}")
    if verify:
        t0 = time.perf_counter()
        report = reports.audit_verify(session)
        elapsed = time.perf_counter() - t0
        state_ok = "intact" if report.ok else f"BROKEN at {report.first_bad_seq}: {report.problem}"
        print(f"\naudit verify: {state_ok}, {report.events:,} events in {elapsed:.1f} s")
        if not report.ok:
            raise SystemExit(1)
    project.close()
    if postgres is not None:
        beside_postgres(root, postgres, runs, (ref, mid, end), results, verify)


def beside_postgres(
    root: Path,
    server: str,
    runs: int,
    where: tuple[str, str, str],
    sqlite: list[Any],
    verify: bool,
) -> None:
    """The same calls on the ``postgres`` store, beside raw SQL and the SQLite figures."""
    import _state_scale_pg as pg

    with pg.scratch_database(server) as dsn:
        pg.load(root / ".lockgate" / "state.db", dsn)
        pg_root = pg.project_on(root.parent / "proj-pg", dsn)
        project = Project.open(pg_root, environ=PG_ENV)
        session = Session(project)
        tracer = pg.Tracer(dsn, "lockgate_app")
        try:
            cases = report_cases(session, *where)
            plans, rows_out = [], []
            for (label, call, count), mine in zip(cases, sqlite, strict=True):
                statements = tracer.statements(call)
                _, median, _, high, floor, floor_high = paired_ms(
                    call, tracer.peer(statements), runs
                )
                rows = count(call())
                if rows != mine[1]:
                    raise SystemExit(f"{label}: {rows} rows on PostgreSQL, {mine[1]} on SQLite")
                verdict = "PASS" if high < LIMIT_MS else "FAIL"
                rows_out.append(
                    (label, rows, mine[3], mine[6], median, high, floor, floor_high, verdict)
                )
                plans.append((label, tracer.explain(statements)))
            if verify:
                t0 = time.perf_counter()
                report = reports.audit_verify(session)
                verified = f"{'intact' if report.ok else 'BROKEN'}, {report.events:,} events"
                verified += f" in {time.perf_counter() - t0:.1f} s"
            else:
                verified = "skipped"
        finally:
            tracer.close()
            project.close()
    print(
        f"\nPostgreSQL ({server}), the same state, the same calls: {runs} rounds after 1 "
        "warm-up, in-process, warm cache; ms"
    )
    width = max(len(r[0]) for r in rows_out)
    print(
        f"{'in-process call':<{width}}  {'rows':>5}  {'sqlite med':>10}  {'sqlite p95':>10}  "
        f"{'pg med':>7}  {'pg p95':>7}  {'pg SQL med':>10}  {'pg SQL p95':>10}  "
        f"{'pg/sqlite':>9}  {'x SQL':>5}  result"
    )
    print(
        f"{'-' * width}  -----  ----------  ----------  -------  -------  ----------  "
        "----------  ---------  -----  ------"
    )
    for label, rows, s_med, s_high, median, high, floor, floor_high, verdict in rows_out:
        print(
            f"{label:<{width}}  {rows:>5}  {ms(s_med):>10}  {ms(s_high):>10}  {ms(median):>7}  "
            f"{ms(high):>7}  {ms(floor):>10}  {ms(floor_high):>10}  {median / s_med:>9.1f}  "
            f"{median / floor:>5.1f}  {verdict}"
        )
    print(
        f"\n(PASS: p95 under {LIMIT_MS:g} ms on PostgreSQL. pg SQL: the SELECTs each call sent, "
        "run on a plain\nconnection to the same server with the same session settings, timed "
        "in the same rounds.)"
    )
    print(f"audit verify on PostgreSQL: {verified}")
    print("\nPostgreSQL plans (EXPLAIN of every SELECT each call sends):")
    for label, lines in plans[:-1]:
        print(f"\n{label}")
        print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description="lockgate state-at-scale benchmark")
    parser.add_argument("--components", type=int, default=100_000, help="(100000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="(1000000)")
    parser.add_argument(
        "--production", type=int, help="components promoted to production (5000, at most 1/20)"
    )
    parser.add_argument("--runs", type=int, default=15, help="timed in-process calls (15)")
    parser.add_argument("--cli-runs", type=int, default=7, help="timed CLI processes (7)")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--project", type=Path, help="build here and keep it (reused if it already has a state)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the full chain check")
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: also on the postgres state store, beside raw SQL and SQLite",
    )
    parser.add_argument(
        "--pg-server",
        default="host=127.0.0.1 port=5432 user=postgres",
        help="with --store postgres: the server (a libpq string without dbname)",
    )
    args = parser.parse_args()
    if args.components < 20 or args.runs < 1 or args.cli_runs < 1:
        parser.error("--components must be at least 20, --runs and --cli-runs at least 1")
    production = args.production or min(5000, args.components // 20)
    tmp = None
    if args.project is None:
        tmp = Path(tempfile.mkdtemp(prefix="lgscale-"))
        root = tmp / "proj"
    else:
        root = args.project.resolve()
    try:
        if (root / ".lockgate" / "state.db").exists():
            print(f"reusing {root}")
        else:
            build_project(root, args.components, args.events, production, args.seed)
        postgres = args.pg_server if args.store == "postgres" else None
        measure(root, args.runs, args.cli_runs, verify=not args.no_verify, postgres=postgres)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
