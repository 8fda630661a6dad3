"""Pipelines as objects: ``pipelines/<name>.yaml`` read, and planned against a stage.

A pipeline names components that climb the ladder together (``WS:ID`` or a bare ``ID``),
the edges between them (``depends_on`` in the file, and each member's own
``component.yaml`` dependencies on other members) and options::

    description: the training pipeline
    components: [alice:prep, alice:train, bob:workflow]
    depends_on:
      alice:train: [alice:prep]
    options:
      fail_fast: true          # false: every gate problem is reported before refusing
      parallel_execution: false
      timeout: 300             # seconds a member's switch may take (0: no limit)
      retry_count: 0           # retries of a switch a target marked transient
    steps:                     # per-member overrides of timeout and retry_count
      bob:workflow: {retry_count: 2}

The file is read like ``lockgate.yaml``: every problem is one line naming file, line and,
for a misspelt key or member, the closest valid one. :func:`plan_pipeline` resolves the
members, orders them in topological levels (``graphlib``) and says what each step will do;
a cycle is refused naming the whole cycle.
"""

from __future__ import annotations

import graphlib
from pathlib import Path
from typing import Any

import attrs

from lockgate.contracts.manifest import digest_bytes
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef, check_name, short
from lockgate.contracts.state import EventFilter
from lockgate.core.config import yaml_cache_dir
from lockgate.core.session import Session
from lockgate.errors import ConfigError, InputError, LockgateError, NotFoundError, RefusedError
from lockgate.operations.pipeline_report import PIPELINES_DIR, defined_pipelines
from lockgate.operations.promote import Promotion
from lockgate.operations.read_memo import component_records
from lockgate.operations.revisions import revision_spec
from lockgate.schema.structure import did_you_mean, structure
from lockgate.schema.yamlfile import YamlDocument, load_yaml_file, load_yaml_text

__all__ = [
    "PIPELINES_DIR",
    "PipelineOptions",
    "PipelinePlan",
    "PipelineSpec",
    "PlanStep",
    "StepOptions",
    "defined_pipelines",
    "load_pipeline",
    "plan_pipeline",
    "write_pipeline",
]


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be 0 or more, not {value}")


@record
class StepOptions:
    """``steps.<member>:`` — one member's overrides (None: the pipeline's option)."""

    timeout: float | None = None
    retry_count: int | None = None


@record
class PipelineOptions:
    """``options:`` — how a run goes."""

    fail_fast: bool = True
    parallel_execution: bool = False
    timeout: float = attrs.field(default=0.0, validator=_non_negative)
    retry_count: int = attrs.field(default=0, validator=_non_negative)


@record
class PipelineSpec:
    """A pipeline as its file says (members as written)."""

    components: list[str] = attrs.field(factory=list)
    depends_on: dict[str, list[str]] = attrs.field(factory=dict)
    options: PipelineOptions = attrs.field(factory=PipelineOptions)
    steps: dict[str, StepOptions] = attrs.field(factory=dict)
    description: str | None = None


@record
class PlanStep:
    """One member of a planned run: what it will do."""

    component: str
    component_id: str
    level: int
    depends_on: tuple[str, ...]
    action: str  # "promote" or "current" (already holds the revision)
    revision: str
    previous_revision: str | None
    generation: int
    timeout: float
    retry_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "component_id": self.component_id,
            "level": self.level,
            "depends_on": list(self.depends_on),
            "action": self.action,
            "revision": self.revision,
            "previous_revision": self.previous_revision,
            "timeout": self.timeout,
            "retry_count": self.retry_count,
        }

    def describe(self) -> str:
        old = short(self.previous_revision) if self.previous_revision else "nothing"
        if self.action == "current":
            return f"{self.component}: {short(self.revision)} is already current"
        return f"{self.component}: validate, promote {short(self.revision)} (from {old})"


