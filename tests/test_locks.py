"""The kernel asks the state store for its locks: with the ``memory`` store the locks are
its own (no lock file), a holder it knows blocks a promote and is named, and a store
without locks is one clear error. (The ``sqlite`` store's ``flock`` against real
processes: tests/test_unlock.py and tests/test_promotion.py.)"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate, write_distribution
from lockgate.errors import LockedError
from lockgate.operations.gc import collect_garbage
from lockgate.operations.init import init_project
from lockgate.operations.promote import Promoter
from lockgate.operations.stage import Stager
from lockgate.plugin import LockOwner
from lockgate.testing import open_project

MEMORY = {**ENV, "LOCKGATE__STATE__STORE": "memory"}


def make_project(root: Path) -> None:
    init_project(root)
    component = root / "workspaces" / "alice" / "scripts" / "etl"
    component.mkdir(parents=True)
    (component / "run.py").write_text("print('etl')\n")


def test_with_the_memory_store_no_operation_takes_a_lock_file(tmp_path: Path) -> None:
    """Before, the kernel took its own ``flock`` on ``.lockgate/*.lock`` whatever the
    state store; now the store's locks are used, and the memory store's are in memory."""
    make_project(tmp_path)
    project = open_project(tmp_path, environ=MEMORY)
    Stager(project).stage("alice:etl")
    Promoter(project).promote("alice:etl")
    collect_garbage(project, grace=0)
    assert sorted(p.name for p in (tmp_path / ".lockgate").glob("*.lock")) == []


def test_a_holder_of_the_stores_lock_blocks_a_promote_which_names_it(tmp_path: Path) -> None:
    make_project(tmp_path)
    project = open_project(tmp_path, environ={**MEMORY, "LOCKGATE__STATE__LOCK_TIMEOUT": "0.2"})
    revision = Stager(project).stage("alice:etl").revision
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        owner = LockOwner(pid=4242, host="elsewhere.invalid", operation="held-by-test")
        with project.state().lock("operation", owner=owner, lease=300, timeout=30):
            holding.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(60)
        with pytest.raises(LockedError) as blocked:
            Promoter(project).promote("alice:etl")
        assert "pid 4242 on elsewhere.invalid (held-by-test since" in blocked.value.message
        assert project.state().pointer("staging", "etl") is None
    finally:
        done.set()
        holder.join(60)
    assert Promoter(project).promote("alice:etl").revision == revision


LOCKLESS = """
from lockgate.plugin import hookimpl
from lockgate.testing import MemoryStateStore


class Lockless:
    '''A state store written before locks were the state store's job.'''

    def __init__(self):
        self._inner = MemoryStateStore()

    def __getattr__(self, name):
        if name in ("lock", "holder", "break_lock"):
            raise AttributeError(name)
        return getattr(self._inner, name)


@hookimpl
def register_state_stores(register):
    register("lockless", lambda context: Lockless())
"""


@pytest.mark.parametrize("command", [("stage", "alice:etl"), ("unlock",)])
def test_a_state_store_without_locks_is_one_clear_error(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    root, site = tmp_path / "project", tmp_path / "site"
    make_project(root)
    write_distribution(site, "lockgate-lockless", "1.0", {"lockless": "lg_lockless"}, {
        "lg_lockless": LOCKLESS
    })  # fmt: skip
    env = {**ENV, "LOCKGATE__STATE__STORE": "lockless"}
    done = run_lockgate("-C", str(root), *command, cwd=root, site=site, env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "'lockless' provides no locks" in line and "Traceback" not in done.stderr
