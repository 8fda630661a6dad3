"""`make demo`: lockgate's main job, step by step, in a throwaway project.

Each step prints the command it runs and what lockgate answered; the demo stops with a
non-zero exit at the first step whose exit code is not the one the story expects.

`make demo-team` (``scripts/demo.py --postgres [--pg-server DSN]``) tells the same story
with the project's state and objects in PostgreSQL (the ``postgres`` stores of
plugins/lockgate-postgres), in a database of its own that it drops at the end, and ends
with a second checkout of the project, as another runner's host, sharing the history.
Without a reachable server it says so in one line and exits 2. `make demo` needs no server.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks import Webhook

BIN = Path(sys.executable).parent / "lockgate"
PG_SERVER = "host=127.0.0.1 port=5432 user=postgres"


def say(text: str) -> None:
    print(f"\n== {text}")


def run(*args: str, cwd: Path, expect: int = 0, env: dict[str, str] | None = None) -> str:
    shown = " ".join(shlex.quote(a) for a in args)
    prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
    print(f"$ {prefix}lockgate {shown}", flush=True)
    full_env = {**os.environ, "COLUMNS": "110", "LOCKGATE_ACTOR": "alice", **(env or {})}
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


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read(root: Path, component_id: str) -> str:
    text = (root / "stages" / "production" / component_id / "builder.py").read_text()
    return text.splitlines()[1].strip()


def show_tree(directory: Path) -> None:
    print(f"$ ls -l {directory.name}/")
    for entry in sorted(directory.iterdir()):
        target = str(entry.readlink()) if entry.is_symlink() else ""
        files = sorted(p.name for p in entry.iterdir())
        print(f"  {entry.name} -> {target}")
        print(f"      {', '.join(files)}")


@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A database of the demo's own on ``server`` (libpq, no dbname), dropped at the end;
    one line and exit 2 when there is no server to use."""
    try:
        import lockgate_postgres  # noqa: F401 - the stores the team demo selects
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        sys.exit(f"demo-team: {exc.name} is not installed; run 'make .venv/.installed' first")
    name = f"lockgate_demo_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(f"{server} dbname=postgres", autocommit=True, connect_timeout=5) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        problem = " ".join(str(exc).split())
        print(
            f"demo-team: no PostgreSQL server to use at '{server}' ({problem}); start one "
            "(docs/team.md, 'A development server') or name it: make demo-team PG='host=... "
            "user=...'",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        yield f"{server} dbname={name}"
    finally:
        with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def use_postgres(root: Path, dsn: str) -> None:
    """Select the postgres state and content stores in the project's lockgate.yaml."""
    config = root / "lockgate.yaml"
    text = config.read_text()
    stores = "state:\n  store: postgres\ncontent:\n  store: postgres\n\n"
    settings = f"  postgres:\n    dsn: {json.dumps(dsn)}\n    project: demo\n"
    text = text.replace("plugins:\n  disable: []\n", f"{stores}plugins:\n  disable: []\n{settings}")
    if settings not in text:
        sys.exit("demo-team: lockgate init's starter configuration changed; update the demo")
    config.write_text(text)


class Receiver:
    """A local webhook receiver started by the demo: verifies every signature with the
    standardwebhooks library and keeps the events it received."""

    def __init__(self, secret: str) -> None:
        verifier = Webhook(secret)
        self.received: list[dict[str, object]] = []
        self.rejected = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    owner.received.append(verifier.verify(body, dict(self.headers.items())))
                    self.send_response(204)
                except Exception:
                    owner.rejected += 1
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lockgate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true", help="the story on PostgreSQL")
    parser.add_argument("--pg-server", default=PG_SERVER, help="libpq string, no dbname")
    args = parser.parse_args()
    if not args.postgres:
        story(None)
        return
    with postgres_database(args.pg_server) as dsn:
        story(dsn)


def story(dsn: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="lockgate-demo-") as tmp:
        root = Path(tmp) / "demo"
        root.mkdir()
        say("Create a project: lockgate.yaml, workspaces/, .lockgate/")
        run("init", cwd=root)
        run("init", cwd=root)  # idempotent: keeps everything
        if dsn is not None:
            say("The team's set-up: state and objects in PostgreSQL (plugins.postgres)")
            use_postgres(root, dsn)
            run("config", "validate", cwd=root)

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

        say("Production needs one approval from someone other than the author")
        say("(this demo plays three people on one machine, so it allows LOCKGATE_ACTOR)")
        config.write_text(
            "identity:\n  allow_override: true\n"
            + original
            + "\n  approvals:\n    stages:\n      production:\n        required: 1\n"
        )
        run("config", "validate", cwd=root)

        # Both the sqlite and the postgres state stores keep the outbox (EventDeliveries).
        say("Every event goes to a webhook (a local receiver this demo started), signed")
        # The signing secret lives in the environment only; the config names the variable.
        os.environ["DEMO_WEBHOOK_SECRET"] = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        receiver = Receiver(os.environ["DEMO_WEBHOOK_SECRET"])
        events = (
            "events:\n  notifiers:\n    - kind: webhook\n"
            f"      options: {{url: '{receiver.url}', secret_env: DEMO_WEBHOOK_SECRET}}\n"
        )
        config.write_text(config.read_text() + events)
        print("$ cat >> lockgate.yaml")
        print("\n".join("  " + line for line in events.splitlines()))
        run("config", "validate", cwd=root)

        say("Two developers' workspaces: alice and bob (builders, scripts, a workflows pack)")
        files = {
            "alice/builders/preprocess/builder.py": "def build(step):\n    return step\n",
            "alice/builders/preprocess/component.yaml": "version: '1.0'\nowners: [alice]\n",
            "alice/scripts/etl/run.sh": "#!/bin/sh\necho extracting\n",
            "alice/scripts/etl/__pycache__/junk.pyc": "ignored",
            "bob/builders/train/train.py": "def train(data:\n    return data\n",
            "bob/workflows/nightly/nightly.yaml": (
                "name: nightly\nversion: 1\ntasks:\n"
                "  - {name: prep, action: preprocess}\n"
                "  - {name: fit, action: train, needs: [prep]}\n"
            ),
            "bob/workflows/nightly/component.yaml": (
                "owners: [bob]\ndepends_on: [preprocess, train]\n"
            ),
        }
        for rel, text in files.items():
            path = root / "workspaces" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (root / "workspaces/alice/scripts/etl/run.sh").chmod(0o755)
        run("ls", cwd=root)

        say("Stage everything that changed: each component becomes an immutable revision")
        run("sync", "alice", cwd=root)
        run("sync", "bob", cwd=root, env={"LOCKGATE_ACTOR": "bob"})
        run("sync", cwd=root)  # nothing changed: nothing staged

        say("Validate: bob's builder has a syntax error, reported with file:line (exit 1)")
        run("validate", cwd=root, expect=1)

        say("bob fixes it; the new revision validates (cached results for the others)")
        (root / "workspaces/bob/builders/train/train.py").write_text(
            "def train(data):\n    return data\n"
        )
        run("sync", "bob", cwd=root, env={"LOCKGATE_ACTOR": "bob"})
        run("validate", cwd=root)

        say("Unsafe content is refused, naming the path (exit 2), and nothing is written")
        (root / "workspaces/alice/scripts/etl/leak").symlink_to("../../../../../etc/passwd")
        run("stage", "alice:etl", cwd=root, expect=2)
        (root / "workspaces/alice/scripts/etl/leak").unlink()

        say("Promote everything one rung at a time: staging, then integration")
        for ref in ("alice:preprocess", "alice:etl", "bob:train", "bob:nightly"):
            run("promote", ref, "--to", "staging", cwd=root)
        run("promote", "preprocess", "--to", "integration", "--dry-run", cwd=root)
        for ref in ("preprocess", "etl", "train", "nightly"):
            run("promote", ref, "--to", "integration", cwd=root)

        say("Production is gated on an approval; the author cannot give it (exit 1)")
        run("promote", "preprocess", "--to", "production", cwd=root, expect=1)
        run("approve", "alice:preprocess", cwd=root, expect=1, env={"LOCKGATE_ACTOR": "alice"})
        run(
            "approve",
            "alice:preprocess",
            "--comment",
            "looks good",
            cwd=root,
            env={"LOCKGATE_ACTOR": "carol"},
        )
        run("promote", "preprocess", "--to", "production", cwd=root)
        show_tree(root / "stages" / "production")

        say("alice ships a change: edit, stage, climb the ladder again")
        builder = root / "workspaces/alice/builders/preprocess/builder.py"
        builder.write_text("def build(step):\n    return step.strip()\n")
        run("diff", "alice:preprocess", "--patch", cwd=root)
        run("stage", "alice:preprocess", cwd=root)
        before = now_utc()
        time.sleep(0.05)
        run("promote", "preprocess", cwd=root)
        run("promote", "preprocess", cwd=root)
        run("approve", "alice:preprocess", cwd=root, env={"LOCKGATE_ACTOR": "carol"})
        run("promote", "preprocess", cwd=root, env={"LOCKGATE_ACTOR": "alice"})
        print("  production/preprocess/builder.py:", read(root, "preprocess"))

        say("Something is wrong in production: roll back instantly (no copy), with a reason")
        run("rollback", "preprocess", "--reason", "strip() breaks padded ids", cwd=root)
        print("  production/preprocess/builder.py:", read(root, "preprocess"))

        say("What was live in production before the change, and who put it there?")
        run("history", "--stage", "production", "--at", before, cwd=root)
        run("history", "alice:preprocess", cwd=root)

        say("A pipeline: etl, train and nightly reach production together, or not at all")
        (root / "pipelines").mkdir()
        (root / "pipelines" / "release.yaml").write_text(
            "components: [alice:etl, bob:train, bob:nightly]\noptions:\n  fail_fast: false\n"
        )
        print("$ cat pipelines/release.yaml")
        text = (root / "pipelines" / "release.yaml").read_text()
        print("\n".join("  " + line for line in text.splitlines()))
        # nightly's component.yaml depends on train: it comes one level later
        run("pipeline", "plan", "release", "--to", "production", cwd=root)

        say("No member is approved for production: the whole run is refused (exit 1)")
        run("pipeline", "promote", "release", "--to", "production", cwd=root, expect=1)

        say("carol approves the three; the run goes through, in dependency order")
        for ref in ("alice:etl", "bob:train", "bob:nightly"):
            run("approve", ref, cwd=root, env={"LOCKGATE_ACTOR": "carol"})
        run(
            "pipeline",
            "promote",
            "release",
            "--to",
            "production",
            "--reason",
            "release 1",
            cwd=root,
        )
        run("pipeline", "show", "release", cwd=root)

        say("Roll the whole pipeline back in one step")
        run("pipeline", "rollback", "release", "--reason", "not tonight", cwd=root)
        show_tree(root / "stages" / "production")

        say("The same from Python: the integration manager API")
        api = (
            "from lockgate import WorkspaceManager, WorkspaceIntegrationManager\n"
            "m = WorkspaceIntegrationManager(WorkspaceManager('.'))\n"
            "r = m.validate_integration_readiness(['alice:etl', 'bob:train'])\n"
            "print('overall_ready:', r['overall_ready'])\n"
            "s = m.get_statistics()['integration_operations']\n"
            "print('promotion success rate:', s['promotion_success_rate'])\n"
        )
        print("$ python -c " + shlex.quote(api))
        out = subprocess.run(
            [sys.executable, "-c", api], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        print("\n".join("  " + line for line in out.splitlines()))

        say("Reports, integrity and the hash-chained audit log")
        run("summary", cwd=root)
        run("stats", cwd=root)
        run("verify", cwd=root)
        run("audit", "verify", cwd=root)

        say("What the webhook received: CloudEvents, every signature verified")
        types = Counter(str(e["type"]) for e in receiver.received)
        print(f"  {len(receiver.received)} events, {receiver.rejected} rejected signatures")
        for name, n in sorted(types.items()):
            print(f"  {n:3d}  {name}")
        last = receiver.received[-1]
        shown = {k: last.get(k) for k in ("id", "type", "subject")}
        print("  the last one:", json.dumps(shown))
        run("events", "ls", "--dead", cwd=root)
        receiver.server.shutdown()

        say("Metrics, contributed by plugins and attributed to each")
        run("metrics", cwd=root)
        run("metrics", "--format", "prometheus", cwd=root)
        if dsn is not None:
            another_host(root, Path(tmp) / "host-b")
        else:  # the postgres store keeps no tokens: the server needs the default
            serve_for_a_moment(root)
    print("\ndemo: done")


def another_host(root: Path, other: Path) -> None:
    """A second checkout of the project, as another runner's host: same database, same
    objects, its own stage directories."""
    say("Another runner's host: a second checkout sharing the history, lock and objects")
    other.mkdir()
    (other / "lockgate.yaml").write_text((root / "lockgate.yaml").read_text())
    run("history", "alice:preprocess", cwd=other)
    run("promote", "etl", "--to", "staging", cwd=other)  # already current: nothing to do
    run("rollback", "etl", "--stage", "staging", "--to", "none", "--reason", "demo", cwd=other)
    run("unlock", cwd=other)
    run("log", "-n", "3", cwd=root)
    run("audit", "verify", cwd=root)


def serve_for_a_moment(root: Path) -> None:
    """Start ``lockgate serve`` on 127.0.0.1, call it with a token, stop it."""
    import http.client
    import json
    import socket

    say("The HTTP API, for a moment on 127.0.0.1: a token for a release bot")
    token = run("token", "create", "--actor", "release-bot", "--role", "releaser", cwd=root).strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print(f"$ lockgate serve --port {port} &")
    env = {**os.environ, "LOCKGATE_ACTOR": ""}
    server = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def call(method: str, path: str, body: dict[str, str] | None = None) -> object:
        print(f"$ curl -X {method} -H 'Authorization: Bearer lg_…' http://127.0.0.1:{port}{path}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body or {}), headers)
        answer = conn.getresponse()
        data = json.loads(answer.read())
        conn.close()
        print(f"  {answer.status} {json.dumps(data)[:300]}")
        return data

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("demo: the server did not start", file=sys.stderr)
                    sys.exit(1)
                time.sleep(0.1)
        call("GET", "/ready")
        moved = call("POST", "/api/v1/components/alice:etl/promote", {"to": "production"})
        if not isinstance(moved, dict) or moved.get("actor") != "release-bot":
            print("demo: the promotion through the API did not happen", file=sys.stderr)
            sys.exit(1)
        run("log", "--action", "promote", "--limit", "1", cwd=root)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
