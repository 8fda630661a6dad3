"""``lockgate plugin new``: a ready plugin distribution, written from templates.

What is written, for plugin ``NAME`` of a kind (``validator``, ``notifier``, ``target``,
``store`` — a content store — or ``command``): ``pyproject.toml`` with the ``lockgate``
entry point, ``src/lockgate_NAME/__init__.py`` importing only ``lockgate.plugin``, a
README (use, develop, publish) and ``tests/test_plugin.py`` on the ``lockgate.testing``
fixtures (and, for a target or a store, the role's conformance suite), so that
``pip install -e 'DIR[test]'`` (the ``test`` extra brings pytest) then ``pytest`` in it
passes as written.

The templates are package data (``lockgate/templates/plugin/``): ``common/`` for every
kind, one directory per kind for the module, its tests and the README's "Use" section.
Placeholders are ``__PLUGIN__`` (the entry point's name), ``__DIST__``, ``__MODULE__``,
``__KIND__``, ``__SUMMARY__``, ``__USAGE__``, ``__SUITE_NOTE__``, ``__DEPENDENCIES__``,
``__HOOKS__`` (what the plugin declares in ``lockgate.hooks``, so it is imported only when
needed) and ``__LOCKGATE_VERSION__``; nothing else in a template is touched.

A state store is not offered: it is a database with locks and a hash-chained audit
log, which no template makes correct; start from ``StateStoreConformance``
(docs/conformance.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from importlib import resources
from pathlib import Path

from lockgate._version import __version__
from lockgate.contracts.records import record
from lockgate.errors import InputError

__all__ = ["KINDS", "ScaffoldResult", "new_plugin", "plugin_name_problem"]

KINDS: Mapping[str, str] = {
    "validator": "A lockgate validator reporting every file that holds a marker text.",
    "notifier": "A lockgate notifier appending one line per promotion and rollback to a file.",
    "target": "A lockgate stage target copying each revision into a directory.",
    "store": "A lockgate content store keeping each object as a file named by its digest.",
    "command": "A lockgate command printing the latest staged revision of a component.",
}
"""Each kind the scaffolder writes, with the summary its distribution gets."""

_DEPENDS = {"validator": "attrs>=23.1", "notifier": "attrs>=23.1", "command": "click>=8.1"}
"""What each kind's module imports besides lockgate (lockgate brings them too, but a
distribution names what it imports)."""

_SUITES = {
    "target": "TargetConformance",
    "store": "ContentStoreConformance",
}

_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME = 40
DIST_PREFIX = "lockgate-"

# template path (under common/ or the kind's directory) -> where it is written
_FILES = {
    "common/pyproject.toml.tmpl": "pyproject.toml",
    "common/README.md.tmpl": "README.md",
    "{kind}/plugin.py.tmpl": "src/{module}/__init__.py",
    "{kind}/test_plugin.py.tmpl": "tests/test_plugin.py",
}


@record
class ScaffoldResult:
    """What ``plugin new`` wrote."""

    directory: Path
    plugin: str
    distribution: str
    module: str
    kind: str
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--json``."""
        return {
            "directory": str(self.directory),
            "plugin": self.plugin,
            "distribution": self.distribution,
            "module": self.module,
            "kind": self.kind,
            "files": list(self.files),
        }


def plugin_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a new plugin's name, or None."""
    if not _NAME.fullmatch(name):
        return (
            "is not a plugin name: use lower-case letters, digits and single dashes, "
            "starting with a letter (such as readme-check)"
        )
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    return None


def new_plugin(
    name: str,
    kind: str,
    directory: Path | None = None,
    *,
    taken: Collection[str] = (),
    taken_commands: Collection[str] = (),
) -> ScaffoldResult:
    """Write plugin ``name`` of ``kind`` into ``directory`` (default: ``./lockgate-NAME``),
    which must not exist. ``taken`` are the builtin plugins' names, ``taken_commands``
    the kernel's command names (a command plugin may not reuse one)."""
    plugin = name.removeprefix(DIST_PREFIX)
    problem = plugin_name_problem(plugin)
    if problem is not None:
        raise InputError(f"plugin name {name!r} {problem}")
    if kind not in KINDS:
        raise InputError(f"--kind {kind!r}: not a kind; choose one of {', '.join(KINDS)}")
    if plugin in taken:
        raise InputError(f"plugin name {plugin!r} is a builtin plugin's; choose another name")
    if kind == "command" and plugin in taken_commands:
        raise InputError(f"'lockgate {plugin}' is a lockgate command already; choose another name")
    distribution = f"{DIST_PREFIX}{plugin}"
    module = distribution.replace("-", "_")
    target = (directory if directory is not None else Path.cwd() / distribution).absolute()
    if target.exists() or target.is_symlink():
        raise InputError(f"{target} already exists; give a new directory with --dir")
    values = _values(plugin, distribution, module, kind)
    written = []
    for template, where in _FILES.items():
        path = target / where.format(module=module)
        text = _render(_template(template.format(kind=kind)), values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path.relative_to(target).as_posix())
    return ScaffoldResult(target, plugin, distribution, module, kind, tuple(written))


# What each kind's module implements: its lockgate.hooks entry (docs/plugins.md).
_HOOKS: Mapping[str, str] = {
    "validator": "register_settings describe_validator on_validate",
    "notifier": "register_settings on_promote on_rollback",
    "target": "register_targets({plugin})",
    "store": "register_content_stores({plugin})",
    "command": "register_commands",
}


def _template(path: str) -> str:
    found = resources.files("lockgate") / "templates" / "plugin"
    for part in path.split("/"):
        found = found / part
    return found.read_text(encoding="utf-8")


def _values(plugin: str, distribution: str, module: str, kind: str) -> dict[str, str]:
    suite = _SUITES.get(kind)
    note = f", and lockgate's `{suite}` suite" if suite else ""
    return {
        "__PLUGIN__": plugin,
        "__DIST__": distribution,
        "__MODULE__": module,
        "__KIND__": kind,
        "__SUMMARY__": KINDS[kind],
        "__SUITE_NOTE__": note,
        "__DEPENDENCIES__": f', "{_DEPENDS[kind]}"' if kind in _DEPENDS else "",
        "__HOOKS__": _HOOKS[kind].format(plugin=plugin),
        "__LOCKGATE_VERSION__": __version__,
    }


def _render(text: str, values: Mapping[str, str]) -> str:
    if "__USAGE__" in text:  # the README's "Use" section is the kind's own template
        text = text.replace("__USAGE__", _template(f"{values['__KIND__']}/usage.md.tmpl").strip())
    for key, value in values.items():
        text = text.replace(key, value)
    return text
