"""Protected stages, and the record of the gates a promotion actually passed.

A stage with ``protected: true`` in ``lockgate.yaml`` takes its gates from the file only:
anything from the environment that would weaken them is refused before the gates run.
Weakening means: ``gates.validate`` turned off, names added to ``gates.skip``,
``gates.allow_force`` turned on, ``protected`` turned off, a plugin the file would load
blocked (``LOCKGATE_DISABLE_PLUGINS``, ``LOCKGATE_LOAD_PLUGINS``,
``LOCKGATE__PLUGINS__ONLY``/``__DISABLE``), a plugin failing to load, or any
``LOCKGATE__PLUGINS__<validator>__*`` override of a validator's settings (the kernel cannot
tell raising a threshold from lowering it, so it refuses both). Overrides that strengthen
a gate (``allow_force`` off, ``validate`` on) are accepted.

Whatever the protection, :func:`gate_record` is what a promotion's audit event stores
under ``details.gates``: which validators ran, which were skipped or not loaded, and
where each setting that decides the gate came from, so a weakened gate shows in
``lockgate history`` and ``lockgate log``.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.contracts.models import ComponentReadiness, Issue, Severity
from lockgate.core.config import Config, ConfigLayers, StageSection
from lockgate.errors import RefusedError

if TYPE_CHECKING:
    from lockgate.contracts.models import ReadinessReport
    from lockgate.core.session import Session

__all__ = ["check_protected", "closed_gates", "gate_record", "gates_note", "is_protected"]

_SELECTION_VARS = ("LOCKGATE_DISABLE_PLUGINS", "LOCKGATE_LOAD_PLUGINS")


# Structuring a configuration costs about 40 µs, and every promotion asks for the file's
# twice (2% of a switch): a project's layers are read when it opens and never change
# after, so each is structured once (the entry goes with the layers).
_FILE_CONFIGS: dict[int, tuple[weakref.ref[ConfigLayers], Config]] = {}


def _file_config(layers: ConfigLayers) -> Config:
    """The configuration without the environment layer: what the project itself says."""
    key = id(layers)
    known = _FILE_CONFIGS.get(key)
    if known is not None and known[0]() is layers:
        return known[1]
    config = ConfigLayers(
        file=layers.file,
        file_data=layers.file_data,
        file_lines=layers.file_lines,
        plugin_data=layers.plugin_data,
        plugin_names=layers.plugin_names,
    ).kernel_config()
    _FILE_CONFIGS[key] = (weakref.ref(layers, lambda _: _FILE_CONFIGS.pop(key, None)), config)
    return config


def is_protected(session: Session, stage: str) -> bool:
    """True when ``lockgate.yaml`` (or the environment, which may only add it) protects it."""
    if session.config.stages[stage].protected:
        return True
    base = _file_config(session.layers).stages.get(stage)
    return base is not None and base.protected


def closed_gates(
    session: Session, results: list[ComponentReadiness], skip: Collection[str]
) -> list[ComponentReadiness]:
    """Gates fail closed: while a plugin has failed to load (nothing can tell which checks
    it would have made, unless it had registered no ``on_validate`` before it failed) or a
    ``plugins.require`` entry is unsatisfied, every component
    gets a blocking issue saying so, and ``--force --reason`` is the only way past. A
    plugin named in ``skip`` (``gates.skip``) is left out, as its checks would be."""
    problems = [
        f"{info.label} failed to load ({info.error}); the checks it may make cannot run"
        for info in session.plugins.failures
        if info.may_validate and info.name not in skip
    ]
    problems += session.project.required_problems()
    if not problems:
        return results
    issues = tuple(
        Issue(
            Severity.ERROR,
            "plugin-unavailable",
            problem,
            plugin="lockgate",
            hint="fix the plugin or disable it in plugins.disable (see 'lockgate plugins'), "
            "or promote with --force --reason",
        )
        for problem in problems
    )
    return [attrs.evolve(r, issues=(*r.issues, *issues)) for r in results]


def _validator_plugins(session: Session) -> set[str]:
    return {v.plugin for v in session.hooks.validators()}


def _env_plugin_overrides(session: Session) -> dict[str, str]:
    """``plugins.<validator>.…`` keys set from the environment, and the variable of each."""
    validators = _validator_plugins(session)
    return {
        ".".join(path): var
        for path, var in sorted(session.layers.env_names.items())
        if path == ("plugins",)  # the whole section at once: every validator's settings
        or (len(path) >= 2 and path[0] == "plugins" and path[1] in validators)
    }


def _why(option: str, var: str, stage: str) -> str:
    return (
        f"{var} would weaken the gates of protected stage {stage} ({option}); unset it, or "
        f"change lockgate.yaml (stages.{stage}.protected: true keeps gates file-only)"
    )


def check_protected(session: Session, stage: str) -> None:
    """Refuse (:class:`RefusedError`) when the environment weakens ``stage``'s gates.

    Does nothing for an unprotected stage. The first weakening found is named, with the
    variable that causes it.
    """
    if not is_protected(session, stage):
        return
    layers = session.layers
    base_config = _file_config(layers)
    base = base_config.stages.get(stage, StageSection())
    now = session.config.stages[stage]

    def var(*key: str) -> str:
        source = layers.source(("stages", stage, *key))
        return str(source.detail) if source.kind == "environment" else f"stages.{stage}"

    if base.protected and not now.protected:
        raise RefusedError(_why("protected: false", var("protected"), stage))
    if base.gates.validate and not now.gates.validate:
        raise RefusedError(_why("gates.validate: false", var("gates", "validate"), stage))
    added = sorted(set(now.gates.skip) - set(base.gates.skip))
    if added:
        raise RefusedError(_why(f"gates.skip: {', '.join(added)}", var("gates", "skip"), stage))
    if now.gates.allow_force and not base.gates.allow_force:
        raise RefusedError(_why("gates.allow_force: true", var("gates", "allow_force"), stage))
    disable, only = set(base_config.plugins.disable), base_config.plugins.only
    session.plugins.load_all()  # "every plugin loaded" includes those no hook needed yet
    for info in sorted(session.plugins.infos.values(), key=lambda i: i.name):
        if info.status == "failed":
            raise RefusedError(
                f"{info.label} failed to load ({info.error}); protected stage {stage} is "
                "promoted into only with every plugin loaded: fix it, or disable it in "
                "lockgate.yaml (plugins.disable)"
            )
        if info.status != "disabled":
            continue
        if info.name in disable or (only is not None and info.name not in only):
            continue  # the file blocks it: that is the project's own policy
        reason = info.reason or ""
        blocker = next((v for v in _SELECTION_VARS if v in reason), None)
        if blocker is None:
            key = "only" if "plugins.only" in reason else "disable"
            blocker = str(layers.source(("plugins", key)).detail or f"plugins.{key}")
        raise RefusedError(_why(f"blocks plugin '{info.name}'", blocker, stage))
    for key, name in _env_plugin_overrides(session).items():
        raise RefusedError(_why(f"sets {key}", name, stage))


def gate_record(
    session: Session, stage: str, report: ReadinessReport | None, *, forced: bool = False
) -> dict[str, Any]:
    """What decided this promotion's gate, for the audit event's ``details.gates``."""
    layers = session.layers
    section = session.config.stages[stage]
    sources = {
        f"stages.{stage}.{'.'.join(key)}": str(layers.source(("stages", stage, *key)))
        for key in (
            ("protected",),
            ("gates", "validate"),
            ("gates", "skip"),
            ("gates", "allow_force"),
        )
    }
    for key in ("disable", "only"):
        source = layers.source(("plugins", key))
        if source.kind != "default":
            sources[f"plugins.{key}"] = str(source)
    for name in _SELECTION_VARS:
        if name in session.environ:
            sources[name] = f"environment ({name}={session.environ[name]})"
    for key, name in _env_plugin_overrides(session).items():
        sources[key] = f"environment ({name})"
    ran: list[str] = []
    if report is not None:
        ran = sorted({v for c in report.components for v in c.validators})
    not_loaded = {
        i.name: (i.reason or "disabled") if i.status == "disabled" else f"failed: {i.error}"
        for i in sorted(session.plugins.infos.values(), key=lambda i: i.name)
        if i.status != "loaded"
    }
    return {
        "protected": is_protected(session, stage),
        "validate": section.gates.validate,
        "ran": ran,
        "skipped": sorted(section.gates.skip),
        "not_loaded": not_loaded,
        "forced": forced,
        "sources": sources,
    }


def gates_note(details: Any) -> str:
    """A short note for ``history``/``log`` when a promotion's gates were weakened ("")."""
    gates = details.get("gates") if isinstance(details, dict) else None
    if not isinstance(gates, dict):
        return ""
    notes = []
    if gates.get("validate") is False:
        notes.append("validators off")
    if gates.get("skipped"):
        notes.append(f"skipped {','.join(map(str, gates['skipped']))}")
    if gates.get("forced"):
        notes.append("forced")
    sources = gates.get("sources")
    if isinstance(sources, dict):
        env = sorted({str(s) for s in sources.values() if str(s).startswith("environment")})
        notes.extend(e.removeprefix("environment (").removesuffix(")") for e in env)
    return f"gates: {'; '.join(notes)}" if notes else ""
