"""The configuration: its schema, its layers, and where every value came from.

Layers, lowest first: the schema's defaults, plugin contributions (``on_config_load``),
``lockgate.yaml``, and ``LOCKGATE__SECTION__KEY=value`` environment overrides. Command-line
flags then override single values where a command offers them.

The ``plugins:`` section holds the selection keys (``disable``, ``only``, ``order``,
``require``) and
one sub-section per plugin, ``plugins.<name>:``, validated against the settings class
that plugin declares through ``register_settings``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from lockgate.contracts.events import EventsSection
from lockgate.contracts.records import record
from lockgate.contracts.refs import NAME_PATTERN, name_problem
from lockgate.contracts.serving import ServerSection
from lockgate.errors import ConfigError, PluginHookError
from lockgate.schema.structure import EnvValue, did_you_mean, structure
from lockgate.schema.yamlfile import load_yaml_file

__all__ = [
    "CONFIG_FILENAME",
    "ENV_PREFIX",
    "Config",
    "ConfigLayers",
    "ContentSection",
    "GatesSection",
    "GcSection",
    "PluginsSection",
    "ProjectSection",
    "Source",
    "SourceSection",
    "StageSection",
    "StagingSection",
    "StateSection",
    "TargetSection",
    "ValidationSection",
    "read_layers",
]

CONFIG_FILENAME = "lockgate.yaml"
ENV_PREFIX = "LOCKGATE__"
SELECTION_KEYS = ("disable", "only", "order", "require")

KeyPath = tuple[str, ...]

RENAMED: dict[KeyPath, KeyPath] = {
    ("workspaces", "source"): ("source", "name"),
    ("workspaces", "root"): ("plugins", "workspace", "root"),
    ("workspaces", "layout"): ("plugins", "workspace", "layout"),
    ("workspaces", "ignore"): ("plugins", "workspace", "ignore"),
    ("staging", "link"): ("plugins", "local", "link"),
    ("staging", "max_file_size"): ("plugins", "limits", "staging_max_file_size"),
    ("staging", "max_component_size"): ("plugins", "limits", "staging_max_component_size"),
    ("staging", "max_files"): ("plugins", "limits", "staging_max_files"),
}
"""Deprecated keys (read still, with one warning each) and the keys that replaced them:
settings that belong to a plugin live in that plugin's section."""
_RENAMED_SECTIONS: dict[str, KeyPath] = {"workspaces": ("plugins", "workspace")}
"""A deprecated section's other keys move with it (an unknown one is then reported at
its new place, with its line)."""


# --------------------------------------------------------------------------- schema


def _within(low: float, high: float) -> Any:
    """A validator for a number in ``[low, high]``: limits and timeouts refuse absurd values
    (NaN and infinities never get here: the structurer refuses them)."""
    return [attrs.validators.ge(low), attrs.validators.le(high)]


@record
class ProjectSection:
    """``project:`` — about the project itself."""

    name: str | None = None


@record
class StateSection:
    """``state:`` — which state store plays the role, and how long to wait for locks."""

    store: str = "sqlite"
    lock_timeout: float = attrs.field(default=10.0, validator=_within(0, 3600))


@record
class IdentitySection:
    """``identity:`` — who the actor is (see docs/validation.md, "Who is acting").
    ``allow_override`` is read from ``lockgate.yaml`` only; None: allowed unless a
    stage requires approvals."""

    allow_override: bool | None = None


@record
class ContentSection:
    """``content:`` — which content store keeps revision bytes."""

    store: str = "local"


@record
class SourceSection:
    """``source:`` — which component source plays the role (its own settings are
    ``plugins.<name>:``, such as ``plugins.workspace.root``)."""

    name: str = "workspace"


MiB = 1024 * 1024


@record
class StagingSection:
    """``staging:`` — speed and progress settings for turning workspaces into revisions
    (the size caps are the ``limits`` plugin's, ``plugins.limits.staging_max_*``)."""

    workers: int = attrs.field(default=0, validator=_within(0, 1024))
    progress_min_files: int = attrs.field(default=2_000, validator=_within(0, 2**62))
    progress_min_bytes: int = attrs.field(default=256 * MiB, validator=_within(0, 2**62))