@record
class PipelinePlan:
    """What a run of a pipeline into a stage will do, level by level."""

    name: str
    stage: str
    digest: str
    options: PipelineOptions
    steps: tuple[PlanStep, ...]

    @property
    def levels(self) -> list[list[PlanStep]]:
        top = max((s.level for s in self.steps), default=-1)
        return [[s for s in self.steps if s.level == n] for n in range(top + 1)]

    @property
    def changing(self) -> list[PlanStep]:
        return [s for s in self.steps if s.action != "current"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.name,
            "stage": self.stage,
            "definition": self.digest,
            "options": attrs.asdict(self.options),
            "levels": [[s.component for s in level] for level in self.levels],
            "steps": [s.to_dict() for s in self.steps],
        }


def pipeline_path(root: Path, name: str) -> Path:
    check_name("pipeline name", name)
    return root / PIPELINES_DIR / f"{name}.yaml"


def load_pipeline(
    root: Path | None, name: str, cache_dir: Path | None = None
) -> tuple[PipelineSpec, str]:
    """The pipeline ``name`` and the digest of its file; ConfigError naming file:line.

    ``cache_dir``: the YAML parse cache keyed by content (as for ``lockgate.yaml``), so a
    large unchanged pipeline file is not parsed again."""
    path = pipeline_path(root or Path(), name)
    if root is None or not path.is_file():
        known = defined_pipelines(root)
        hint = did_you_mean(name, known, "defined pipelines") if known else ""
        raise NotFoundError(f"no pipeline '{name}' ({PIPELINES_DIR}/{name}.yaml){hint}")
    digest = digest_bytes(path.read_bytes())
    spec = _SPECS.get((str(path), digest))
    if spec is None:
        spec = _checked(load_yaml_file(path, cache_dir=cache_dir))
        if len(_SPECS) >= 16:
            _SPECS.clear()
        _SPECS[(str(path), digest)] = spec
    return spec, digest


# Checked pipelines by file and content digest: a process that plans again (a server,
# the Python API, a watcher) does not parse and check an unchanged file again.
_SPECS: dict[tuple[str, str], PipelineSpec] = {}


def _checked(doc: YamlDocument) -> PipelineSpec:
    """The pipeline a parsed file defines, every member and edge checked."""
    spec = structure(PipelineSpec, doc.data, (), doc.where)
    if not spec.components:
        raise ConfigError(f"{doc.where(('components',))}: components: name at least one member")
    seen: set[str] = set()
    for index, member in enumerate(spec.components):
        where = doc.where(("components", str(index)))
        _check_member(member, where)
        if member in seen:
            raise ConfigError(f"{where}: components: '{member}' is listed twice")
        seen.add(member)
    for key, deps in spec.depends_on.items():
        for member in (key, *deps):
            if member not in seen:
                raise ConfigError(
                    f"{doc.where(('depends_on', key))}: depends_on: '{member}' is not a "
                    f"member of the pipeline{did_you_mean(member, sorted(seen), 'members')}"
                )
    for key in spec.steps:
        if key not in seen:
            raise ConfigError(
                f"{doc.where(('steps', key))}: steps: '{key}' is not a member of the "
                f"pipeline{did_you_mean(key, sorted(seen), 'members')}"
            )
    return spec


def _check_member(member: str, where: str) -> None:
    try:
        if ":" in member:
            ComponentRef.parse(member)
        else:
            check_name("component id", member)
    except InputError as exc:
        raise ConfigError(f"{where}: components: {exc.message}") from None


def write_pipeline(
    root: Path,
    name: str,
    components: list[str],
    depends_on: dict[str, list[str]] | None = None,
    options: dict[str, Any] | None = None,
) -> Path:
    """Write ``pipelines/<name>.yaml`` (replacing it), checked by reading it back."""
    import yaml

    path = pipeline_path(root, name)
    data: dict[str, Any] = {"components": list(components)}
    if depends_on:
        data["depends_on"] = {k: list(v) for k, v in depends_on.items()}
    if options:
        data["options"] = dict(options)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False)
    _checked(load_yaml_text(text, path))  # refused before the file is touched
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


# --------------------------------------------------------------------------- planning


