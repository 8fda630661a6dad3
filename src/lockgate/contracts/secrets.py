"""Settings fields that hold a secret, and the settings as they may be shown.

A plugin's settings are shown by ``lockgate config show`` (every key, its value and its
source). A field that holds a password, a token or a connection string with a password in
it is declared with :func:`secret`, and every place that shows settings shows
:func:`redacted` values instead: the whole value replaced by ``***``, or what the field's
own ``redact`` function keeps of it (a connection string without its password, say).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["HIDDEN", "SECRET", "hide", "is_secret", "redacted", "redacted_raw", "secret"]

SECRET = "lockgate.secret"
"""The attrs field metadata key under which a secret field keeps its redact function."""

HIDDEN = "***"
"""What a hidden value is shown as."""


def hide(value: object) -> object:
    """The default redaction: ``***`` for any value that is set (empty stays empty)."""
    return HIDDEN if value not in (None, "") else value


def secret(*, default: Any = None, redact: Callable[[Any], Any] = hide, **options: Any) -> Any:
    """An attrs field whose value is a secret, never shown as it is::

        @attrs.frozen
        class Settings:
            token: str = secret(default="")
            dsn: str = secret(default="", redact=without_password)

    ``redact`` receives the value and returns what may be shown (default: :func:`hide`);
    the other keywords go to ``attrs.field``.
    """
    metadata = {**options.pop("metadata", {}), SECRET: redact}
    return attrs.field(default=default, metadata=metadata, **options)


def is_secret(field: attrs.Attribute[Any]) -> bool:
    """Whether an attrs field was declared with :func:`secret`."""
    return SECRET in field.metadata


def redacted(settings: object) -> object:
    """``settings`` as plain data to show: an attrs instance as a dict (nested ones too),
    each secret field through its redact function; anything else unchanged."""
    if not attrs.has(type(settings)):
        return settings
    instance: Any = settings
    shown: dict[str, object] = attrs.asdict(instance)
    for field in attrs.fields(type(instance)):
        value = getattr(settings, field.name)
        redact = field.metadata.get(SECRET)
        if redact is not None:
            try:
                shown[field.name] = redact(value)
            except Exception:  # a redactor that fails must not show the value
                shown[field.name] = HIDDEN
        elif attrs.has(type(value)):
            shown[field.name] = redacted(value)
    return shown


_SECRET_KEY = re.compile(r"pass|secret|token|dsn|credential|private|api.?key|auth", re.IGNORECASE)


def redacted_raw(section: object) -> object:
    """A ``plugins.<name>`` section as written, for a plugin whose settings class did not
    load (failed or disabled): no class says which fields are secret, so every value
    under a key that names one (``password``, ``token``, ``dsn``, ``api_key`` …) is
    hidden, at any depth."""
    if isinstance(section, dict):
        return {
            key: hide(value)
            if isinstance(key, str) and _SECRET_KEY.search(key) and not isinstance(value, dict)
            else redacted_raw(value)
            for key, value in section.items()
        }
    if isinstance(section, list):
        return [redacted_raw(item) for item in section]
    return section
