"""Contention: several real processes promote and roll back two components of one project
on the ``postgres`` stores at once, as runners sharing a project do.

Each worker process runs lockgate commands in a loop (promote a random revision, or roll
back to the previous one), each command opening the project as a runner would. The
operation lock (an advisory lock) serialises them. Afterwards: every command either
changed the pointer, or was refused cleanly (one line, no traceback); the pointer history
of each component is one unbroken line (generations 1..N, each move starting from the
revision the one before left, exactly one row per reported change, so no update was
lost); the audit chain verifies and the deployed files match the pointers.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockgate.testing import run_cli

from .postgres_testkit import open_database
from .test_postgres_cli import ok, write_component

WORKERS = 6
ROUNDS = 6
COMPONENTS = ("etl", "api")

WORKER = r"""
import json, random, sys, time
from pathlib import Path
from lockgate.testing import run_cli

root, number, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
revisions = json.loads(sys.argv[4])
rounds = int(sys.argv[5])
rng = random.Random(number)
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("the start signal never came")
    time.sleep(0.01)
results = []
for i in range(rounds):
    component = rng.choice(sorted(revisions))
    if rng.random() < 0.6:
        args = ["promote", f"alice:{component}", "--to", "staging",
                "--rev", rng.choice(revisions[component])]
    else:
        args = ["rollback", f"alice:{component}", "--stage", "staging", "--to", "previous",
                "--reason", f"worker {number} round {i}"]
    result = run_cli("--json", "--actor", f"runner{number}", *args, project=root)
    results.append({"args": args, "exit": result.exit_code, "stdout": result.stdout,
                    "stderr": result.stderr})
print(json.dumps(results))
"""


def _stage_revisions(root: Path, component: str) -> list[str]:
    revisions = []
    for version in (1, 2, 3):
        folder = root / "workspaces" / "alice" / "scripts" / component
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "main.py").write_text(f"print('{component} v{version}')\n")
        revisions.append(ok("stage", f"alice:{component}", project=root)["revision"])
    return revisions


@pytest.mark.slow
def test_runners_racing_on_one_project_lose_no_update(
    lockgate_project: Path, pg_dsn: str, project_key: str, tmp_path: Path
) -> None:
    root = lockgate_project
    (root / "lockgate.yaml").write_text(
        "project:\n  name: contended\n"
        "state:\n  store: postgres\n  lock_timeout: 300\ncontent:\n  store: postgres\n"
        "stages:\n  staging: {}\n  production: {}\n"
        f"plugins:\n  postgres:\n    dsn: {json.dumps(pg_dsn)}\n    project: {project_key}\n"
    )
    write_component(root, "print('placeholder')\n")
    revisions = {c: _stage_revisions(root, c) for c in COMPONENTS}
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(root),
                str(n),
                str(go),
                json.dumps(revisions),
                str(ROUNDS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(WORKERS)
    ]
    time.sleep(0.5)
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        assert "Traceback" not in err, err
        results += json.loads(out)
    assert len(results) == WORKERS * ROUNDS

    changed: dict[str, int] = dict.fromkeys(COMPONENTS, 0)
    for result in results:
        assert "Traceback" not in result["stderr"], result
        if result["exit"] == 0:
            done = json.loads(result["stdout"])
            changed[done["component_id"]] += bool(done["changed"])
        else:  # refused cleanly: nothing to roll back to, or already current
            assert result["exit"] in (1, 2, 4), result
            assert len(result["stderr"].strip().splitlines()) == 1, result
    assert sum(changed.values()) > 0
    refused = sum(r["exit"] != 0 for r in results)
    print(f"{len(results)} commands: {changed} pointer moves, {refused} refused cleanly")

    state = open_database(pg_dsn, project_key)
    try:
        with state.conn() as conn:
            for component in COMPONENTS:
                rows = conn.execute(
                    "SELECT revision, previous_revision, generation FROM pointer_history "
                    "WHERE stage = 'staging' AND component_id = %s ORDER BY seq",
                    (component,),
                ).fetchall()
                assert [r["generation"] for r in rows] == list(range(1, len(rows) + 1))
                assert len(rows) == changed[component], (component, rows, changed)
                for before, after in itertools.pairwise(rows):
                    assert after["previous_revision"] == before["revision"], rows
                pointer = conn.execute(
                    "SELECT revision, generation FROM pointers WHERE stage = 'staging' "
                    "AND component_id = %s",
                    (component,),
                ).fetchone()
                if rows:
                    assert pointer == {
                        "revision": rows[-1]["revision"],
                        "generation": len(rows),
                    }
            moves = conn.execute(
                "SELECT count(*) AS n FROM events WHERE action IN ('promote', 'rollback') "
                "AND outcome = 'ok' AND stage = 'staging'"
            ).fetchone()
            assert moves == {"n": sum(changed.values())}
    finally:
        state.close()
    ok("audit", "verify", project=root)
    verified = run_cli("verify", project=root)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
