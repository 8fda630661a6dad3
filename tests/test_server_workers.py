"""``lockgate serve --workers 2``: a real supervisor and two real worker processes on one
address. Requests land on both; a job, a dashboard sign-in, the failed-authentication
budget, an ``Idempotency-Key`` and the metrics are the same whichever worker answers;
SIGTERM drains both and exits 0; a killed worker is replaced and its job recorded failed.

A connection stays with the worker that accepted it (keep-alive), so :class:`Pinned`
holds one connection per worker to send a request to the worker it means to."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from conftest import run_lockgate
from test_server import ENV, Api, free_port, make_project, start, stop
from test_server_ops import ASYNC, held_server, wait_until

OPEN: list[Pinned] = []  # closed after each test


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


class Pinned:
    """One kept-alive connection, so every request goes to the same worker."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        OPEN.append(self)
        self.worker = self.call("GET", "/health")[1]["worker"]

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any, http.client.HTTPResponse]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        raw = response.read()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(raw) if "json" in kind else raw.decode(), response

    def close(self) -> None:
        self.conn.close()


def two_workers(port: int) -> tuple[Pinned, Pinned]:
    """A connection to each of two different workers (the second may still be starting:
    the supervisor listens before it forks)."""
    pins: dict[int, Pinned] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pinned = Pinned(port)
        older = pins.pop(pinned.worker, None)
        if older is not None:  # keep the newest: an idle connection is closed after 5 s
            older.close()
        pins[pinned.worker] = pinned
        if len(pins) == 2:
            first, second = pins.values()
            return first, second
    raise AssertionError("for 60 s every connection went to one worker")


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, int]]:
    root = tmp_path_factory.mktemp("workers") / "p"
    tokens = make_project(root)
    proc, port = start(root, "--workers", "2", "--auth-failures", "100000")
    try:
        yield Api(root, port, tokens), proc.pid
    finally:
        stop(proc)
        assert proc.returncode == 0


def test_requests_land_on_both_workers_of_the_supervisor(served: tuple[Api, int]) -> None:
    api, supervisor = served
    a, b = two_workers(api.port)
    assert {a.worker, b.worker} == children(supervisor)


def test_a_job_started_on_one_worker_is_seen_from_the_other(served: tuple[Api, int]) -> None:
    api, _ = served
    a, b = two_workers(api.port)
    token = api.tokens["developer"]
    status, queued, _ = a.call(
        "POST", "/api/v1/components/alice:etl/validate", token=token, headers=ASYNC
    )
    assert status == 202, queued
    deadline = time.monotonic() + 60
    while True:
        status, job, _ = b.call("GET", queued["location"], token=token)
        assert status == 200, job
        if job["status"] == "succeeded":
            break
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline
        time.sleep(0.05)
    assert job["http_status"] == 200 and job["actor"] == "dev"


