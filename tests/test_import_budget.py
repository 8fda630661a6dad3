"""The everyday commands import only what they use.

Each hot command runs in a real subprocess under ``python -X importtime`` on a small real
project, and fails when it imports a module of :data:`DENIED`: the one list of what a
command must not pay for. Why each entry is there:

- the watcher (``lockgate watch``) and watchdog: only ``watch`` observes a workspace;
- the server package and its ASGI stack: only ``lockgate serve`` serves;
- ``http.client`` and ``ssl``: only a webhook delivery or a remote store talks HTTP;
- the events machinery (the dispatcher, the notifiers, the webhook signer): no notifier
  is configured in the test project, so nothing is delivered;
- the broker and PostgreSQL distributions: the project uses the embedded stores;
- ``rich``: the subprocess's output is not a terminal, so a table is written plainly
  (``lockgate.cli.output``; rich draws only what it would fold or measure);
- attrs during ``--version``: it defines no record (``AppContext`` is a plain class);
- the validators: ``stage``, ``sync``, ``ls`` and ``--version`` run no gate. ``limits``
  is the exception for staging: its settings hold the staging caps (``staging_max_*``)
  that ``stage`` and ``sync`` enforce, so its module is imported to read them; and
  ``approvals`` is imported when an actor is claimed (``LOCKGATE_ACTOR``, ``--actor``),
  to know whether a stage requires approvals (the commands here claim none).

The modules are read twice: from ``-X importtime``'s report (the import statement's
machinery) and from ``sys.modules`` when the process exits (which also holds what
``importlib.import_module`` imported, which ``-X importtime`` does not report).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_lockgate

# Modules no hot command imports (a name covers its submodules).
NEVER = (
    "watchdog",
    "lockgate.builtin_plugins.watcher",
    "lockgate.server",
    "starlette",
    "uvicorn",
    "http.client",
    "ssl",
    "lockgate.operations.events",
    "lockgate.builtin_plugins.log_notifier",
    "lockgate.builtin_plugins.webhook_notifier",
    "standardwebhooks",
    "lockgate_postgres",
    "psycopg",
    "lockgate_redis",
    "lockgate_nats",
    "lockgate_amqp",
    "lockgate_tarball",
    "rich",
)
VALIDATORS = tuple(
    f"lockgate.builtin_plugins.validators.{name}"
    for name in (
        "approvals",
        "conflicts",
        "dependencies",
        "manifest",
        "secrets",
        "syntax",
        "workflows",
    )
)
# Command -> what it must not import, beyond NEVER.
DENIED: dict[str, tuple[str, ...]] = {
    "--version": (
        *VALIDATORS,
        "lockgate.builtin_plugins",
        "lockgate.core",
        "yaml",
        "pluggy",
        "attr",
        "attrs",
    ),
    "stage": VALIDATORS,
    "stage-unchanged": VALIDATORS,
    "sync": VALIDATORS,
    "ls": VALIDATORS,
    "promote": (),
    "rollback": (),
}

# What runs the command: records sys.modules at exit in the file named by argv[1].
RUNNER = """
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "lockgate"
from lockgate.cli.launch import main
main()
"""


def imported(args: list[str], cwd: Path, out: Path) -> tuple[set[str], dict[str, int], str]:
    """Modules the command ``lockgate args`` imported, each one's cumulative
    microseconds (``-X importtime``), and its output."""
    proc = run_lockgate(
        str(out),
        *args,
        cwd=cwd,
        python_code=RUNNER,
        # No LOCKGATE_ACTOR: claiming an actor reads the approvals plugin's settings
        # (whether a stage requires approvals), so it imports that validator.
        env={"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"},
    )
    # run_lockgate runs `python -c`: -X importtime goes through the environment.
    assert proc.returncode == 0, proc.stderr
    modules = set(out.read_text().split())
    cumulative: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cum, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if cum.isdigit():
                cumulative[name] = int(cum)
                modules.add(name)
    return modules, cumulative, proc.stdout


def offenders(modules: set[str], denied: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == d or m.startswith(d + ".") for d in denied))


def hello_project(root: Path) -> Path:
    """A new project at ``root`` with one component, ``alice:hello``; its directory."""
    root.mkdir(exist_ok=True)
    assert run_lockgate("init", cwd=root).returncode == 0
    component = root / "workspaces" / "alice" / "scripts" / "hello"
    component.mkdir(parents=True)
    (component / "run.py").write_text("print('hello')\n")
    return component


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("budget")
    hello_project(root)
    return root


def test_the_deny_list_names_real_modules() -> None:
    """A typo in the list would deny nothing: every lockgate entry must exist."""
    import importlib.util

    for name in {*NEVER, *VALIDATORS}:
        if name.startswith("lockgate."):
            assert importlib.util.find_spec(name) is not None, name


@pytest.mark.slow
def test_hot_commands_import_nothing_on_the_deny_list(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    component = project / "workspaces" / "alice" / "scripts" / "hello" / "run.py"
    steps: list[tuple[str, list[str]]] = [
        ("--version", ["--version"]),
        ("stage", ["stage", "alice:hello"]),
        ("stage-unchanged", ["stage", "alice:hello"]),
        ("ls", ["ls"]),
        ("promote", ["promote", "alice:hello"]),
        ("sync", ["sync"]),  # after the edit below
        ("promote", ["promote", "alice:hello"]),
        ("rollback", ["rollback", "alice:hello", "--stage", "staging"]),
    ]
    problems = []
    for i, (label, args) in enumerate(steps):
        if label == "sync":
            component.write_text("print('hello again')\n")
        modules, cumulative, _ = imported(args, project, tmp_path / f"modules-{i}.txt")
        assert cumulative, "no -X importtime report: the check would see too little"
        bad = offenders(modules, NEVER + DENIED[label])
        if bad:
            problems.append(f"lockgate {' '.join(args)} imported {', '.join(bad)}")
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_denied_import(project: Path, tmp_path: Path) -> None:
    """The same reading catches a command that does import a denied module."""
    modules, _, _ = imported(["plugins"], project, tmp_path / "modules.txt")
    assert offenders(modules, ("lockgate.builtin_plugins.watcher",))
    assert offenders(modules, VALIDATORS)


@pytest.mark.slow
def test_with_events_budget_zero_a_command_builds_no_notifier(tmp_path: Path) -> None:
    """``events.budget: 0`` leaves delivery to ``lockgate events deliver --follow``: the
    command then builds no notifier (it still primes a new notifier's cursor, so its
    events reach it); with a budget it does (so the reading would see it)."""
    root = tmp_path / "p"
    component = hello_project(root)
    config = root / "lockgate.yaml"
    plain = config.read_text()
    notifier = "  notifiers:\n    - kind: log\n      options: {path: events.jsonl}\n"
    delivery = ("lockgate.builtin_plugins.log_notifier",)
    for n, (budget, expect_loaded) in enumerate(((0, False), (1, True))):
        config.write_text(plain + f"events:\n  budget: {budget}\n{notifier}")
        (component / "run.py").write_text(f"print({n})\n")
        assert run_lockgate("stage", "alice:hello", cwd=root).returncode == 0
        modules, _, _ = imported(["promote", "alice:hello"], root, tmp_path / f"m{n}.txt")
        assert bool(offenders(modules, delivery)) is expect_loaded, budget
    assert (root / "events.jsonl").exists()  # the budgeted command delivered


WARM_DENIED = (
    *NEVER,
    "click",
    "attr",
    "attrs",
    "pluggy",
    "yaml",
    "lockgate.core",
    "lockgate.operations",
    "lockgate.builtin_plugins",
    "lockgate.cli.main",
    "lockgate.cli.context",
    "sqlite3",
    "pathlib",
    "typing",
)
"""What a command answered by a running watcher (the warm path) does not import: the
client imports ``os``, ``sys``, ``socket``, ``json`` and the protocol, and nothing else
of lockgate's but the package itself (not even ``typing``: ``lockgate/__init__`` and
``_startup`` spell ``TYPE_CHECKING`` themselves)."""


@pytest.mark.slow
def test_a_command_answered_by_the_watcher_imports_only_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import subprocess
    import sys

    from conftest import subprocess_env

    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("the warm path needs SO_PEERCRED (Linux)")
    root = tmp_path / "p"
    hello_project(root)
    env = subprocess_env({"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"})
    watcher = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "watch"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            if line.startswith("watching "):
                break
        monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
        modules, cumulative, out = imported(["stage", "alice:hello"], root, tmp_path / "m.txt")
    finally:
        watcher.kill()
        watcher.wait()
        if watcher.stdout is not None:
            watcher.stdout.close()
    assert out == "alice:hello: unchanged at " + out.split(" at ")[1]
    assert "lockgate.cli.warm_client" in cumulative
    assert not offenders(modules, WARM_DENIED), offenders(modules, WARM_DENIED)
    # ... and the same reading sees them when the command runs cold.
    monkeypatch.setenv("LOCKGATE_NO_WARM", "1")
    cold, _, _ = imported(["stage", "alice:hello"], root, tmp_path / "cold.txt")
    assert offenders(cold, ("click", "pluggy", "lockgate.core"))


# What a command delivering to an http:// webhook must still not import: its HTTP client
# is the notifier's own (no http.client, so no email package; the C _socket module, not
# socket's enums), TLS only for https://, and it signs with hmac.
WEBHOOK_DENIED = ("http.client", "email", "ssl", "socket", "standardwebhooks", "encodings.idna")


@pytest.mark.slow
def test_a_command_delivering_to_an_http_webhook_imports_no_http_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``promote`` with a ``webhook`` notifier delivers its events itself after the commit
    (the default budget): its POSTs go out (the receiver verified both signatures) without
    ``http.client``, the ``email`` package, ``ssl``, ``socket`` or the signing library."""
    from events_receiver import SECRET, Receiver

    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    receiver = Receiver()
    try:
        root = tmp_path / "p"
        hello_project(root)
        config = root / "lockgate.yaml"
        config.write_text(
            config.read_text() + "events:\n  notifiers:\n    - kind: webhook\n"
            f"      options: {{url: '{receiver.url}', secret_env: HOOK_SECRET}}\n"
        )
        assert run_lockgate("stage", "alice:hello", cwd=root).returncode == 0
        modules, _, _ = imported(["promote", "alice:hello"], root, tmp_path / "m.txt")
    finally:
        receiver.close()
    assert "lockgate.builtin_plugins.webhook_notifier" in modules  # it did deliver
    assert receiver.types()[-1] == "dev.lockgate.component.promoted"
    assert receiver.bad_signatures == 0
    assert offenders(modules, WEBHOOK_DENIED) == []