def plan_pipeline(session: Session, name: str, stage: str) -> PipelinePlan:
    """What promoting pipeline ``name`` into ``stage`` will do; refuses a cycle."""
    state_dir = session.state_dir
    cache = yaml_cache_dir(state_dir) if state_dir.is_dir() else None
    spec, digest = load_pipeline(session.project.root, name, cache)
    stage = session.check_stage(stage)
    promotion = Promotion(session)
    refs = {member: promotion.resolve(member) for member in spec.components}
    by_id: dict[str, str] = {}
    for member, ref in refs.items():
        if ref.component_id in by_id:  # a stage holds one entry per component id
            raise RefusedError(
                f"pipeline {name}: '{member}' names the stage entry "
                f"{ref.component_id} that {by_id[ref.component_id]} names too; list it once"
            )
        by_id[ref.component_id] = str(ref)
    records = component_records(session, [str(ref) for ref in refs.values()])
    for ref in refs.values():
        record = records.get(str(ref))
        if record is not None and record.status is ComponentStatus.RETIRED:
            _refuse_retired(session, name, ref)
    first = stage == session.stage_names[0]
    candidates: dict[str, tuple[str, ComponentRef]] = {}
    for member, ref in refs.items():
        record = records.get(str(ref))
        if first and record is not None and record.latest_revision is not None:
            candidates[member] = (record.latest_revision, ref)  # read once, above
            continue
        try:
            candidates[member] = promotion._candidate(ref, stage, None)
        except LockgateError as exc:
            raise RefusedError(f"pipeline {name}: {ref}: {exc.message}") from None
    graph: dict[str, set[str]] = {str(ref): set() for ref in refs.values()}
    for member, deps in spec.depends_on.items():
        graph[str(refs[member])].update(str(refs[d]) for d in deps)
    for member, ref in refs.items():
        graph[str(ref)].update(_spec_edges(session, candidates[member][0], by_id))
        graph[str(ref)].discard(str(ref))
    levels = _levels(name, graph)
    steps = []
    state = session.state()
    for member, ref in refs.items():
        revision = candidates[member][0]
        pointer = state.pointer(stage, ref.component_id)
        current = pointer.revision if pointer else None
        override = spec.steps.get(member, StepOptions())
        steps.append(
            PlanStep(
                component=str(ref),
                component_id=ref.component_id,
                level=levels[str(ref)],
                depends_on=tuple(sorted(graph[str(ref)])),
                action="current" if current == revision else "promote",
                revision=revision,
                previous_revision=current,
                generation=pointer.generation if pointer else 0,
                timeout=spec.options.timeout if override.timeout is None else override.timeout,
                retry_count=(
                    spec.options.retry_count
                    if override.retry_count is None
                    else override.retry_count
                ),
            )
        )
    steps.sort(key=lambda s: (s.level, s.component))
    return PipelinePlan(name, stage, digest, spec.options, tuple(steps))


def _refuse_retired(session: Session, name: str, ref: ComponentRef) -> None:
    """Refuse a member ``lockgate remove`` retired, saying who retired it, when and why."""
    state = session.state()
    events = state.events(
        EventFilter(component=str(ref), action="retire", newest_first=True, limit=1)
    )
    how = ""
    if events:
        event = events[0]
        why = f": {event.reason}" if event.reason else ""
        how = f" (by {event.actor} at {event.at}{why})"
    raise RefusedError(
        f"pipeline {name}: member {ref} is retired{how}; take it out of "
        f"{PIPELINES_DIR}/{name}.yaml, or bring it back with 'lockgate stage {ref}'"
    )


def _spec_edges(session: Session, revision: str, by_id: dict[str, str]) -> set[str]:
    """The members ``revision``'s ``component.yaml`` depends on."""
    edges = set()
    for dep in revision_spec(session, revision).depends_on:
        if ":" in dep:
            if dep in by_id.values():
                edges.add(dep)
        elif dep in by_id:
            edges.add(by_id[dep])
    return edges


def _levels(name: str, graph: dict[str, set[str]]) -> dict[str, int]:
    """Each member's topological level (0: depends on no member); a cycle refused whole."""
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        raise RefusedError(
            f"pipeline {name} has a dependency cycle: {' → '.join(reversed(cycle))}; "
            "remove one of its depends_on edges"
        ) from None
    levels: dict[str, int] = {}
    level = 0
    while sorter.is_active():
        ready = sorter.get_ready()
        for node in ready:
            levels[node] = level
        sorter.done(*ready)
        level += 1
    return levels
