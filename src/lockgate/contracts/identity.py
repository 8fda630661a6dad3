"""Who is acting, and how lockgate knows it.

The actor of an operation is the name the audit log records, that approval rules count
and that the self-approval check compares with a revision's authors. On the command line
it is the operating-system user; a project may allow it to be *claimed* instead
(``identity.allow_override`` in ``lockgate.yaml``), through ``--actor``,
``LOCKGATE_ACTOR`` or the Python API's ``actor=``. The server's actor is the identity
its bearer token was issued to, which a request cannot change.

Every audit event records how its actor was established (``details.actor_via``): one of
:data:`VIA_NAMES`, or ``token:<id>`` for the server.
"""

from __future__ import annotations

from lockgate.contracts.records import record
from lockgate.contracts.refs import check_text
from lockgate.errors import RefusedError

__all__ = ["VIA_NAMES", "Identity", "os_user", "resolve_identity"]

OS_USER = "os-user"
VIA_NAMES = (OS_USER, "--actor", "LOCKGATE_ACTOR", "python-api")
"""How a command-line or Python-API actor is established."""


@record
class Identity:
    """An actor's name and how it was established (``via``)."""

    name: str
    via: str

    def details(self) -> dict[str, object]:
        """What an audit event's ``details`` carry about the actor."""
        return {"actor_via": self.via}


def os_user() -> str:
    """The operating-system user running this process (``unknown`` when it has none)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve_identity(claimed: str | None, via: str, *, allowed: bool, why_not: str) -> Identity:
    """The actor: ``claimed`` (through ``via``) when overrides are ``allowed``, else the
    OS user; a claim that is not allowed is refused, saying ``why_not`` and how to fix it,
    never silently replaced (the caller believes it acts as someone else)."""
    if claimed is None or not claimed.strip():
        return Identity(os_user(), OS_USER)
    name = check_text(via, claimed.strip()) or ""
    if not allowed:
        raise RefusedError(
            f"{via} {name!r} is not allowed: this project takes the actor from the "
            f"operating-system user ({why_not}); drop {via}, or set "
            "identity.allow_override: true in lockgate.yaml"
        )
    return Identity(name, via)