@record
class ValidationSection:
    """``validation:`` — how validators run (see docs/validation.md)."""

    timeout: float = attrs.field(
        default=30.0, validator=[attrs.validators.gt(0), attrs.validators.le(86400)]
    )
    workers: int = attrs.field(default=0, validator=_within(0, 1024))
    cache: bool = True


@record
class TargetSection:
    """``stages.<name>.targets[]:`` — where a stage is deployed, and how."""

    kind: str = "directory"
    options: dict[str, Any] = attrs.field(factory=dict)


@record
class GatesSection:
    """``stages.<name>.gates:`` — what a promotion into the stage must pass."""

    validate: bool = True
    skip: list[str] = attrs.field(factory=list)
    allow_force: bool = True


@record
class StageSection:
    """``stages.<name>:`` — one rung of the ladder.

    ``targets`` None means one ``directory`` target at ``stages/<name>/``; an empty list
    means the stage is only recorded, never deployed. ``protected`` keeps the stage's
    gates file-only: the environment cannot weaken them (see operations/gates.py).
    """

    description: str | None = None
    targets: list[TargetSection] | None = None
    gates: GatesSection = attrs.field(factory=GatesSection)
    protected: bool = False

    def target_list(self) -> list[TargetSection]:
        """The targets, with the default applied."""
        return [TargetSection()] if self.targets is None else list(self.targets)


@record
class GcSection:
    """``gc:`` — what ``lockgate gc`` keeps."""

    keep: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    grace: float = attrs.field(default=3600.0, validator=_within(0, 10 * 365 * 86400))


def _default_stages() -> dict[str, StageSection]:
    return {name: StageSection() for name in ("staging", "integration", "production")}


@record
class PluginsSection:
    """``plugins:`` — which plugins load and in which order (see docs/plugins.md)."""

    disable: list[str] = attrs.field(factory=list)
    only: list[str] | None = None
    order: list[str] = attrs.field(factory=list)
    require: list[str] = attrs.field(factory=list)
    """Plugins (``approvals``) or distributions with versions (``lockgate-x>=1.2,<2``)
    that must be loaded for anything to change state (see docs/plugin-sets.md)."""


@record
class Config:
    """The kernel's own settings (plugin sections are held apart, see :class:`ConfigLayers`)."""

    project: ProjectSection = attrs.field(factory=ProjectSection)
    source: SourceSection = attrs.field(factory=SourceSection)
    staging: StagingSection = attrs.field(factory=StagingSection)
    stages: dict[str, StageSection] = attrs.field(factory=_default_stages)
    validation: ValidationSection = attrs.field(factory=ValidationSection)
    gc: GcSection = attrs.field(factory=GcSection)
    state: StateSection = attrs.field(factory=StateSection)
    content: ContentSection = attrs.field(factory=ContentSection)
    identity: IdentitySection = attrs.field(factory=IdentitySection)
    plugins: PluginsSection = attrs.field(factory=PluginsSection)
    events: EventsSection = attrs.field(factory=EventsSection)
    server: ServerSection = attrs.field(factory=ServerSection)


# --------------------------------------------------------------------------- layers


@record
class Source:
    """Where a value came from."""

    kind: Literal["default", "file", "environment", "plugin"]
    detail: str | None = None
    deprecated: str | None = None
    """The deprecated key the value was set under, if any (``staging.link``)."""

    def __str__(self) -> str:
        text = self.kind if self.detail is None else f"{self.kind} ({self.detail})"
        return text if self.deprecated is None else f"{text}, as deprecated {self.deprecated}"


