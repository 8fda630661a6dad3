"""The ``lockgate`` console script and ``python -m lockgate``.

The cyclic garbage collector is turned off before the first import: importing the CLI,
attrs, click and the plugins allocates some hundred thousand objects that live until the
process ends, and collections walking them cost tens of milliseconds per command.
:class:`~lockgate.cli.main.LockgateGroup` turns it back on for commands that may run for
long (plugin commands such as ``watch``) and when it is used in-process.

Before even that, :func:`lockgate.cli.warm_client.answer` offers ``stage``, ``sync`` and
``ls`` to a running ``lockgate watch`` (the warm path, ``docs/watcher.md``): it imports
only ``os``, ``sys`` and ``json`` (``socket`` once a watcher's socket is there), and
when it cannot be answered there the command runs here as always.
"""

from __future__ import annotations

from lockgate._startup import collector_off

__all__ = ["main"]


def main() -> None:
    """Console-script entry point."""
    import sys

    from lockgate.cli.warm_client import answer

    code = answer(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    collecting = collector_off()  # before the imports: see lockgate._startup
    from lockgate.cli.main import cli

    cli.collecting = collecting
    cli.main(prog_name="lockgate")