def test_a_dashboard_session_works_whichever_worker_answers(served: tuple[Api, int]) -> None:
    api, _ = served
    a, b = two_workers(api.port)
    host = {"Host": f"127.0.0.1:{api.port}"}
    _, page, response = a.call("GET", "/ui/login", headers=host)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce is not None
    login = response.getheader("set-cookie", "").split(";")[0]
    form = urlencode({"nonce": nonce.group(1), "token": api.tokens["approver"]}).encode()
    status, _, response = a.call("POST", "/ui/login", body=form, headers={
        **host, "Cookie": login, "Origin": f"http://127.0.0.1:{api.port}",
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 303
    cookie = response.getheader("set-cookie", "").split(";")[0]
    assert cookie.startswith("lockgate_session=")
    for pinned in (b, a, b):
        status, page, _ = pinned.call("GET", "/ui/", headers={**host, "Cookie": cookie})
        assert status == 200 and "carol" in page, page
    # signing out on one worker ends the session on the other
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    form = urlencode({"csrf": csrf.group(1)}).encode()
    sent = {**host, "Cookie": cookie, "Origin": f"http://127.0.0.1:{api.port}",
            "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    assert b.call("POST", "/ui/logout", body=form, headers=sent)[0] == 303
    status, _, response = a.call("GET", "/ui/", headers={**host, "Cookie": cookie})
    assert status == 303 and response.getheader("location") == "/ui/login"


def test_the_metrics_scraped_from_one_worker_count_both(served: tuple[Api, int]) -> None:
    api, _ = served
    a, b = two_workers(api.port)
    token = api.tokens["viewer"]
    for pinned in (a, b, b):
        assert pinned.call("GET", "/api/v1/stages?x=metrics", token=token)[0] == 200
    counted = []
    for pinned in (a, b):
        status, text, _ = pinned.call("GET", "/metrics", token=token)
        assert status == 200
        line = re.search(r'lockgate_http_requests_total\{method="GET",route="/api/v1/stages",'
                         r'status="200"\} (\S+)', text)  # fmt: skip
        assert line is not None, text
        counted.append(float(line.group(1)))
    assert counted[0] == counted[1] >= 3


def test_the_failed_authentication_budget_holds_across_workers(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tokens = make_project(root)
    proc, port = start(root, "--workers", "2", "--auth-failures", "4")
    try:
        a, b = two_workers(port)
        for pinned in (a, b, a, b):
            assert pinned.call("GET", "/api/v1/stages", token="lg_0000_wrong")[0] == 401
        for pinned in (a, b):  # now even the right token waits: the client spent its 4
            status, body, response = pinned.call("GET", "/api/v1/stages", token=tokens["viewer"])
            assert status == 429 and body["error"]["code"] == "rate_limited"
            assert int(response.getheader("retry-after", "0")) > 0
    finally:
        stop(proc)


def test_one_idempotency_key_sent_to_two_workers_runs_once(tmp_path: Path) -> None:
    proc, api, signals = held_server(tmp_path, "--workers", "2")
    try:
        a, b = two_workers(api.port)
        path = "/api/v1/components/alice:etl/promote"
        key = {"Idempotency-Key": "once-1", "Content-Type": "application/json"}
        token, body = api.tokens["releaser"], json.dumps({"to": "staging"}).encode()
        first: list[Any] = []
        caller = threading.Thread(
            target=lambda: first.append(a.call("POST", path, token=token, body=body, headers=key))
        )
        caller.start()
        waiting = signals / "waiting"
        wait_until("the gate", lambda: waiting.exists() and waiting.read_text().isdigit())
        assert int(waiting.read_text()) == a.worker
        status, refused, _ = b.call("POST", path, token=token, body=body, headers=key)
        assert status == 409 and "still running" in refused["error"]["message"]
        (signals / "go").write_text("")
        caller.join()
        status, moved, _ = first[0]
        assert status == 200 and moved["stage"] == "staging", moved
        assert b.call("POST", path, token=token, body=body, headers=key)[:2] == (200, moved)
        assert len(api.events("promote")) == 1
    finally:
        (signals / "go").write_text("")
        stop(proc)


def test_sigterm_drains_every_worker_and_exits_0(tmp_path: Path) -> None:
    proc, api, signals = held_server(tmp_path, "--workers", "2", "--job-threads", "1")
    try:
        a, _ = two_workers(api.port)
        token = api.tokens["releaser"]
        running = _promote_async(a, token, "alice:etl", signals)
        queued = _promote_async(a, token, "alice:report")
        workers = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        db = api.root / ".lockgate" / "server.db"
        wait_until("the queued job's failure", lambda: _job(db, queued["job"])[0] == "failed")
        assert proc.poll() is None  # the running job holds its worker
        (signals / "go").write_text("")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert _job(db, running["job"]) == ("succeeded", 200)
        assert _job(db, queued["job"]) == ("failed", 503)
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
        assert list((api.root / ".lockgate" / "serve").iterdir()) == []
    finally:
        (signals / "go").write_text("")
        stop(proc)


def test_a_killed_worker_is_replaced_and_its_job_recorded_failed(tmp_path: Path) -> None:
    proc, api, signals = held_server(tmp_path, "--workers", "2")
    try:
        a, b = two_workers(api.port)
        token = api.tokens["releaser"]
        job = _promote_async(a, token, "alice:etl", signals)
        assert b.call("GET", job["location"], token=token)[1]["status"] == "running"
        os.kill(a.worker, signal.SIGKILL)
        wait_until("the worker's end", lambda: _ended(a.worker))
        status, seen, _ = b.call("GET", job["location"], token=token)
        assert status == 200 and seen["status"] == "failed", seen
        assert "stopped while this job ran" in seen["error"]["message"]
        wait_until("a new worker", lambda: len(children(proc.pid) - {a.worker, b.worker}) == 1)
        replacement = (children(proc.pid) - {b.worker}).pop()
        wait_until("the new worker's answer", lambda: replacement in _workers_seen(api.port))
        (signals / "go").write_text("")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert f"worker {a.worker} ended (killed by SIGKILL); starting another" in err
    finally:
        (signals / "go").write_text("")
        stop(proc)


def test_workers_end_by_themselves_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_project(root)
    proc, _ = start(root, "--workers", "2")
    try:
        wait_until("two workers", lambda: len(children(proc.pid)) == 2)
        workers = children(proc.pid)
        metrics = list((root / ".lockgate" / "serve").glob("*.metrics"))
        assert len(metrics) == 1
        proc.kill()
        proc.communicate(timeout=30)
        wait_until("the workers' end", lambda: all(_ended(pid) for pid in workers))
        assert metrics[0].exists()  # left behind; the next supervisor removes it
        proc, _ = start(root, "--workers", "2")
        wait_until("the stale metrics' removal", lambda: not metrics[0].exists())
        proc.terminate()
        proc.communicate(timeout=60)
        assert list((root / ".lockgate" / "serve").iterdir()) == []
    finally:
        stop(proc)


def _paused_server(tmp_path: Path, failpoint: str) -> tuple[Path, Path, Any]:
    """``serve --workers 2`` on a new project with ``failpoint:pause`` on: the project,
    the directory of the pause's files, the supervisor (it listens before it forks)."""
    root, pauses = tmp_path / "p", tmp_path / "pauses"
    make_project(root)
    pauses.mkdir()
    env = {"LOCKGATE_FAILPOINTS": f"{failpoint}:pause", "LOCKGATE_PAUSE_DIR": str(pauses)}
    proc, _ = start(root, "--workers", "2", env=env)
    return root, pauses, proc


def test_a_stop_that_comes_while_the_workers_start_stops_the_server(tmp_path: Path) -> None:
    # SIGTERM as the supervisor is about to fork (failpoint serve.fork:pause): before,
    # the workers forked after the stop were never told, and the server ran on.
    root, pauses, proc = _paused_server(tmp_path, "serve.fork")
    try:
        wait_until("the pause", lambda: (pauses / "serve.fork.paused").exists())
        proc.terminate()
        time.sleep(0.2)  # the handler runs in the pause's sleep
        (pauses / "serve.fork.resume").write_text("")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert list((root / ".lockgate" / "serve").iterdir()) == []
    finally:
        stop(proc)


def test_a_worker_whose_supervisor_died_before_it_looked_ends_too(tmp_path: Path) -> None:
    # The supervisor killed outright while its workers are still starting (failpoint
    # serve.worker:pause holds each before it starts following the supervisor): before,
    # a worker read its parent then, found init, followed that, and served on forever.
    _, pauses, proc = _paused_server(tmp_path, "serve.worker")
    workers: set[int] = set()
    try:
        wait_until("two workers", lambda: len(children(proc.pid)) == 2)
        wait_until("a paused worker", lambda: (pauses / "serve.worker.paused").exists())
        workers = children(proc.pid)
        proc.kill()
        proc.wait(timeout=30)  # not communicate(): the paused workers hold its stderr
        (pauses / "serve.worker.resume").write_text("")
        wait_until("the workers' end", lambda: all(_ended(pid) for pid in workers))
    finally:
        for pid in workers:  # not left serving should the test fail
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stop(proc)


def test_a_server_db_of_an_older_server_gains_owners_and_its_jobs_are_settled(
    tmp_path: Path,
) -> None:
    import sqlite3

    from lockgate.server.idempotency import ServerDb
    from lockgate.server.jobs import Jobs
    from lockgate.server.owners import Owner

    path = tmp_path / "server.db"
    with sqlite3.connect(path) as conn:  # the tables as a server before owners made them
        conn.executescript(
            "CREATE TABLE idempotency (scope TEXT NOT NULL, key TEXT NOT NULL, "
            "fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL, "
            "at REAL NOT NULL, PRIMARY KEY (scope, key));"
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, scope TEXT NOT NULL, operation TEXT NOT "
            "NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, "
            "finished_at TEXT, http_status INTEGER, body TEXT, at REAL NOT NULL);"
            "INSERT INTO jobs VALUES ('old', 'ann', 'op', 'running', '', NULL, NULL, NULL, "
            "NULL, 0);"
        )
    conn.close()
    db, owner = ServerDb(path, keep_hours=1), Owner(tmp_path / "serve")
    jobs = Jobs(db, owner, workers=1, queue=1)
    try:
        job = jobs.get("old", None)
        assert job is not None and job["status"] == "failed" and job["http_status"] == 503
        keys = [r[1] for r in db.read("PRAGMA table_info(idempotency)")]
        assert keys[-1] == "owner"
    finally:
        jobs.shutdown()
        db.close()
        owner.close()


def test_an_address_in_use_is_one_line_before_any_worker_starts(served: tuple[Api, int]) -> None:
    api, _ = served
    done = run_lockgate("serve", "--port", str(api.port), "--workers", "2", cwd=api.root, env=ENV)
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "address already in use" in done.stderr
    assert f"127.0.0.1:{api.port}" in done.stderr


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--workers", "0"], "", "--workers '0': give a number from 1 to 256, or auto"),
        (["--workers", "many"], "", "--workers 'many': give a number from 1 to 256, or auto"),
        ([], "server:\n  workers: 0\n", "server.workers: workers must be from 1 to 256"),
    ],
)
def test_a_bad_worker_count_is_one_line(
    tmp_path: Path, args: list[str], config: str, message: str
) -> None:
    root = tmp_path / "p"
    make_project(root)
    with (root / "lockgate.yaml").open("a") as f:
        f.write(config)
    done = run_lockgate("serve", "--port", str(free_port()), *args, cwd=root, env=ENV)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


def test_auto_and_the_config_choose_the_number_of_workers(tmp_path: Path) -> None:
    from lockgate.cli.serve_cmd import worker_count

    assert worker_count("auto", None) == len(os.sched_getaffinity(0))
    assert worker_count(None, "auto") == len(os.sched_getaffinity(0))
    assert worker_count(None, 3) == 3 and worker_count("2", 3) == 2
    assert worker_count(None, None) == 1
    root = tmp_path / "p"
    tokens = make_project(root)
    with (root / "lockgate.yaml").open("a") as f:
        f.write("server:\n  workers: 2\n")
    proc, port = start(root)
    try:
        wait_until("two workers answering", lambda: len(_workers_seen(port, want=2)) == 2)
        api = Api(root, port, tokens)
        assert api.call("GET", "/api/v1/stages", role="viewer")[0] == 200
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0 and ", 2 worker processes)" in err


def _promote_async(
    worker: Pinned, token: str, ref: str, signals: Path | None = None
) -> dict[str, Any]:
    """Start a promote of ``ref`` as a job on ``worker``; with ``signals``, wait until
    its gate holds (the held server's validator waits there for ``go``)."""
    job: dict[str, Any] = worker.call(
        "POST", f"/api/v1/components/{ref}/promote", token=token, headers=ASYNC
    )[1]
    if signals is not None:
        wait_until("the gate", (signals / "waiting").exists)
    return job


def _workers_seen(port: int, want: int = 0) -> set[int]:
    seen: set[int] = set()
    for _ in range(200):
        pinned = Pinned(port)
        seen.add(pinned.worker)
        pinned.close()
        if want and len(seen) >= want:
            break
    return seen


def _ended(pid: int) -> bool:
    """Whether process ``pid`` ended and was reaped: every thread gone, its files (and
    locks) released; a zombie leader may still wait for its other threads."""
    return not Path(f"/proc/{pid}").exists()


def _job(db: Path, job: str) -> tuple[str, int | None]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT status, http_status FROM jobs WHERE id=?", (job,)).fetchone()
    return row[0], row[1]


def test_a_sweep_removes_only_the_lock_files_of_processes_that_ended(tmp_path: Path) -> None:
    """What a supervisor does as it ends: a worker stopped while it started (its
    inherited signal handler exits at once) leaves its lock file behind."""
    from lockgate.server.owners import Owner

    serve = tmp_path / "serve"
    one, two = Owner(serve), Owner(serve)
    left = serve / "4242-0123456789ab.lock"
    left.write_text("")  # a process that ended without removing it: nobody holds it
    one.sweep()
    assert sorted(p.name for p in serve.iterdir()) == sorted([f"{one.id}.lock", f"{two.id}.lock"])
    two.close()
    one.close()
    assert list(serve.iterdir()) == []
