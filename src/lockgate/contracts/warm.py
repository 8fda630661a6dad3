"""The warm path's protocol: what a command line and a running ``lockgate watch`` say.

A hot command (``stage``, ``sync``, ``ls``) started while the project's watcher runs
connects to :func:`warm_socket_path` (a Unix socket, mode 0600, under ``.lockgate/``) and
sends one JSON line: ``protocol`` (:data:`WARM_PROTOCOL`), ``version`` (lockgate's),
``command``, ``argv``, ``cwd``, ``root`` (the project it found), ``terminal`` (whether
stdout is one) and ``width``, and ``env`` (:func:`warm_request_env`). The watcher answers
one JSON line, ``{"accepted": true}`` or ``{"accepted": false, "reason": ...}``; once
accepted, one more JSON line ``{"stdout": N, "stderr": M, "exit_code": C}`` followed by
N bytes of stdout and M bytes of stderr. Files named :data:`WARM_COOKIE_PREFIX`... under
the watched directory are the watcher's own (never staged: hidden names are skipped).

Imports only ``os`` (the client runs before anything else is imported; see
``tests/test_import_budget.py``).
"""

from __future__ import annotations

# ruff: noqa: PTH118
# (the client imports it before anything else: no pathlib)
import os

from lockgate._version import __version__

TYPE_CHECKING = False  # not typing's: the client imports this (see lockgate/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "WARM_COOKIE_PREFIX",
    "WARM_PROTOCOL",
    "WARM_SOCKET_NAME",
    "WARM_VERSION",
    "warm_request_env",
    "warm_socket_path",
]

WARM_PROTOCOL = 1
"""Bumped whenever the request or the answer changes shape."""
WARM_VERSION = __version__
"""A client and a watcher of different lockgate versions never talk: the client runs cold."""
WARM_SOCKET_NAME = "watch.sock"
WARM_COOKIE_PREFIX = ".lockgate-cookie-"


def warm_socket_path(root: str | os.PathLike[str]) -> str:
    """Where the watcher of the project at ``root`` listens."""
    return os.path.join(os.fspath(root), ".lockgate", WARM_SOCKET_NAME)


def warm_request_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What of the environment a command may depend on: every ``LOCKGATE*`` variable. A
    watcher answers only a request whose variables are its own."""
    return {k: v for k, v in environ.items() if k.startswith("LOCKGATE")}
