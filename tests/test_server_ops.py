"""``lockgate serve``'s longer operations through a real server on 127.0.0.1: pipeline
runs and removal, jobs with a status URL (and what a stop does to them), the
``Idempotency-Key`` across a restart, and the request timeout over a real slow
validator (a distribution installed for the server's process, not a mock)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import write_distribution
from test_server import Api, make_project, start, stop

PIPELINE = "components: [alice:etl, alice:report]\ndepends_on:\n  alice:report: [alice:etl]\n"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("ops") / "p"
    tokens = make_project(root)
    (root / "pipelines").mkdir()
    (root / "pipelines" / "deploy.yaml").write_text(PIPELINE)
    proc, port = start(root, "--auth-failures", "100000")
    try:
        yield Api(root, port, tokens)
    finally:
        stop(proc)


def live(api: Api, stage: str) -> dict[str, str]:
    status, stages = api.call("GET", "/api/v1/stages", role="viewer")
    assert status == 200
    rows = next(s for s in stages if s["stage"] == stage)["live"]
    return {r["component"]: r["revision"] for r in rows}


# ---------------------------------------------------------------------- pipelines


def test_a_pipeline_promotes_and_rolls_back_as_jobs(api: Api) -> None:
    answer = api.call(
        "POST", "/api/v1/pipelines/deploy/promote", role="releaser", body={"to": "staging"}
    )
    assert answer[1]["location"].startswith("/jobs/")
    status, report = api.finish(answer, "releaser")
    assert status == 200 and report["status"] == "completed", report
    assert [s["component"] for s in report["step_results"]] == ["alice:etl", "alice:report"]
    assert set(live(api, "staging")) == {"alice:etl", "alice:report"}
    assert (api.root / "stages/staging/report/run.py").is_file()
    runs = [e for e in api.events("pipeline") if e["stage"] == "staging"]
    assert runs[-1]["actor"] == "rel"

    answer = api.call("POST", "/api/v1/pipelines/deploy/rollback", role="releaser", body={})
    status, report = api.finish(answer, "releaser")
    assert status == 200 and report["kind"] == "rollback" and report["status"] == "completed"
    assert live(api, "staging") == {}
    assert not (api.root / "stages/staging/report").exists()


def run(api: Api, stage: str) -> tuple[int, Any]:
    answer = api.call(
        "POST", "/api/v1/pipelines/deploy/promote", role="releaser", body={"to": stage}
    )
    return api.finish(answer, "releaser")


def test_a_pipeline_run_refused_is_a_failed_job_with_the_error(api: Api) -> None:
    before = live(api, "production")
    status, error = run(api, "production")  # nothing is in integration yet
    assert status == 409 and error["code"] == "refused", error
    assert "promote it to integration first" in error["message"]
    for stage in ("staging", "integration"):
        assert run(api, stage)[0] == 200
    status, error = run(api, "production")  # production needs an approval
    assert status == 422 and error["code"] == "not_ready", error
    assert "before anything moved" in error["message"]
    assert error["report"]["status"] == "failed" and error["report"]["stage"] == "production"
    assert live(api, "production") == before


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        ("/api/v1/pipelines/nope/promote", {"to": "staging"}, 404, "no pipeline 'nope'"),
        ("/api/v1/pipelines/deploy/promote", {}, 400, "field 'to' is required"),
        ("/api/v1/pipelines/deploy/promote", {"to": "nowhere"}, 404, "no stage 'nowhere'"),
        ("/api/v1/pipelines/deploy/promote", {"to": "staging", "actor": "x"}, 400, "unknown field"),
        ("/api/v1/pipelines/deploy/rollback", {"dry_run": "yes"}, 400, "true or false"),
        ("/api/v1/pipelines/bad%20name/rollback", {}, 400, "pipeline name"),
    ],
)
def test_bad_pipeline_requests_are_refused_at_once_and_queue_nothing(
    api: Api, path: str, body: dict[str, Any], code: int, message: str
) -> None:
    before = api.events()
    status, answer = api.call("POST", path, role="releaser", body=body)
    assert status == code, answer
    assert message in answer["error"]["message"] and "\n" not in answer["error"]["message"]
    assert api.events() == before


def test_a_stage_limited_releaser_runs_pipelines_only_in_its_stage(api: Api) -> None:
    status, body = api.call(
        "POST", "/api/v1/pipelines/deploy/promote", role="staging_releaser",
        body={"to": "integration"},
    )  # fmt: skip
    assert status == 403 and "limited to stage staging" in body["error"]["message"]
    assert api.events()[-1]["action"] == "server.denied"


# ---------------------------------------------------------------------- remove


def test_an_admin_removes_a_component_and_others_may_not(api: Api) -> None:
    answer = api.call(
        "POST", "/api/v1/components/alice:old/stage?type=builders", role="developer",
        body=_tar({"run.py": b"print('old')\n"}), headers={"Content-Type": "application/x-tar"},
    )  # fmt: skip
    assert api.finish(answer, "developer")[0] == 201
    status, moved = api.call("POST", "/api/v1/components/alice:old/promote", role="releaser")
    assert status == 200 and moved["stage"] == "staging"
    path = "/api/v1/components/alice:old/remove"
    status, body = api.call("POST", path, role="releaser", body={"reason": "gone"})
    assert status == 403 and "remove needs role admin" in body["error"]["message"]
    status, body = api.call("POST", path, role="admin", body={})
    assert status == 400 and "give --reason" in body["error"]["message"]
    status, body = api.call(
        "POST", path, role="admin", body={"reason": "replaced", "dry_run": True}
    )
    assert status == 200 and body["dry_run"] and "alice:old" in live(api, "staging")
    status, body = api.call("POST", path, role="admin", body={"reason": "replaced"})
    assert status == 200 and body["retired"] is True, body
    assert body["removed_from"][0]["stage"] == "staging" and body["actor"] == "ada"
    assert "alice:old" not in live(api, "staging")
    assert not (api.root / "stages/staging/old").exists()
    status, one = api.call("GET", "/api/v1/components/alice:old", role="viewer")
    assert one["status"] == "retired"
    status, body = api.call("POST", "/api/v1/components/alice:never/remove", role="admin",
                            body={"reason": "x"})  # fmt: skip
    assert status == 404 and "never been staged" in body["error"]["message"]


def _tar(files: dict[str, bytes]) -> bytes:
    from test_server import upload

    return upload(files)


# ---------------------------------------------------------------------- jobs


def test_any_operation_runs_as_a_job_when_asked_and_only_its_actor_sees_it(api: Api) -> None:
    answer = api.call(
        "POST", "/api/v1/components/alice:etl/validate", role="developer", body={}, headers=ASYNC
    )
    job = answer[1]["location"]
    status, report = api.finish(answer, "developer")
    assert status == 200 and "overall_ready" in report, report
    status, seen = api.call("GET", job, role="developer")
    assert seen["actor"] == "dev" and seen["operation"].endswith("/validate")
    assert seen["started_at"] <= seen["finished_at"]
    assert api.call("GET", job, role="admin")[0] == 200
    status, body = api.call("GET", job, role="viewer")
    assert status == 404 and "belongs to another actor" in body["error"]["message"]
    status, body = api.call("GET", "/jobs/" + "f" * 32, role="admin")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_a_job_answers_with_a_location_header(api: Api) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    try:
        headers = {"Authorization": f"Bearer {api.tokens['developer']}", **ASYNC}
        conn.request("POST", "/api/v1/components/alice:etl/validate", b"{}", headers)
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 202 and response.getheader("Location") == body["location"]
    api.finish((202, body), "developer")


# ---------------------------------------------------------------------- a server of its own

# A validator that holds the gate until the test lets it go (files as signals): a real
# slow validator, in a distribution installed for the server's process only.
HOLD = """\
import os
import time
from pathlib import Path

