"""``lockgate serve`` on a project whose state is in PostgreSQL: tokens issued there are
accepted, refused once revoked, and never accepted by another project sharing the
database (row-level security keeps each project's tokens its own)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.testing import run_cli

from .test_postgres_cli import ok, write_component, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, root: Path, *args: str) -> None:
        self.root, self.port = root, free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lockgate", "serve", "--port", str(self.port), *args],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"serve did not start: {self.proc.stderr}") from None
                time.sleep(0.1)

    def get(self, path: str, token: str) -> tuple[int, object]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def promoted(lockgate_project: Path, pg_dsn: str, project_key: str) -> Path:
    write_config(lockgate_project, pg_dsn, project_key)
    write_component(lockgate_project, "print('v1')\n")
    ok("stage", "alice:etl", project=lockgate_project)
    ok("promote", "alice:etl", "--to", "staging", project=lockgate_project)
    return lockgate_project


@pytest.fixture
def served(promoted: Path) -> Iterator[Served]:
    server = Served(promoted)
    try:
        yield server
    finally:
        server.stop()


def test_the_supervisor_of_workers_forks_holding_no_connection(promoted: Path) -> None:
    """The command's own project is closed before the workers are forked: no pool (and
    none of its threads) is copied into them or kept idle for the server's life."""
    server = Served(promoted, "--workers", "2")
    try:
        made = ok("token", "create", "--actor", "vic", "--role", "viewer", project=promoted)
        status, body = server.get("/api/v1/stages", made["token"])
        assert status == 200, body
        threads = len(list(Path(f"/proc/{server.proc.pid}/task").iterdir()))
        assert threads == 1, f"the supervisor runs {threads} threads"
    finally:
        server.stop()


def test_a_token_issued_on_postgres_is_served_until_revoked(served: Served) -> None:
    made = ok("token", "create", "--actor", "vic", "--role", "viewer", project=served.root)
    status, stages = served.get("/api/v1/stages", made["token"])
    assert status == 200, stages
    assert isinstance(stages, list) and stages[0]["live"][0]["component"] == "alice:etl"
    listed = ok("token", "ls", project=served.root)
    assert [t["id"] for t in listed] == [made["id"]]
    ok("token", "revoke", made["id"], project=served.root)
    status, body = served.get("/api/v1/stages", made["token"])
    assert status == 401, body


def test_a_token_of_another_project_in_the_same_database_is_refused(
    served: Served, tmp_path: Path, pg_dsn: str, project_key: str
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_config(other, pg_dsn, project_key + "-other")
    result = run_cli(
        "--json", "token", "create", "--actor", "mallory", "--role", "admin", project=other
    )
    assert result.exit_code == 0, result.stderr
    foreign = json.loads(result.stdout)["token"]
    status, body = served.get("/api/v1/stages", foreign)
    assert status == 401, body
    assert ok("token", "ls", project=served.root) == []
