"""A project on the ``postgres`` stores, through the command line as its users run it:
stage, promote, roll back, verify; the settings shown without the password; the schema
upgraded only when asked."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psycopg
import pytest
from standardwebhooks import Webhook

from lockgate.testing import run_cli

from .postgres_testkit import open_database

SECRET = "s3cr3t-pw"


def write_config(root: Path, dsn: str, project: str, *, content: str = "postgres") -> None:
    (root / "lockgate.yaml").write_text(
        "project:\n  name: demo\n"
        f"state:\n  store: postgres\ncontent:\n  store: {content}\n"
        "stages:\n  staging: {}\n  production: {}\n"
        f"plugins:\n  postgres:\n    dsn: {json.dumps(dsn)}\n    project: {project}\n"
    )


def write_component(root: Path, text: str) -> None:
    component = root / "workspaces" / "alice" / "scripts" / "etl"
    component.mkdir(parents=True, exist_ok=True)
    (component / "main.py").write_text(text)


@pytest.fixture
def project(lockgate_project: Path, pg_dsn: str, project_key: str) -> Path:
    write_config(lockgate_project, f"{pg_dsn} password={SECRET}", project_key)
    write_component(lockgate_project, "print('v1')\n")
    return lockgate_project


def ok(*args: str, project: Path) -> dict:
    result = run_cli("--json", *args, project=project)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def test_stage_promote_rollback_verify_on_postgres(project: Path) -> None:
    first = ok("stage", "alice:etl", project=project)["revision"]
    ok("promote", "alice:etl", "--to", "staging", project=project)
    write_component(project, "print('v2')\n")
    second = ok("stage", "alice:etl", project=project)["revision"]
    ok("promote", "alice:etl", "--to", "staging", project=project)
    deployed = project / "stages" / "staging" / "etl" / "main.py"
    assert deployed.read_text() == "print('v2')\n"
    ok("rollback", "alice:etl", "--stage", "staging", "--reason", "v2 broke", project=project)
    assert deployed.read_text() == "print('v1')\n"
    assert first != second
    ok("audit", "verify", project=project)
    ok("verify", project=project)
    assert not (project / ".lockgate" / "state.db").exists()  # nothing went to SQLite
    assert not (project / ".lockgate" / "objects").exists()  # nor to the local store


def test_config_show_never_shows_the_password(project: Path) -> None:
    for args in (("config", "show"), ("--json", "config", "show")):
        result = run_cli(*args, project=project)
        assert result.exit_code == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "password=***" in result.stdout


def test_the_project_key_defaults_to_the_project_name(lockgate_project: Path, pg_dsn: str) -> None:
    (lockgate_project / "lockgate.yaml").write_text(
        "project:\n  name: named-project\nstate:\n  store: postgres\n"
        f"plugins:\n  postgres:\n    dsn: {json.dumps(pg_dsn)}\n"
    )
    write_component(lockgate_project, "print('v1')\n")
    ok("stage", "alice:etl", project=lockgate_project)
    db = open_database(pg_dsn, "named-project")
    try:
        with db.conn() as conn:
            rows = conn.execute("SELECT component FROM components").fetchall()
    finally:
        db.close()
    assert rows == [{"component": "alice:etl"}]


def test_an_older_schema_is_upgraded_only_when_asked(
    lockgate_project: Path, pg_server: str
) -> None:
    """A database at version 1 (state only): opening it is refused with the command to
    run; ``lockgate postgres upgrade`` takes it to the latest; then it works."""
    from lockgate_postgres.schema import LATEST, MIGRATIONS, TABLES, _create_role, _protect

    name = f"lockgate_upgrade_{lockgate_project.parent.name[-8:].replace('-', '_')}"
    with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{pg_server} dbname={name}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("CREATE SCHEMA lockgate")
            conn.execute("CREATE TABLE lockgate.schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO lockgate.schema_version VALUES (1)")
            _create_role(conn, "lockgate_app")
            conn.execute(MIGRATIONS[0])
            for table in TABLES[1]:
                _protect(conn, table, "lockgate_app")
        write_config(lockgate_project, dsn, "upgrading")
        write_component(lockgate_project, "print('v1')\n")
        refused = run_cli("stage", "alice:etl", project=lockgate_project)
        assert refused.exit_code == 2, refused.stderr
        assert "version 1" in refused.stderr and "lockgate postgres upgrade" in refused.stderr
        upgraded = run_cli("postgres", "upgrade", project=lockgate_project)
        assert upgraded.exit_code == 0, upgraded.stderr
        assert f"version 1 -> {LATEST}" in upgraded.stdout
        ok("stage", "alice:etl", project=lockgate_project)
    finally:
        with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_an_empty_dsn_takes_libpqs_environment(
    lockgate_project: Path, pg_dsn: str, project_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dsn`` left empty: PGHOST, PGPORT, PGUSER, PGDATABASE name the server."""
    parts = dict(p.split("=", 1) for p in pg_dsn.split())
    for key, variable in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("dbname", "PGDATABASE"),
    ):
        monkeypatch.setenv(variable, parts[key])
    write_config(lockgate_project, "", project_key)
    write_component(lockgate_project, "print('v1')\n")
    ok("stage", "alice:etl", project=lockgate_project)
    shown = ok("config", "show", project=lockgate_project)["settings"]
    assert [r["value"] for r in shown if r["key"] == "plugins.postgres.dsn"] == [""]


HOOK_SECRET = "whsec_" + base64.b64encode(b"postgres-outbox-signing-key-0123").decode()


def test_a_webhook_receives_every_event_of_a_postgres_project(
    project: Path, pg_dsn: str, project_key: str
) -> None:
    """The outbox's delivery state in PostgreSQL (``EventDeliveries``): each command
    delivers after its commit to a real receiver verifying the signatures, ``events ls``
    reads the delivery rows back, and a receiver that is down leaves them pending."""
    verifier, received = Webhook(HOOK_SECRET), []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(verifier.verify(body, dict(self.headers)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with (project / "lockgate.yaml").open("a") as config:
        config.write(
            "events:\n  notifiers:\n    - kind: webhook\n      options: {url: "
            f"'http://127.0.0.1:{server.server_address[1]}/hook', secret_env: HOOK_SECRET}}\n"
        )
    env = {"HOOK_SECRET": HOOK_SECRET}
    try:
        for args in (("stage", "alice:etl"), ("promote", "alice:etl", "--to", "staging")):
            result = run_cli("--json", *args, project=project, env=env)
            assert result.exit_code == 0, result.stderr
    finally:
        server.shutdown()
        server.server_close()
    types = [e["type"] for e in received]
    assert types[0] == "dev.lockgate.component.staged"
    assert types[-1] == "dev.lockgate.component.promoted"
    listed = run_cli("--json", "events", "ls", project=project, env=env)
    rows = json.loads(listed.stdout)["deliveries"]
    assert [r["id"] for r in rows] == [e["id"] for e in received]
    assert len(rows) == len(received) and {r["state"] for r in rows} == {"delivered"}
    # The receiver is gone now: the next change stays pending, in the database.
    write_component(project, "print('v2')\n")
    assert run_cli("stage", "alice:etl", project=project, env=env).exit_code == 0
    db = open_database(pg_dsn, project_key)
    try:
        with db.conn() as conn:
            found = conn.execute("SELECT state, attempts FROM deliveries ORDER BY seq").fetchall()
    finally:
        db.close()
    assert found[-1] == {"state": "pending", "attempts": 1}
    assert HOOK_SECRET not in listed.stdout
