"""``lockgate serve`` through a real server: a ``lockgate serve`` process listening on a
free port of 127.0.0.1, called over real sockets. Every endpoint: 401 without a token,
403 with the wrong role or stage (audited), the happy path, and bad input answered with
a JSON error that changed nothing."""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import run_lockgate, subprocess_env
from lockgate.server.routes import ROUTES

CONFIG = """\
plugins:
  approvals:
    stages:
      production:
        required: 1
"""
ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
ROLES = {
    "viewer": ("vic", "viewer", None),
    "developer": ("dev", "developer", None),
    "approver": ("carol", "approver", None),
    "releaser": ("rel", "releaser", None),
    "staging_releaser": ("sam", "releaser", "staging"),
    "admin": ("ada", "admin", None),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    """A client of one running server."""

    def __init__(self, root: Path, port: int, tokens: Mapping[str, str]) -> None:
        self.root, self.port, self.tokens = root, port, tokens

    def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = None,
        body: bytes | dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if role is not None or token is not None:
            sent["Authorization"] = f"Bearer {token or self.tokens[role or '']}"
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        if isinstance(body, dict):
            sent.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(raw) if "json" in kind else raw.decode()

    def finish(self, answer: tuple[int, Any], role: str) -> tuple[int, Any]:
        """Follow a 202 to its job until it ends: the job's status and result (or
        error), as the request would have been answered."""
        status, body = answer
        assert status == 202, body
        deadline = time.monotonic() + 120
        while True:
            status, job = self.call("GET", body["location"], role=role)
            assert status == 200, job
            if job["status"] in ("succeeded", "failed"):
                return job["http_status"], job.get("result", job.get("error"))
            assert time.monotonic() < deadline, f"job {job} never ended"
            time.sleep(0.05)

    def stage(
        self, ref: str, files: Mapping[str, bytes], role: str = "developer"
    ) -> tuple[int, Any]:
        """Upload ``files`` as ``ref`` and wait for the staging job."""
        answer = self.call(
            "POST", f"/api/v1/components/{ref}/stage", role=role, body=upload(files),
            headers={"Content-Type": "application/x-tar"},
        )  # fmt: skip
        return self.finish(answer, role)

    def events(self, action: str | None = None) -> list[dict[str, Any]]:
        status, body = self.call("GET", "/api/v1/audit?limit=10000&order=oldest", role="admin")
        assert status == 200
        return [e for e in body if action is None or e["action"] == action]


def start(
    root: Path, *extra: str, env: Mapping[str, str] | None = None, python_code: str | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``lockgate serve`` on a free port (``python_code``: ``python -c`` that instead of
    ``python -m lockgate``), once it listens."""
    port = free_port()
    launch = ["-c", python_code] if python_code is not None else ["-m", "lockgate"]
    proc = subprocess.Popen(
        [sys.executable, *launch, "serve", "--port", str(port), *extra],
        cwd=root,
        env=subprocess_env(ENV, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"serve exited {proc.returncode}: {err}") from None
            time.sleep(0.1)
    stop(proc)
    raise AssertionError("serve did not listen within 30 s")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def make_project(root: Path) -> dict[str, str]:
    root.mkdir(parents=True)
    (root / "lockgate.yaml").write_text(CONFIG)
    assert run_lockgate("init", cwd=root, env=ENV).returncode == 0
    for cid in ("etl", "report"):
        comp = root / "workspaces" / "alice" / "builders" / cid
        comp.mkdir(parents=True)
        (comp / "run.py").write_text(f"print({cid!r})\n")
        done = run_lockgate("stage", f"alice:{cid}", cwd=root, env=ENV)
        assert done.returncode == 0, done.stderr
    tokens = {}
    for key, (actor, role, stage) in ROLES.items():
        args = ["token", "create", "--actor", actor, "--role", role, "--json"]
        made = run_lockgate(*args, *(["--stage", stage] if stage else []), cwd=root, env=ENV)
        assert made.returncode == 0, made.stderr
        tokens[key] = json.loads(made.stdout)["token"]
    return tokens


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("server") / "p"
    tokens = make_project(root)
    proc, port = start(root, "--max-body", "200000", "--auth-failures", "100000")
    try:
        yield Api(root, port, tokens)
    finally:
        stop(proc)


def tar_of(entries: list[tarfile.TarInfo], data: Mapping[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in entries:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def file_entry(name: str, text: bytes = b"print('up')\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(text)
    return info, text


def upload(files: Mapping[str, bytes]) -> bytes:
    pairs = [file_entry(name, text) for name, text in files.items()]
    return tar_of([p[0] for p in pairs], {p[0].name: p[1] for p in pairs})


def concrete(path: str) -> str:
    return (
        path.replace("{ref}", "alice:etl")
        .replace("{revision}", "latest")
        .replace("{stage}", "staging")
        .replace("{name}", "deploy")
        .replace("{id}", "0" * 32)
    )


# ---------------------------------------------------------------------- public


def test_health_ready_openapi_and_docs_need_no_token(api: Api) -> None:
    status, health = api.call("GET", "/health")
    assert status == 200 and health["status"] == "ok" and isinstance(health["worker"], int)
    assert api.call("GET", "/ready") == (200, {"ready": True, "problems": []})
    status, doc = api.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for route in ROUTES:
        assert route.method.lower() in doc["paths"][route.path], route.path
    status, page = api.call("GET", "/docs")
    assert status == 200 and "/api/v1/components/{ref}/promote" in page


def test_metrics_need_a_token_and_count_requests(api: Api) -> None:
    assert api.call("GET", "/metrics")[0] == 401
    status, text = api.call("GET", "/metrics", role="viewer")
    assert status == 200
    assert 'lockgate_http_requests_total{method="GET",route="/metrics",status="401"}' in text
    assert "lockgate_auth_failures_total" in text


def test_an_unknown_path_and_method_are_json_errors(api: Api) -> None:
    status, body = api.call("GET", "/api/v1/nothing", role="viewer")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = api.call("DELETE", "/api/v1/components", role="admin")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------------- 401 and 403


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_every_endpoint_answers_401_without_a_token_and_changes_nothing(
    api: Api, route: Any
) -> None:
    before = len(api.events())
    for token in (None, "lg_0123456789ab_" + "x" * 43):
        status, body = api.call(route.method, concrete(route.path), token=token, body={})
        assert status == 401, body
        assert body["error"]["code"] == "unauthenticated"
        assert "\n" not in body["error"]["message"]
    assert len(api.events()) == before


WRONG_ROLE = {"stage": "approver", "validate": "viewer", "approve": "releaser",
              "reject": "developer", "promote": "developer", "rollback": "approver",
              "remove": "releaser"}  # fmt: skip


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.method == "POST"],
    ids=[r.path for r in ROUTES if r.method == "POST"],
)
def test_every_operation_answers_403_with_what_was_missing_and_audits_it(
    api: Api, route: Any
) -> None:
    role = WRONG_ROLE[route.action]
    before = api.events()
    body: bytes | dict[str, Any] = upload({"run.py": b"x = 1\n"}) if route.upload else {}
    headers = {"Content-Type": "application/x-tar"} if route.upload else None
    status, answer = api.call("POST", concrete(route.path), role=role, body=body, headers=headers)
    assert status == 403, answer
    assert answer["error"]["code"] == "forbidden"
    assert f"{route.action} needs role" in answer["error"]["message"]
    after = api.events()
    assert [e["action"] for e in after[len(before) :]] == ["server.denied"]
    denied = after[-1]
    assert denied["outcome"] == "refused" and denied["details"]["wanted"] == route.action
    assert (api.root / "workspaces/alice/builders/etl/run.py").read_text() == "print('etl')\n"


def test_a_stage_limited_releaser_is_refused_in_another_stage(api: Api) -> None:
    status, body = api.call(
        "POST", "/api/v1/components/report/promote", role="staging_releaser",
        body={"to": "production"},
    )  # fmt: skip
    assert status == 403 and "limited to stage staging" in body["error"]["message"]


# ---------------------------------------------------------------------- reads


def test_reads_give_components_revisions_stages_history_and_reports(api: Api) -> None:
    status, rows = api.call("GET", "/api/v1/components", role="viewer")
    assert status == 200 and {r["component"] for r in rows} >= {"alice:etl", "alice:report"}
    status, one = api.call("GET", "/api/v1/components/alice:report", role="viewer")
    assert status == 200 and one["status"] == "staged" and len(one["revisions"]) == 1
    status, rev = api.call("GET", "/api/v1/components/alice:report/revisions/latest", role="viewer")
    assert status == 200 and [f["path"] for f in rev["manifest"]] == ["run.py"]
    status, stages = api.call("GET", "/api/v1/stages", role="viewer")
    assert [s["stage"] for s in stages] == ["staging", "integration", "production"]
    status, live = api.call("GET", "/api/v1/stages/staging/live-at?at=now", role="viewer")
    assert status == 200 and isinstance(live, list)
    status, history = api.call("GET", "/api/v1/components/alice:report/history", role="viewer")
    assert status == 200 and history[-1]["action"] == "stage"
    assert api.call("GET", "/api/v1/summary", role="viewer")[0] == 200
    status, stats = api.call("GET", "/api/v1/stats", role="viewer")
    assert status == 200 and isinstance(stats, dict)
    status, events = api.call("GET", "/api/v1/audit?action=token.create&limit=3", role="viewer")
    assert status == 200 and len(events) == 3 and {e["action"] for e in events} == {"token.create"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/components/alice:nope", "never been staged"),
        ("/api/v1/components/bad name", "component"),
        ("/api/v1/stages/nowhere/live-at", "nowhere"),
        ("/api/v1/audit?limit=0", "limit='0'"),
        ("/api/v1/audit?since=yesterday", "since 'yesterday' is not a time"),
    ],
)
def test_bad_reads_are_one_line_json_errors(api: Api, path: str, message: str) -> None:
    status, body = api.call("GET", path.replace(" ", "%20"), role="viewer")
    assert status in (400, 404), body
    assert message in body["error"]["message"] and "\n" not in body["error"]["message"]


# ---------------------------------------------------------------------- operations


def test_the_ladder_through_the_api_with_the_token_as_actor(api: Api) -> None:
    ref = "/api/v1/components/alice:etl"
    status, staged = api.stage("alice:etl", {"run.py": b"print('v2')\n"})
    assert status == 201, staged
    assert (api.root / "workspaces/alice/builders/etl/run.py").read_bytes() == b"print('v2')\n"
    status, report = api.call("POST", ref + "/validate", role="developer", body={})
    assert status == 200 and report["overall_ready"] is True, report
    for _ in range(2):
        status, moved = api.call("POST", ref + "/promote", role="releaser")
        assert status == 200, moved
    status, blocked = api.call("POST", ref + "/promote", role="releaser")
    assert status == 422 and blocked["error"]["code"] == "not_ready"
    assert "approval" in blocked["error"]["message"]
    status, approved = api.call("POST", ref + "/approve", role="approver", body={"comment": "ok"})
    assert status == 200 and approved["actor"] == "carol", approved
    status, moved = api.call("POST", ref + "/promote", role="releaser")
    assert status == 200 and moved["stage"] == "production" and moved["actor"] == "rel"
    assert (api.root / "stages/production/etl/run.py").read_bytes() == b"print('v2')\n"
    status, back = api.call("POST", ref + "/rollback", role="releaser", body={"to": "none"})
    assert status == 200 and back["stage"] == "production", back
    assert not (api.root / "stages/production/etl").exists()
    promote = [e for e in api.events("promote") if e["stage"] == "production"][-1]
    assert promote["actor"] == "rel"
    assert promote["details"]["actor_via"] == f"token:{api.tokens['releaser'][3:15]}"


def test_a_request_cannot_name_another_actor(api: Api) -> None:
    status, body = api.call(
        "POST", "/api/v1/components/alice:report/approve", role="approver", body={"actor": "bob"}
    )
    assert status == 400 and "unknown field 'actor'" in body["error"]["message"]


def test_reject_needs_a_reason_and_records_the_token_actor(api: Api) -> None:
    path = "/api/v1/components/alice:report/reject"
    status, body = api.call("POST", path, role="approver", body={})
    assert status == 400 and "give a reason" in body["error"]["message"]
    status, body = api.call("POST", path, role="approver", body={"reason": "no tests"})
    assert status == 200 and body["actor"] == "carol" and body["status"] == "rejected"


HOSTILE = [
    ("dotdot", [tarfile.TarInfo("../escape.py")], "climbs out with '..'"),
    ("absolute", [tarfile.TarInfo("/etc/escape.py")], "is an absolute path"),
    ("symlink-out", ["link:evil:../../../../etc/passwd"], "is a symlink out of the component"),
    ("symlink-abs", ["link:evil:/etc/passwd"], "symlink to an absolute path"),
    ("device", ["dev:null"], "is a device file"),
    ("fifo", ["fifo:pipe"], "is a FIFO"),
    ("hardlink", ["hard:copy:run.py"], "is a hard link"),
]


def _hostile(spec: list[Any]) -> bytes:
    entries = []
    data = {}
    for item in spec:
        if isinstance(item, tarfile.TarInfo):
            data[item.name] = b"x"
            entries.append(item)
            continue
        kind, name, *rest = item.split(":", 2)
        info = tarfile.TarInfo(name)
        if kind == "link":
            info.type, info.linkname = tarfile.SYMTYPE, rest[0]
        elif kind == "hard":
            info.type, info.linkname = tarfile.LNKTYPE, rest[0]
        elif kind == "dev":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        else:
            info.type = tarfile.FIFOTYPE
        entries.append(info)
    good, text = file_entry("good.py")
    return tar_of([good, *entries], {"good.py": text, **data})


@pytest.mark.parametrize(("spec", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_archives_are_refused_and_change_nothing(
    api: Api, spec: list[Any], message: str
) -> None:
    before = api.events("stage")
    status, body = api.call(
        "POST", "/api/v1/components/alice:etl/stage", role="developer", body=_hostile(spec),
        headers={"Content-Type": "application/x-tar"},
    )  # fmt: skip
    assert status == 400, body
    assert body["error"]["code"] == "bad_request" and message in body["error"]["message"]
    assert not (api.root / "workspaces/alice/builders/etl/good.py").exists()
    assert not list((api.root / "workspaces/alice/builders").glob(".*"))
    assert api.events("stage") == before


def test_oversized_bodies_and_wrong_media_are_refused(api: Api) -> None:
    before = api.events()
    big = upload({"big.bin": b"\0" * 300_000})
    status, body = api.call(
        "POST", "/api/v1/components/alice:etl/stage", role="developer", body=big,
        headers={"Content-Type": "application/x-tar"},
    )  # fmt: skip
    assert status == 413 and body["error"]["code"] == "too_large"
    status, body = api.call(
        "POST", "/api/v1/components/alice:etl/stage", role="developer", body=b"{}",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    status, body = api.call(
        "POST", "/api/v1/components/alice:etl/stage", role="developer", body=b"not a tar",
        headers={"Content-Type": "application/x-tar"},
    )  # fmt: skip
    assert status == 400 and "not a tar archive" in body["error"]["message"]
    status, body = api.call(
        "POST", "/api/v1/components/alice:etl/promote", role="releaser", body=b"{nope",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 400 and "not JSON" in body["error"]["message"]
    assert api.events() == before


def test_an_idempotency_key_answers_a_retry_once(api: Api) -> None:
    path = "/api/v1/components/alice:report/promote"
    # report was rejected above in some orders: approve a fresh upload first
    staged = api.stage("alice:report", {"run.py": b"print('r2')\n"})
    assert staged[0] in (200, 201), staged
    before = len(api.events("promote"))
    first = api.call("POST", path, role="releaser", headers={"Idempotency-Key": "k-1"})
    again = api.call("POST", path, role="releaser", headers={"Idempotency-Key": "k-1"})
    assert first[0] == 200 and first == again
    assert len(api.events("promote")) == before + 1
    status, body = api.call(
        "POST", path, role="releaser", body={"reason": "other"}, headers={"Idempotency-Key": "k-1"}
    )
    assert status == 422 and body["error"]["code"] == "idempotency_mismatch"


# ---------------------------------------------------------------------- a server of its own


def test_failed_authentication_is_rate_limited_per_client(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tokens = make_project(root)
    proc, port = start(root, "--auth-failures", "3")
    try:
        api = Api(root, port, tokens)
        for _ in range(3):
            assert api.call("GET", "/api/v1/stats", token="lg_0123456789ab_" + "y" * 43)[0] == 401
        status, body = api.call("GET", "/api/v1/stats", role="admin")
        assert status == 429 and body["error"]["code"] == "rate_limited"
        assert "too many failed authentications from 127.0.0.1" in body["error"]["message"]
    finally:
        stop(proc)


def test_serve_without_the_server_extra_says_what_to_install(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    assert run_lockgate("init", cwd=root, env=ENV).returncode == 0
    code = (
        "import sys; sys.modules['starlette'] = None; sys.argv[0] = 'lockgate'\n"
        "from lockgate.cli.main import main; main()"
    )
    done = run_lockgate("serve", cwd=root, env=ENV, python_code=code)
    assert done.returncode == 3
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'lockgate[server]'" in done.stderr and "starlette" in done.stderr


def test_ready_is_503_while_an_interrupted_operation_waits(api: Api) -> None:
    from lockgate.contracts.clock import now_iso
    from lockgate.contracts.state import Intent
    from lockgate.testing import open_project

    project = open_project(api.root, environ=ENV)
    try:
        state = project.state()
        state.open_intent(Intent("ready-probe", "promote", "nobody", now_iso()))
        try:
            status, body = api.call("GET", "/ready")
        finally:
            state.close_intent("ready-probe", "undone")
    finally:
        project.close()
    assert status == 503 and body["ready"] is False
    assert body["problems"] == ["1 interrupted operation(s) wait for recovery"]
    assert api.call("GET", "/ready")[0] == 200


def test_a_stage_limited_approver_approves_only_for_its_next_stage(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tokens = make_project(root)
    for stage in ("staging", "production"):
        made = run_lockgate(
            "token", "create", "--actor", f"ap-{stage}", "--role", "approver",
            "--stage", stage, "--json", cwd=root, env=ENV,
        )  # fmt: skip
        tokens[stage] = json.loads(made.stdout)["token"]
    proc, port = start(root)
    try:
        api = Api(root, port, tokens)
        path = "/api/v1/components/alice:etl/approve"
        status, body = api.call("POST", path, role="production")
        message = body["error"]["message"]
        assert status == 403 and "approve in stage staging needs a token for stage" in message
        assert "limited to stage production" in message
        status, body = api.call("POST", path, role="staging")
        assert status == 200 and body["actor"] == "ap-staging"
    finally:
        stop(proc)
