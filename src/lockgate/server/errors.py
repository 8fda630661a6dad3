"""Errors as the server answers them: the CLI's one-line message, a stable ``code``.

Every error body is ``{"error": {"code": CODE, "message": LINE}}``; ``LINE`` is the
message the command line would print after ``lockgate: error:``, and ``CODE`` is one of
:data:`CODES`, which never change meaning (clients branch on it, not on the words).
"""

from __future__ import annotations

from lockgate.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    EnvironmentFault,
    InputError,
    LockedError,
    LockgateError,
    NotFoundError,
    NotReadyError,
    PermissionDeniedError,
    PluginError,
    RefusedError,
)

__all__ = ["CODES", "ApiError", "status_of"]

CODES: dict[str, int] = {
    "bad_request": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "refused": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "idempotency_mismatch": 422,
    "not_ready": 422,
    "locked": 423,
    "rate_limited": 429,
    "internal": 500,
    "plugin_failed": 502,
    "unavailable": 503,
    "timeout": 504,
}
"""Every code the server gives, with its HTTP status."""

_BY_CLASS: tuple[tuple[type[LockgateError], str], ...] = (
    (AuthenticationError, "unauthenticated"),
    (PermissionDeniedError, "forbidden"),
    (NotReadyError, "not_ready"),
    (RefusedError, "refused"),
    (NotFoundError, "not_found"),
    (ConfigError, "bad_request"),
    (InputError, "bad_request"),
    (LockedError, "locked"),
    (ConflictError, "conflict"),
    (PluginError, "plugin_failed"),
    (EnvironmentFault, "unavailable"),
)


class ApiError(Exception):
    """An error the server answers with ``code`` and ``message``."""

    def __init__(
        self,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = CODES[code]
        self.headers = headers or {}
        self.extra = extra or {}
        """More about the error, beside code and message (a pipeline run's report)."""

    @classmethod
    def of(cls, exc: LockgateError) -> ApiError:
        """The answer to a deliberate lockgate error: its class decides the code."""
        code = next((c for kind, c in _BY_CLASS if isinstance(exc, kind)), "refused")
        return cls(code, exc.message)

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def status_of(code: str) -> int:
    """The HTTP status of ``code``."""
    return CODES[code]