@attrs.define
class ConfigLayers:
    """The raw layers and the merged data, with a source for every key that was set."""

    file: Path | None
    file_data: dict[str, Any] = attrs.field(factory=dict)
    file_lines: dict[KeyPath, int] = attrs.field(factory=dict)
    env_data: dict[str, Any] = attrs.field(factory=dict)
    env_names: dict[KeyPath, str] = attrs.field(factory=dict)
    plugin_data: dict[str, Any] = attrs.field(factory=dict)
    plugin_names: dict[KeyPath, str] = attrs.field(factory=dict)
    renamed: dict[KeyPath, KeyPath] = attrs.field(factory=dict)
    """New key -> the deprecated key its value was read from (see :data:`RENAMED`)."""
    deprecations: list[str] = attrs.field(factory=list)
    """One line per deprecated key read: where, the old key, the new key."""

    # -------------------------------------------------------------- queries

    def merged(self) -> dict[str, Any]:
        """The merged raw data: plugin contributions, then the file, then the environment."""
        result: dict[str, Any] = {}
        for layer in (self.plugin_data, self.file_data, self.env_data):
            _deep_merge(result, layer)
        return result

    def source(self, key_path: KeyPath) -> Source:
        """Where the value at ``key_path`` came from (``default`` when nothing set it).

        An environment or plugin value set as a whole (a list, a mapping) is the source
        of everything inside it; the file records every key, so it must match exactly.
        """
        old = self.renamed.get(key_path)
        deprecated = ".".join(old) if old is not None else None
        if key_path in self.file_lines and not self._env_covers(key_path):
            line = self.file_lines[key_path]
            return Source("file", f"{self.file}:{line}", deprecated)
        probe = key_path
        while probe:
            if probe in self.env_names:
                return Source("environment", self.env_names[probe], deprecated)
            if probe in self.plugin_names and probe not in self.file_lines:
                return Source("plugin", self.plugin_names[probe])
            probe = probe[:-1]
        return Source("default")

    def _env_covers(self, key_path: KeyPath) -> bool:
        return any(key_path[:n] in self.env_names for n in range(1, len(key_path) + 1))

    def where(self, key_path: KeyPath) -> str:
        """A place to point an error at: ``file:line``, an env var, or a plugin.

        The nearest ancestor that was set is used, so an unknown key inside a section
        points at its own line and a bad value at the key that holds it.
        """
        probe = key_path
        while probe:
            src = self.source(probe)
            if src.kind == "file":
                return str(src.detail)
            if src.kind == "environment":
                return f"environment {src.detail}"
            if src.kind == "plugin":
                return f"plugin '{src.detail}' (on_config_load)"
            probe = probe[:-1]
        return str(self.file) if self.file else "configuration"

    # -------------------------------------------------------------- deprecated keys

    def apply_renames(self) -> None:
        """Move every deprecated key of the file and the environment to its new place,
        keeping its line or variable for errors and ``config show``, and note one
        warning line per key (:attr:`deprecations`). A new key set in the same layer
        wins over its old one."""
        file = str(self.file)
        layers: list[tuple[dict[str, Any], dict[KeyPath, Any]]] = [
            (self.file_data, self.file_lines),
            (self.env_data, self.env_names),
        ]
        for data, places in layers:
            for old, new in _renames(data):
                if places is self.file_lines:
                    where = f"{file}:{self.file_lines.get(old, 1)}"
                    use = ".".join(new)
                else:
                    where = f"environment {self.env_names.get(old, ENV_PREFIX)}"
                    use = f"{'.'.join(new)} ({ENV_PREFIX}{'__'.join(new).upper()})"
                value = _pop_path(data, old)
                if _has_path(data, new):
                    self.deprecations.append(
                        f"{where}: {'.'.join(old)} is deprecated and ignored, as "
                        f"{'.'.join(new)} is also set; remove it"
                    )
                    continue
                try:
                    _set_path(data, new, value)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from exc
                for path in [p for p in places if p[: len(old)] == old]:
                    moved: KeyPath = new + path[len(old) :]
                    places[moved] = places.pop(path)
                self.renamed[new] = old
                self.deprecations.append(f"{where}: {'.'.join(old)} is deprecated; use {use}")
            for section in {old[0] for old in RENAMED}:
                if data.get(section) == {}:
                    del data[section]
                    places.pop((section,), None)

    # -------------------------------------------------------------- structuring

    def kernel_config(self) -> Config:
        """Structure everything but the plugin sub-sections into :class:`Config`."""
        data = self.merged()
        plugins = data.get("plugins")
        if plugins is not None and not isinstance(plugins, Mapping):
            raise ConfigError(
                f"{self.where(('plugins',))}: plugins: expected a mapping, got {plugins!r}"
            )
        if plugins is not None:
            data["plugins"] = {k: v for k, v in plugins.items() if k in SELECTION_KEYS}
        config = structure(Config, data, (), self.where)
        _check_stage_names(config, self)
        return config

    def plugin_sections(self) -> dict[str, Any]:
        """The raw ``plugins.<name>`` sections."""
        plugins = self.merged().get("plugins") or {}
        return {k: v for k, v in plugins.items() if k not in SELECTION_KEYS}

    def check_plugin_names(self, known: Collection[str], config: Config) -> None:
        """Every plugin name the configuration holds must name a discovered plugin: the
        ``plugins.<name>`` sections, the names listed in ``plugins.disable``, ``only`` and
        ``order``, and each stage's ``gates.skip`` (``plugins.require`` says its own)."""
        self._alias_env_plugin_names(known)
        for name in self.plugin_sections():
            if name not in known:
                path = ("plugins", name)
                suggestion = did_you_mean(name, [*SELECTION_KEYS, *known])
                raise ConfigError(
                    f"{self.where(path)}: unknown key 'plugins.{name}': no installed plugin "
                    f"has that name{suggestion}"
                )
        listed: list[tuple[KeyPath, list[str]]] = [
            (("plugins", "disable"), config.plugins.disable),
            (("plugins", "only"), config.plugins.only or []),
            (("plugins", "order"), config.plugins.order),
        ]
        listed += [(("stages", s, "gates", "skip"), c.gates.skip) for s, c in config.stages.items()]
        for key, names in listed:
            for name in names:
                if name not in known:
                    raise ConfigError(
                        f"{self.where(key)}: {'.'.join(key)}: no installed plugin is named "
                        f"{name!r}{did_you_mean(name, sorted(known), 'installed plugins')}"
                    )

    def plugin_settings(self, name: str, cls: type) -> Any:
        """Structure ``plugins.<name>`` into the plugin's settings class."""
        raw = self.plugin_sections().get(name)
        return structure(cls, raw, ("plugins", name), self.where)

    def _alias_env_plugin_names(self, known: Collection[str]) -> None:
        # Environment variable names cannot hold '-': LOCKGATE__PLUGINS__MY_PLUGIN__X
        # addresses plugin 'my-plugin'.
        section = self.env_data.get("plugins")
        if not isinstance(section, dict):
            return
        for name in list(section):
            alias = name.replace("_", "-")
            if name not in known and alias in known and name not in SELECTION_KEYS:
                section[alias] = section.pop(name)
                for path in [p for p in self.env_names if p[:2] == ("plugins", name)]:
                    moved = ("plugins", alias, *path[2:])
                    self.env_names[moved] = self.env_names.pop(path)

    # -------------------------------------------------------------- plugin layer

    @staticmethod
    def check_contribution(plugin: str, contribution: Mapping[str, Any]) -> None:
        """Refuse a contribution that tries to change plugin selection."""
        selection = contribution.get("plugins")
        if isinstance(selection, Mapping) and any(k in selection for k in SELECTION_KEYS):
            raise PluginHookError(
                f"plugin '{plugin}': on_config_load cannot set plugins.disable, plugins.only, "
                "plugins.order or plugins.require (plugins are already selected); set them in "
                "lockgate.yaml",
                plugin=plugin,
                hook="on_config_load",
            )

    def add_plugin_contribution(self, plugin: str, contribution: Mapping[str, Any]) -> None:
        """Merge one plugin's ``on_config_load`` contribution as defaults."""
        self.check_contribution(plugin, contribution)
        for path, value in _leaves(copy.deepcopy(dict(contribution))):
            if path in self.plugin_names:
                continue  # the first plugin in hook order wins
            _set_path(self.plugin_data, path, value)
            self.plugin_names[path] = plugin


