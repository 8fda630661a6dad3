"""`make demo`: lockgate's main job, step by step, in a throwaway project.

Each step prints the command it runs and what lockgate answered; the demo stops with a
non-zero exit at the first step whose exit code is not the one the story expects.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent / "lockgate"


def say(text: str) -> None:
    print(f"\n== {text}")


def run(*args: str, cwd: Path, expect: int = 0, env: dict[str, str] | None = None) -> str:
    shown = " ".join(shlex.quote(a) for a in args)
    prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
    print(f"$ {prefix}lockgate {shown}", flush=True)
    full_env = {**os.environ, "COLUMNS": "110", **(env or {})}
    proc = subprocess.run(
        [str(BIN), *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print("\n".join("  " + line.rstrip() for line in out.splitlines()))
    if proc.returncode != expect:
        print(f"demo: expected exit {expect}, got {proc.returncode}", file=sys.stderr)
        sys.exit(1)
    return proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lockgate-demo-") as tmp:
        root = Path(tmp) / "demo"
        root.mkdir()
        say("Create a project: lockgate.yaml, workspaces/, .lockgate/")
        run("init", cwd=root)
        run("init", cwd=root)  # idempotent: keeps everything

        say("Which plugins are there, and what do they do?")
        run("plugins", cwd=root)

        say("The resolved configuration, and where every value came from")
        run("config", "show", cwd=root, env={"LOCKGATE__STATE__LOCK_TIMEOUT": "30"})

        say("A misspelled key is caught with its file, line and a suggestion (exit 2)")
        config = root / "lockgate.yaml"
        original = config.read_text()
        config.write_text(original.replace("plugins:", "plugnis:"))
        run("config", "validate", cwd=root, expect=2)
        config.write_text(original)
        run("config", "validate", cwd=root)

        say("Two developers' workspaces: alice and bob")
        files = {
            "alice/builders/preprocess/builder.py": "def build(step):\n    return step\n",
            "alice/builders/preprocess/component.yaml": "version: '1.0'\nowners: [alice]\n",
            "alice/scripts/etl/run.sh": "#!/bin/sh\necho extracting\n",
            "alice/scripts/etl/__pycache__/junk.pyc": "ignored",
            "bob/workflows/nightly/train.yaml": "name: train\nversion: 1\ntasks: []\n",
            "bob/workflows/nightly/component.yaml": "owners: [bob]\ndepends_on: [alice:etl]\n",
        }
        for rel, text in files.items():
            path = root / "workspaces" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (root / "workspaces/alice/scripts/etl/run.sh").chmod(0o755)
        run("ls", cwd=root)

        say("Stage everything that changed: each component becomes an immutable revision")
        run("sync", cwd=root)
        run("sync", cwd=root)  # nothing changed: nothing staged

        say("alice edits a file; ls and diff show it, stage snapshots it")
        builder = root / "workspaces/alice/builders/preprocess/builder.py"
        builder.write_text("def build(step):\n    return step.strip()\n")
        run("ls", "alice", cwd=root)
        run("diff", "alice:preprocess", "--patch", cwd=root)
        run("stage", "alice:preprocess", cwd=root)
        run("stage", "alice:preprocess", cwd=root)  # unchanged: no new revision

        say("Unsafe content is refused, naming the path (exit 2), and nothing is written")
        (root / "workspaces/alice/scripts/etl/leak").symlink_to("../../../../../etc/passwd")
        run("stage", "alice:etl", cwd=root, expect=2)
        (root / "workspaces/alice/scripts/etl/leak").unlink()

        say("Every change is in the hash-chained audit log")
        run("history", "alice:preprocess", cwd=root)
        run("summary", cwd=root)
        run("stats", cwd=root)
        run("audit", "verify", cwd=root)

        say("Metrics, contributed by plugins and attributed to each")
        run("metrics", cwd=root)
    print("\ndemo: done")


if __name__ == "__main__":
    main()
