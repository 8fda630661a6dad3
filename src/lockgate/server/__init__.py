"""``lockgate serve``: an HTTP API over the same operations the command line runs.

- :mod:`lockgate.server.app`: what every request goes through (token, role, limits,
  idempotency) and the project it runs on;
- :mod:`lockgate.server.routes`: each endpoint's work over the operations;
- :mod:`lockgate.server.http`: the Starlette application; :mod:`~lockgate.server.openapi`
  its OpenAPI document; :mod:`~lockgate.server.metrics` ``/metrics``;
- :mod:`lockgate.server.archive`: an uploaded component, checked entry by entry;
- :mod:`lockgate.server.pipelines`: pipeline runs;
- :mod:`lockgate.server.jobs`: operations answered 202 and run in a bounded pool;
- :mod:`lockgate.server.idempotency`: answered keys and jobs, kept in ``.lockgate/server.db``;
- :mod:`lockgate.server.timeouts`: the request timeout, never leaving an operation half-done;
- :mod:`lockgate.server.jwt_auth`: JWTs verified against configured public keys;
- :mod:`lockgate.server.projects`: open projects kept from one request to the next;
- :mod:`lockgate.server.errors`: the JSON errors and their codes;
- :mod:`lockgate.server.dashboard`: the web dashboard (``/ui/``) and its sign-in.

Importing this package imports nothing of Starlette: the command checks the extra is
installed first, and says how to install it when it is not.
"""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra() -> str | None:
    """One line saying what to install when the ``server`` extra is missing, else None."""
    import importlib.util

    absent = [
        m
        for m in ("starlette", "uvicorn", "prometheus_client", "jinja2")
        if importlib.util.find_spec(m) is None
    ]
    if not absent:
        return None
    return (
        f"lockgate serve needs {', '.join(absent)}, which are not installed; "
        "install the server extra: pip install 'lockgate[server]'"
    )
