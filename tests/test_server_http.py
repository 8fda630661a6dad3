"""The HTTP layer of ``lockgate serve``, over real sockets: ``--http`` (the compiled
parser and event loop, httptools and uvloop, when installed; the pure-Python h11 on
asyncio's loop otherwise or when asked; the same answers either way), and the queues of
``--threads`` (reads and changes wait in queues of their own)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import run_lockgate
from lockgate.contracts.state import LockOwner
from lockgate.core.project import Project
from test_server import ENV, Api, make_project, start, stop

WITHOUT_COMPILED = (
    "import sys; sys.modules['httptools'] = None; sys.modules['uvloop'] = None; "
    "sys.argv[0] = 'lockgate'\nfrom lockgate.cli.main import main; main()"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("http") / "p"
    yield root, make_project(root)


def serve_and_use(root: Path, tokens: dict[str, str], *extra: str, code: str | None) -> str:
    """Start a server, read and promote through it; what it said on stderr."""
    proc, port = start(root, *extra, python_code=code)
    try:
        client = Api(root, port, tokens)
        status, rows = client.call("GET", "/api/v1/components", role="viewer")
        assert status == 200, rows
        assert {r["component"] for r in rows} == {"alice:etl", "alice:report"}
        status, body = client.call(
            "POST", "/api/v1/components/alice:etl/promote", role="releaser",
            body={"to": "staging", "reason": "over " + " ".join(extra or ("auto",))},
        )  # fmt: skip
        assert status == 200, body
        assert body["stage"] == "staging"
        status, error = client.call("GET", "/api/v1/components", token="lg_nope_nope")
        assert status == 401 and error["error"]["code"] == "unauthenticated"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    return err


def test_without_httptools_and_uvloop_the_server_answers_over_h11(
    project: tuple[Path, dict[str, str]],
) -> None:
    err = serve_and_use(*project, code=WITHOUT_COMPILED)
    assert "(h11, asyncio)" in err.splitlines()[0]


def test_http_h11_runs_the_pure_python_stack_even_when_httptools_is_installed(
    project: tuple[Path, dict[str, str]],
) -> None:
    err = serve_and_use(*project, "--http", "h11", code=None)
    assert "(h11, asyncio)" in err.splitlines()[0]


def test_by_default_the_server_runs_on_httptools_and_uvloop_when_installed(
    project: tuple[Path, dict[str, str]],
) -> None:
    pytest.importorskip("httptools", reason="the server extra's httptools is not installed")
    pytest.importorskip("uvloop", reason="the server extra's uvloop is not installed")
    err = serve_and_use(*project, code=None)
    assert "(httptools, uvloop)" in err.splitlines()[0]


def test_http_httptools_without_it_installed_says_what_to_install(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, _ = project
    done = run_lockgate("serve", "--http", "httptools", cwd=root, env=ENV,
                        python_code=WITHOUT_COMPILED)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'lockgate[server]'" in done.stderr and "--http h11" in done.stderr


def test_a_read_is_answered_while_a_change_waits_for_the_operation_lock(tmp_path: Path) -> None:
    """One thread for reads and one for changes: a promotion waiting for the operation
    lock (held here) occupies the change thread, and a read is answered meanwhile (with
    one queue for both, it would wait until the promotion ends)."""
    root = tmp_path / "p"
    tokens = make_project(root)
    proc, port = start(root, "--threads", "1", env={"LOCKGATE__STATE__LOCK_TIMEOUT": "120"})
    project = Project.open(root, environ=ENV)
    holding, done = threading.Event(), threading.Event()
    promoted: dict[str, tuple[int, Any]] = {}
    client = Api(root, port, tokens)

    def hold() -> None:
        owner = LockOwner(pid=4242, host="elsewhere.invalid", operation="held-by-test")
        with project.state().lock("operation", owner=owner, lease=300, timeout=30):
            holding.set()
            done.wait(120)

    def promote() -> None:
        promoted["answer"] = client.call(
            "POST", "/api/v1/components/alice:etl/promote", role="releaser",
            body={"to": "staging"},
        )  # fmt: skip

    holder, promoter = threading.Thread(target=hold), threading.Thread(target=promote)
    holder.start()
    try:
        assert holding.wait(60)
        promoter.start()
        time.sleep(0.5)  # let the promotion reach its thread (if not, the read proves less)
        status, rows = client.call("GET", "/api/v1/components", role="viewer")
        assert status == 200 and len(rows) == 2
        assert promoted == {}, "the promotion ended before the read: the lock was not held"
    finally:
        done.set()
        holder.join(60)
        promoter.join(120)
        stop(proc)
        project.close()
    status, body = promoted["answer"]
    assert status == 200 and body["changed"] is True, body
