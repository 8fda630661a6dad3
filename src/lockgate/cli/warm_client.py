"""The warm path's client: a hot command answered by a running ``lockgate watch``.

:func:`lockgate.cli.launch.main` calls :func:`answer` before it imports anything else of
lockgate's: for ``stage``, ``sync`` and ``ls`` with arguments read here, in a project
whose watcher listens on ``.lockgate/watch.sock``, the request (argv, working directory,
the terminal, the ``LOCKGATE*`` environment) goes to the watcher, which runs the same
command through the same code in its warm process, and its stdout, stderr and exit code
are written here as they are. Anything else — no socket, a stale one, a refusal, a
timeout, an argument not read here, ``LOCKGATE_NO_WARM=1`` — returns None, and the
command runs cold as always. Imports: ``os``, ``sys``, ``json`` and the protocol
(:mod:`lockgate.contracts.warm`), and ``socket`` only once a watcher's socket is there
(``tests/test_import_budget.py``). See
``docs/watcher.md`` ("The warm path").
"""

from __future__ import annotations

# ruff: noqa: PTH109, PTH110, PTH111, PTH113, PTH118, PTH120
# (before any import: pathlib would cost the client its start-up)
import json
import os
import sys

from lockgate.contracts.warm import (
    WARM_PROTOCOL,
    WARM_VERSION,
    warm_request_env,
    warm_socket_path,
)

__all__ = ["answer", "parse"]

ACCEPT_TIMEOUT = 2.0
"""Seconds to wait for the watcher to take the request (or refuse it): then cold."""
MAX_ANSWER = 1 << 28

_GLOBAL_FLAGS = frozenset({"--json", "-v", "--verbose", "-q", "--quiet", "-vv", "-qq"})
_GLOBAL_VALUES = frozenset({"-C", "--project", "--actor"})
# Each command: its flags, its options that take a value, and how many arguments.
_COMMANDS: dict[str, tuple[frozenset[str], frozenset[str], range]] = {
    "stage": (frozenset({"--json", "--dry-run"}), frozenset({"--to", "--reason"}), range(1, 2)),
    "sync": (frozenset({"--json", "--dry-run"}), frozenset({"--to", "--reason"}), range(64)),
    "ls": (frozenset({"--json"}), frozenset(), range(2)),
}


def parse(argv: list[str]) -> tuple[str, str | None] | None:
    """``(command, -C directory or None)`` when every argument is one read here, else None."""
    project: str | None = None
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg in _GLOBAL_FLAGS:
            i += 1
        elif name in _GLOBAL_VALUES and name.startswith("--") and eq:
            project = value if name == "--project" else project
            i += 1
        elif arg in _GLOBAL_VALUES and i + 1 < len(argv):
            project = argv[i + 1] if arg in ("-C", "--project") else project
            i += 2
        else:
            return None
    if i >= len(argv) or argv[i] not in _COMMANDS:
        return None
    command = argv[i]
    flags, options, arity = _COMMANDS[command]
    positional = 0
    rest = argv[i + 1 :]
    j = 0
    while j < len(rest):
        arg = rest[j]
        name, eq, _ = arg.partition("=")
        if arg == "--":
            positional += len(rest) - j - 1
            break
        if arg in flags or (name in options and eq):
            j += 1
        elif arg in options and j + 1 < len(rest):
            j += 2
        elif arg.startswith("-") and arg != "-":
            return None  # --help, an option of another version, a typo: the cold path says
        else:
            positional += 1
            j += 1
    if positional not in arity:
        return None
    return command, project


def _project_root(project: str | None, cwd: str) -> str | None:
    """The project directory, found as the command line finds it (-C, LOCKGATE_PROJECT,
    else the nearest ``lockgate.yaml`` upwards)."""
    explicit = project if project is not None else os.environ.get("LOCKGATE_PROJECT")
    if explicit:
        root = os.path.realpath(os.path.join(cwd, os.path.expanduser(explicit)))
        return root if os.path.isfile(os.path.join(root, "lockgate.yaml")) else None
    here = os.path.realpath(cwd)
    while True:
        if os.path.isfile(os.path.join(here, "lockgate.yaml")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def answer(argv: list[str]) -> int | None:
    """Run ``lockgate argv`` through a running watcher: its exit code, or None (cold)."""
    if os.environ.get("LOCKGATE_NO_WARM", "").strip() not in ("", "0"):
        return None
    parsed = parse(argv)
    if parsed is None:
        return None
    command, project = parsed
    if command == "ls" and sys.stdout.isatty():
        return None  # a table drawn for this terminal: rich measures it
    try:
        cwd = os.getcwd()
        root = _project_root(project, cwd)
        if root is None:
            return None
        path = warm_socket_path(root)
        if not os.path.exists(path):
            return None
        reply = _exchange(path, command, argv, cwd, root)
    except (OSError, ValueError):
        return None
    except KeyboardInterrupt:  # Ctrl-C: as the cold command says it
        sys.stderr.write("lockgate: error: interrupted\n")
        return 130
    if reply is None:
        return None
    out, err, code = reply
    _write(sys.stdout, out)
    _write(sys.stderr, err)
    return code


def _write(stream: object, data: bytes) -> None:
    if data:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()


def _exchange(
    path: str, command: str, argv: list[str], cwd: str, root: str
) -> tuple[bytes, bytes, int] | None:
    terminal = sys.stdout.isatty()
    try:
        width = os.get_terminal_size(sys.stdout.fileno()).columns if terminal else None
    except (OSError, ValueError):
        width = None
    request = {
        "protocol": WARM_PROTOCOL,
        "version": WARM_VERSION,
        "command": command,
        "argv": argv,
        "cwd": cwd,
        "root": root,
        "terminal": terminal,
        "width": width,
        "env": warm_request_env(os.environ),
    }
    import socket  # only when a watcher's socket exists: a cold command never pays for it

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(ACCEPT_TIMEOUT)
        sock.connect(path)  # a stale socket file: ConnectionRefusedError, then cold
        sock.sendall(json.dumps(request).encode() + b"\n")
        reader = sock.makefile("rb")
        accepted = json.loads(reader.readline() or b"null")
        if not isinstance(accepted, dict) or accepted.get("accepted") is not True:
            return None  # refused: another version, another environment, not now
        # Taken: the command runs now, however long it takes; an answer cut short (the
        # watcher stopped) runs the command cold, which finds what it did and goes on.
        sock.settimeout(None)
        header = json.loads(reader.readline() or b"null")
        if not isinstance(header, dict):
            return None
        sizes = (int(header["stdout"]), int(header["stderr"]))
        if min(sizes) < 0 or sum(sizes) > MAX_ANSWER:
            return None
        out = reader.read(sizes[0])
        err = reader.read(sizes[1])
        if len(out) != sizes[0] or len(err) != sizes[1]:
            return None
        return out, err, int(header["exit_code"])
