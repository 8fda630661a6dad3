"""``lockgate serve``: the HTTP API, under uvicorn."""

from __future__ import annotations

import os

import attrs
import click

from lockgate.cli.context import AppContext

__all__ = ["command"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-body",
    default=64 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body, in bytes (uploads included).",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a request may take before it is answered 504.",
)
@click.option(
    "--auth-failures",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="Failed authentications a client may make per minute before it gets 429.",
)
@click.option(
    "--workers",
    default=None,
    help="Server processes answering on the one address (a number, or auto: one per "
    "CPU); default: server.workers in lockgate.yaml, else 1.",
)
@click.option(
    "--job-threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Threads running jobs (uploads, pipeline runs, Prefer: respond-async), in each "
    "worker process.",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests answered at once, a quarter of them (at least 1) for changes and the "
    "rest for reads; more wait their turn (within --timeout).",
)
@click.option(
    "--http",
    "http_impl",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "httptools", "h11"]),
    help="HTTP parser: httptools and the uvloop event loop when installed (auto), or the "
    "pure-Python h11 on asyncio's loop.",
)
@click.pass_context
def command(
    ctx: click.Context,
    host: str,
    port: int,
    max_body: int,
    timeout: float,
    auth_failures: int,
    workers: str | None,
    job_threads: int,
    threads: int,
    http_impl: str,
) -> None:
    """Serve the project's HTTP API (see docs/server.md); Ctrl-C stops it.

    Every request needs a bearer token from 'lockgate token create' but /health, /ready,
    /openapi.json and /docs. Exit 3 when the server extra is not installed or the state
    store keeps no tokens; exit 4 when the address is in use.
    """
    from lockgate.errors import MissingCapabilityError
    from lockgate.server import missing_extra

    missing = missing_extra()
    if missing is not None:
        raise MissingCapabilityError(missing)
    from lockgate.contracts.state import store_tokens

    app_ctx = ctx.ensure_object(AppContext)
    project = app_ctx.project()
    root = project.require_root()
    if store_tokens(project.state()) is None:
        raise MissingCapabilityError(
            f"state store {project.config.state.store!r} keeps no access tokens (the "
            "AccessTokens capability), so it cannot serve; use state.store: sqlite"
        )
    from lockgate.server.app import Server, ServerSettings
    from lockgate.server.http import build_app
    from lockgate.server.workers import bind, serve_one, supervise

    processes = worker_count(workers, project.config.server.workers)
    project.close()  # the server opens its own: no idle pool, none copied into a worker
    settings = ServerSettings(
        root=root,
        environ=dict(os.environ),
        max_body=max_body,
        timeout=timeout,
        auth_failures=auth_failures,
        job_threads=job_threads,
        threads=threads,
        distributions=app_ctx.distributions,
    )
    http, loop = http_stack(http_impl)
    options = _uvicorn_options(http, loop)
    if processes == 1:
        app = build_app(settings)  # a broken server.jwt section is one line here, exit 2
        sock = bind(host, port)
        click.echo(f"lockgate: serving {root} on {_address(sock)} ({http}, {loop})", err=True)
        serve_one(app, sock, options)
        return
    Server(settings).close()  # the same checks, once, before any worker starts
    sock = bind(host, port)
    click.echo(
        f"lockgate: serving {root} on {_address(sock)} ({http}, {loop}, "
        f"{processes} worker processes)",
        err=True,
    )

    def make_app(metrics_dir: str) -> object:
        from pathlib import Path

        return build_app(attrs.evolve(settings, metrics_dir=Path(metrics_dir)))

    code = supervise(processes, root / ".lockgate" / "serve", sock, make_app, options, _say)
    if code:
        ctx.exit(code)


def _uvicorn_options(http: str, loop: str) -> dict[str, object]:
    """uvicorn's settings for every server process: no access log (``/metrics`` counts
    requests), idle connections closed after 5 s, at most 200 connections at once."""
    return {
        "log_level": "warning",
        "access_log": False,
        "http": http,
        "loop": loop,
        "timeout_keep_alive": 5,
        "limit_concurrency": 200,
    }


def _say(line: str) -> None:
    click.echo(line, err=True)


def _address(sock: object) -> str:
    import socket

    assert isinstance(sock, socket.socket)
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def worker_count(option: str | None, configured: int | str | None) -> int:
    """Worker processes for ``--workers`` (``option``), else ``server.workers``: a number
    from 1 to 256, or ``auto`` (one per CPU this process may run on)."""
    from lockgate.errors import InputError

    given, where = (option, "--workers") if option is not None else (configured, "server.workers")
    if given is None:
        return 1
    text = str(given).strip().lower()
    if text == "auto":
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return max(1, len(cpus) if cpus else (os.cpu_count() or 1))
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise InputError(f"{where} {given!r}: give a number from 1 to 256, or auto")
    return int(text)


def _installed(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def http_stack(choice: str) -> tuple[str, str]:
    """uvicorn's HTTP implementation and event loop for ``--http`` ``choice``: the
    compiled httptools parser and uvloop when installed (they answer a small request for
    about two thirds of the CPU time of h11 on asyncio's loop), else the pure-Python ones."""
    from lockgate.errors import MissingCapabilityError

    if choice == "h11":
        return "h11", "asyncio"
    parser = _installed("httptools")
    if choice == "httptools" and not parser:
        raise MissingCapabilityError(
            "--http httptools: the httptools package is not installed; "
            "pip install 'lockgate[server]', or use --http h11"
        )
    return ("httptools" if parser else "h11"), ("uvloop" if _installed("uvloop") else "asyncio")