def _check_stage_names(config: Config, layers: ConfigLayers) -> None:
    """Stage names become directory names and state-store keys: they follow the name rules,
    and a ladder needs at least one stage."""
    if not config.stages:
        raise ConfigError(
            f"{layers.where(('stages',))}: stages: no stage is configured; name at least one "
            "(such as 'staging: {}'), or remove the key for staging, integration, production"
        )
    for name in config.stages:
        problem = name_problem(name)
        if problem is not None:
            keys = [k for k in (*layers.file_lines, *layers.env_names) if k[:2] == ("stages", name)]
            where = layers.where(min(keys, key=len) if keys else ("stages",))
            raise ConfigError(
                f"{where}: stages: stage name {name!r} {problem}; stage names match "
                f"{NAME_PATTERN} (letters, digits, '.', '_', '-')"
            )


def yaml_cache_dir(state_dir: Path) -> Path:
    """Where parsed YAML files are cached (see :func:`~lockgate.schema.yamlfile.load_yaml_file`)."""
    return state_dir / "cache" / "yaml"


def read_layers(file: Path | None, environ: Mapping[str, str]) -> ConfigLayers:
    """Read ``lockgate.yaml`` (when given) and the ``LOCKGATE__*`` environment overrides."""
    layers = ConfigLayers(file=file)
    if file is not None:
        state = file.parent / ".lockgate"
        doc = load_yaml_file(file, cache_dir=yaml_cache_dir(state) if state.is_dir() else None)
        if doc.data is None:
            doc_data: dict[str, Any] = {}
        elif isinstance(doc.data, dict):
            doc_data = doc.data
        else:
            raise ConfigError(
                f"{file}:1: the file must be a mapping of sections (project:, plugins:, ...), "
                f"not {type(doc.data).__name__}"
            )
        layers.file_data = doc_data
        layers.file_lines = doc.lines
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX):
            continue
        parts = tuple(p.lower() for p in var[len(ENV_PREFIX) :].split("__"))
        if not all(parts):
            raise ConfigError(
                f"environment {var}: empty key segment; write LOCKGATE__SECTION__KEY=value"
            )
        try:
            _set_path(layers.env_data, parts, EnvValue(environ[var]))
        except ValueError as exc:
            raise ConfigError(f"environment {var}: {exc}") from exc
        layers.env_names[parts] = var
    layers.apply_renames()
    return layers


