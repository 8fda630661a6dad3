"""Reading ``component.yaml``, the optional description a component carries with it."""

from __future__ import annotations

from pathlib import Path

from lockgate.core.contracts import ComponentSpec
from lockgate.core.refs import ComponentRef, check_name
from lockgate.core.structure import structure
from lockgate.core.yamlfile import load_yaml_file

__all__ = ["SPEC_FILE", "read_spec"]

SPEC_FILE = "component.yaml"


def read_spec(directory: Path, *, cache_dir: Path | None = None) -> ComponentSpec:
    """The spec in ``directory/component.yaml`` (empty when there is none).

    Every problem is a one-line :class:`~lockgate.errors.ConfigError` naming file and line.
    """
    spec_path = directory / SPEC_FILE
    if not spec_path.is_file():
        return ComponentSpec()
    doc = load_yaml_file(spec_path, cache_dir=cache_dir)
    spec = structure(ComponentSpec, doc.data, (), lambda p: doc.where(p))
    for dep in spec.depends_on:
        if ":" in dep:
            ComponentRef.parse(dep)
        else:
            check_name("depends_on entry", dep)
    return spec