from lockgate import hookimpl


@hookimpl
def on_validate(subject):
    signals = Path(os.environ["HOLD_DIR"])
    (signals / "waiting").write_text(str(os.getpid()))
    while not (signals / "go").exists():
        time.sleep(0.01)
    return []
"""


# The same, holding the announcement of a promotion instead: the switch is made.
HOLD_ANNOUNCE = HOLD.replace("def on_validate(subject):", "def on_promote(event):").replace(
    "    return []\n", ""
)


def held_server(tmp_path: Path, *extra: str, hold: str = HOLD) -> tuple[Any, Api, Path]:
    """A served project whose plugin holds until ``signals/go`` exists."""
    root, site, signals = tmp_path / "p", tmp_path / "site", tmp_path / "signals"
    signals.mkdir()
    write_distribution(site, "lockgate-hold", "1.0", {"hold": "lockgate_hold"},
                       {"lockgate_hold": hold})  # fmt: skip
    tokens = make_project(root)
    env = {"PYTHONPATH": str(site), "HOLD_DIR": str(signals)}
    proc, port = start(root, "--auth-failures", "1000", *extra, env=env)
    return proc, Api(root, port, tokens), signals


def wait_until(what: str, done: Any) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)


def test_a_timeout_answers_504_and_the_operation_stops_before_changing_anything(
    tmp_path: Path,
) -> None:
    proc, api, signals = held_server(tmp_path, "--timeout", "1")
    try:
        path = "/api/v1/components/alice:etl/promote"
        key = {"Idempotency-Key": "slow-1"}
        first: list[Any] = []
        caller = threading.Thread(
            target=lambda: first.append(api.call("POST", path, role="releaser", headers=key))
        )
        caller.start()
        wait_until("the gate", (signals / "waiting").exists)
        status, body = api.call("POST", path, role="releaser", headers=key)
        assert status == 409 and "still running" in body["error"]["message"]
        caller.join()
        status, body = first[0]
        assert status == 504 and body["error"]["code"] == "timeout", body
        assert "nothing was changed" in body["error"]["message"]
        (signals / "go").write_text("")
        wait_until("the refusal", lambda: api.events("server.timeout"))
        refused = api.events("server.timeout")[-1]
        assert refused["actor"] == "rel" and refused["outcome"] == "refused"
        assert "stopped before changing anything" in refused["details"]["why"]
        assert api.events("promote") == []
        assert live(api, "staging") == {}
        assert not (api.root / "stages/staging/etl").exists()
        # nothing holds the gate now: the same request succeeds
        status, moved = api.call("POST", path, role="releaser", headers={"Idempotency-Key": "k2"})
        assert status == 200 and moved["stage"] == "staging"
    finally:
        (signals / "go").write_text("")
        stop(proc)


def test_an_operation_past_its_lock_is_answered_when_it_ends_never_504(tmp_path: Path) -> None:
    proc, api, signals = held_server(tmp_path, "--timeout", "2", hold=HOLD_ANNOUNCE)
    path = "/api/v1/components/alice:etl/promote"
    try:
        for _attempt in range(3):  # a loaded machine may not reach the lock within 2 s
            answer: list[Any] = []
            caller = threading.Thread(target=lambda out=answer: out.append(
                api.call("POST", path, role="releaser")))  # fmt: skip
            caller.start()
            wait_until("the announcement or an answer", lambda out=answer: bool(out)
                       or (signals / "waiting").exists())  # fmt: skip
            if (signals / "waiting").exists():
                break
            caller.join()
            assert answer[0][0] == 504, answer  # stopped before its lock: fine, again
        else:
            pytest.fail("the promotion never reached its lock within the timeout")
        refused = len(api.events("server.timeout"))
        time.sleep(3)  # well past the timeout: the request must still be waiting
        assert answer == []
        (signals / "go").write_text("")
        caller.join()
        status, moved = answer[0]
        assert status == 200 and moved["stage"] == "staging", moved
        assert len(api.events("server.timeout")) == refused
    finally:
        (signals / "go").write_text("")
        stop(proc)


def test_a_stop_finishes_running_jobs_and_fails_queued_ones_for_good(tmp_path: Path) -> None:
    proc, api, signals = held_server(tmp_path, "--job-threads", "1")
    try:
        running = api.call(
            "POST", "/api/v1/components/alice:etl/promote", role="releaser", headers=ASYNC
        )[1]
        wait_until("the gate", (signals / "waiting").exists)
        queued = api.call(
            "POST", "/api/v1/components/alice:report/promote", role="releaser", headers=ASYNC
        )[1]
        status, job = api.call("GET", queued["location"], role="releaser")
        assert job["status"] == "queued" and job["started_at"] is None
        proc.terminate()
        db = api.root / ".lockgate" / "server.db"
        wait_until("the queued job's failure", lambda: _status(db, queued["job"]) == "failed")
        (signals / "go").write_text("")
        proc.communicate(timeout=60)
    finally:
        (signals / "go").write_text("")
        stop(proc)
    proc, port = start(api.root)
    try:
        api = Api(api.root, port, api.tokens)
        status, done = api.finish((202, running), "releaser")
        assert status == 200 and done["component"] == "alice:etl" and done["stage"] == "staging"
        status, error = api.finish((202, queued), "releaser")
        assert status == 503 and error["code"] == "unavailable"
        assert "stopped before this job started; nothing was done" in error["message"]
        assert set(live(api, "staging")) == {"alice:etl"}
    finally:
        stop(proc)


def _status(db: Path, job: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT status FROM jobs WHERE id=?", (job,)).fetchone()
    return row[0] if row else None


def test_an_idempotency_key_is_answered_the_same_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tokens = make_project(root)
    proc, port = start(root)
    path = "/api/v1/components/alice:etl/promote"
    try:
        api = Api(root, port, tokens)
        first = api.call("POST", path, role="releaser", body={"reason": "r"},
                         headers={"Idempotency-Key": "deploy-42"})  # fmt: skip
        assert first[0] == 200
        upload = api.call(
            "POST", "/api/v1/components/alice:report/stage", role="developer",
            body=_tar({"run.py": b"print(2)\n"}),
            headers={"Content-Type": "application/x-tar", "Idempotency-Key": "up-1"},
        )  # fmt: skip
        assert api.finish(upload, "developer")[0] == 201
    finally:
        stop(proc)
    proc, port = start(root)
    try:
        api = Api(root, port, tokens)
        promotions = len(api.events("promote"))
        again = api.call("POST", path, role="releaser", body={"reason": "r"},
                         headers={"Idempotency-Key": "deploy-42"})  # fmt: skip
        assert again == first and len(api.events("promote")) == promotions
        upload_again = api.call(
            "POST", "/api/v1/components/alice:report/stage", role="developer",
            body=_tar({"run.py": b"print(2)\n"}),
            headers={"Content-Type": "application/x-tar", "Idempotency-Key": "up-1"},
        )  # fmt: skip
        assert upload_again[1]["job"] == upload[1]["job"]
        status, body = api.call("POST", path, role="releaser", body={"reason": "other"},
                                headers={"Idempotency-Key": "deploy-42"})  # fmt: skip
        assert status == 422 and body["error"]["code"] == "idempotency_mismatch"
        assert "'deploy-42' was used for another request" in body["error"]["message"]
        assert len(api.events("promote")) == promotions
        # the key belongs to the actor: another actor's same key is another request
        status, body = api.call("POST", path, role="admin", body={"reason": "r"},
                                headers={"Idempotency-Key": "deploy-42"})  # fmt: skip
        assert status == 200 and body["actor"] == "ada" and body["stage"] == "integration"
    finally:
        stop(proc)


def test_expired_keys_and_jobs_are_dropped(tmp_path: Path) -> None:
    from lockgate.server.idempotency import IdempotencyKeys, ServerDb
    from lockgate.server.owners import Owner

    db = ServerDb(tmp_path / "server.db", keep_hours=1)
    keys = IdempotencyKeys(db, Owner(tmp_path / "serve"))
    runs: list[int] = []

    def work() -> tuple[int, Any]:
        runs.append(1)
        return 200, {"n": len(runs)}

    assert keys.once("ann", "k", "fp", work) == (200, {"n": 1})
    assert keys.once("ann", "k", "fp", work) == (200, {"n": 1})
    with db.cursor() as cur:  # age the answer past the hour it is kept
        cur.execute("UPDATE idempotency SET at = at - 3601")
    assert keys.once("ann", "k", "other", work) == (200, {"n": 2})
    with db.cursor() as cur:
        cur.execute("UPDATE idempotency SET at = at - 3601")
        db.purge(cur)
        assert cur.execute("SELECT count(*) FROM idempotency").fetchone() == (0,)
    db.close()
