"""What the kernel reads of a settings class beyond its types: the keys it requires, and
which key a validator refused.

A plugin declares its settings (``plugins.<name>:`` in ``lockgate.yaml``, or
``LOCKGATE__PLUGINS__<NAME>__<KEY>``) as an attrs class it returns from
``register_settings``. A field without a default is a required key: when it is not set,
that plugin fails to load, naming the key, and every other plugin and command goes on. A
validator that refuses a value is pointed at the key it checked (its line in
``lockgate.yaml``, or the environment variable the value came from): attrs hands every
validator the ``attrs.Attribute`` it checks, which is how the key is found.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import attrs

__all__ = ["missing_key", "refused_key"]


def missing_key(cls: type, data: Mapping[str, Any], path: tuple[str, ...]) -> str | None:
    """What is missing when a field of attrs class ``cls`` (read from the section at key
    path ``path``) has no default and is not in ``data``: the key, and how to set it."""
    for field in attrs.fields(cls):
        if field.init and field.default is attrs.NOTHING and field.name not in data:
            key = (*path, field.name)
            env = "__".join(part.upper().replace("-", "_") for part in key)
            return (
                f"{'.'.join(key)} is required and not set (in lockgate.yaml, or as LOCKGATE__{env})"
            )
    return None


def refused_key(exc: BaseException, names: Collection[str]) -> str | None:
    """The field (one of ``names``) whose validator raised ``exc``, if one did."""
    if str(exc).startswith("'"):  # attrs' own validators: "'timeout' must be > 0"
        named = [name for name in names if str(exc).startswith(f"'{name}' ")]
        if named:
            return named[0]
    tb = exc.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, attrs.Attribute) and value.name in names:
                return value.name
        tb = tb.tb_next
    return None
