"""``lockgate init``: create a project's files without ever overwriting one."""

from __future__ import annotations

from pathlib import Path

from lockgate.contracts.records import record
from lockgate.core.config import CONFIG_FILENAME, yaml_cache_dir
from lockgate.core.project import Project
from lockgate.errors import InputError
from lockgate.schema.yamlfile import load_yaml_file

__all__ = ["InitResult", "init_project", "prepare_state"]

STARTER_CONFIG = """\
# lockgate project configuration. Every key is optional; `lockgate config show` prints
# the resolved values and where each came from. Reference: docs/configuration.md
project:
  name: {name}

# Which plugins load. A plugin loads unless a disable list names it, or an allowlist
# that is set (plugins.only, LOCKGATE_LOAD_PLUGINS) does not.
plugins:
  disable: []
"""

GITIGNORE_ENTRY = ".lockgate/"


@record
class InitResult:
    """What ``init`` did: paths created, and paths that already existed and were kept."""

    root: Path
    created: tuple[str, ...]
    kept: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--json``."""
        return {"root": str(self.root), "created": list(self.created), "kept": list(self.kept)}


def init_project(root: Path, *, name: str | None = None) -> InitResult:
    """Create ``lockgate.yaml``, ``workspaces/``, ``.lockgate/`` and a .gitignore entry."""
    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a directory; choose another path")
    root.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    kept: list[str] = []
    config = root / CONFIG_FILENAME
    text = STARTER_CONFIG.format(name=_yaml_str(name or root.name))
    if _create_file(config, text):
        created.append(CONFIG_FILENAME)
    else:
        kept.append(CONFIG_FILENAME)
    for dirname in ("workspaces", ".lockgate"):
        path = root / dirname
        if path.is_dir():
            kept.append(dirname + "/")
        elif path.exists():
            raise InputError(f"{path}: exists and is not a directory; move it away and rerun")
        else:
            path.mkdir()
            created.append(dirname + "/")
    if CONFIG_FILENAME in created:
        # Parse the starter config once now, so the project's first command finds it in
        # the YAML cache (keyed by content) instead of importing and running the parser.
        load_yaml_file(config, cache_dir=yaml_cache_dir(root / ".lockgate"))
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if any(line.strip() in (GITIGNORE_ENTRY, ".lockgate") for line in lines):
        kept.append(".gitignore")
    else:
        prefix = "" if not lines or gitignore.read_text(encoding="utf-8").endswith("\n") else "\n"
        with gitignore.open("a", encoding="utf-8") as fh:
            fh.write(f"{prefix}{GITIGNORE_ENTRY}\n")
        created.append(".gitignore entry")
    return InitResult(root=root, created=tuple(created), kept=tuple(kept))


def prepare_state(root: Path, *, strict_plugins: bool | None = None) -> str:
    """Open the project's state store once, so that it exists before the first command.

    The embedded store creates its database and schema on first open (a few ms and two
    durable commits), which would otherwise fall on whatever command runs first, often
    the first staging. Opening it here also shows at once that the configuration loads
    (and the plugins, in strict mode). Returns the store's name; raises the project's
    error (an invalid ``lockgate.yaml``, a store that cannot be opened) as any command
    would.
    """

    project = Project.open(root, strict_plugins=strict_plugins)
    try:
        project.state()
    finally:
        project.close()
    return project.config.state.store


def _create_file(path: Path, text: str) -> bool:
    """Write ``path`` only if it does not exist (O_EXCL: never clobbers, even racing)."""
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        return False
    return True


def _yaml_str(value: str) -> str:
    import json

    return json.dumps(value)  # a JSON string is a valid YAML scalar, safely quoted