def _renames(data: Mapping[str, Any]) -> list[tuple[KeyPath, KeyPath]]:
    """The (deprecated key, new key) pairs set in one layer's ``data``."""
    pairs: list[tuple[KeyPath, KeyPath]] = []
    for section, moved_to in _RENAMED_SECTIONS.items():
        node = data.get(section)
        if isinstance(node, Mapping):
            for key in node:
                moved: KeyPath = (section, str(key))
                pairs.append((moved, RENAMED.get(moved, (*moved_to, str(key)))))
    for old, new in RENAMED.items():
        if old[0] not in _RENAMED_SECTIONS and _has_path(data, old):
            pairs.append((old, new))
    return pairs


def _has_path(tree: Mapping[str, Any], path: KeyPath) -> bool:
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _pop_path(tree: dict[str, Any], path: KeyPath) -> Any:
    node = tree
    for part in path[:-1]:
        node = node[part]
    return node.pop(path[-1])


def _deep_merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _set_path(tree: dict[str, Any], path: KeyPath, value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"'{part}' is set to a value and also used as a section")
        node = child
    if isinstance(node.get(path[-1]), dict) and not isinstance(value, Mapping):
        raise ValueError(f"'{'.'.join(path)}' is a section and cannot be set to a value")
    node[path[-1]] = value


def _leaves(data: Mapping[str, Any], prefix: KeyPath = ()) -> list[tuple[KeyPath, Any]]:
    out: list[tuple[KeyPath, Any]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            out.extend(_leaves(value, path))
        else:
            out.append((path, value))
    return out
