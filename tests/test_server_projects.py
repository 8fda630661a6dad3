"""The server keeps the projects its requests opened (``lockgate.server.projects``): an
idle one goes to the next request, cleared of what the last one set, and reopened when
``lockgate.yaml`` changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_lockgate
from lockgate.contracts.identity import Identity
from lockgate.core.project import Project
from lockgate.errors import RefusedError
from lockgate.server.projects import ProjectPool
from test_server import ENV, make_project, start, stop
from test_server import Api as Client


class Probe:
    """Something a project keeps (as it keeps its state store): closed with it."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def probe(project: Project) -> Probe:
    return project.kept("test-probe", Probe)


@pytest.fixture
def pool(tmp_path: Path) -> ProjectPool:
    root = tmp_path / "p"
    root.mkdir()
    assert run_lockgate("init", cwd=root, env=ENV).returncode == 0
    return ProjectPool(root, lambda: Project.open(root, environ=ENV), keep=2)


def test_an_idle_project_goes_to_the_next_request_cleared(pool: ProjectPool) -> None:
    with pool.project() as first:
        first.authenticated = Identity("ada", "token:t1")
        first.before_change = lambda operation: None
        kept = probe(first)
    with pool.project() as second:
        assert second is first
        assert second.authenticated is None and second.before_change is None
        assert second.actor != "ada"
    assert not kept.closed


def test_an_edited_configuration_opens_a_new_project(pool: ProjectPool) -> None:
    with pool.project() as first:
        kept = probe(first)
    config = pool.root / "lockgate.yaml"
    config.write_text(config.read_text().replace('name: "p"', 'name: "renamed"'))
    with pool.project() as second:
        assert second is not first
        assert second.name == "renamed"
    assert kept.closed


def test_an_unexpected_error_closes_the_project_and_a_refusal_keeps_it(
    pool: ProjectPool,
) -> None:
    with pytest.raises(RefusedError), pool.project() as refused:
        kept = probe(refused)
        raise RefusedError("not now")
    assert not kept.closed
    with pytest.raises(ZeroDivisionError), pool.project() as broken:
        assert broken is refused
        _ = 1 / 0
    assert kept.closed
    with pool.project() as fresh:
        assert fresh is not refused


def test_at_most_keep_projects_are_idle_and_close_closes_them(pool: ProjectPool) -> None:
    taken = [pool.take() for _ in range(3)]
    probes = [probe(project) for _, project in taken]
    for stamp, project in taken:
        pool.give(stamp, project)
    assert [p.closed for p in probes] == [False, False, True]
    pool.close()
    assert all(p.closed for p in probes)
    stamp, late = pool.take()
    late_probe = probe(late)
    pool.give(stamp, late)  # given back after close: closed, not kept
    assert late_probe.closed


def test_a_running_server_reads_an_edited_configuration_at_the_next_request(
    tmp_path: Path,
) -> None:
    root = tmp_path / "p"
    tokens = make_project(root)
    proc, port = start(root)
    try:
        client = Client(root, port, tokens)
        for _ in range(3):  # several requests, so projects are kept
            status, stages = client.call("GET", "/api/v1/stages", role="viewer")
            assert status == 200
            assert [s["description"] for s in stages] == [None, None, None]
        config = root / "lockgate.yaml"
        config.write_text(
            config.read_text() + "stages:\n  staging: {description: first rung}\n"
            "  integration: {}\n  production: {}\n"
        )
        status, stages = client.call("GET", "/api/v1/stages", role="viewer")
        assert status == 200, stages
        assert stages[0]["description"] == "first rung"
    finally:
        stop(proc)
