"""Reading ``component.yaml``, the optional description a component carries with it."""

from __future__ import annotations

from pathlib import Path

from lockgate.contracts.refs import ComponentRef, check_name
from lockgate.contracts.source import ComponentSpec
from lockgate.errors import ConfigError
from lockgate.schema.structure import structure
from lockgate.schema.yamlfile import MAX_YAML_BYTES, YamlDocument, load_yaml_file, load_yaml_text

__all__ = ["SPEC_FILE", "parse_spec", "read_spec"]

SPEC_FILE = "component.yaml"


def read_spec(directory: Path, *, cache_dir: Path | None = None) -> ComponentSpec:
    """The spec in ``directory/component.yaml`` (empty when there is none).

    Every problem is a one-line :class:`~lockgate.errors.ConfigError` naming file and line.
    """
    spec_path = directory / SPEC_FILE
    if not spec_path.is_file():
        return ComponentSpec()
    return _structured(load_yaml_file(spec_path, cache_dir=cache_dir))


def parse_spec(raw: bytes, where: Path) -> ComponentSpec:
    """The spec in ``raw``, the bytes of a ``component.yaml`` (``where`` names it in
    errors), as :func:`read_spec` reads it from a file."""
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_YAML_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    return _structured(load_yaml_text(text, where))


def _structured(doc: YamlDocument) -> ComponentSpec:
    spec = structure(ComponentSpec, doc.data, (), lambda p: doc.where(p))
    for dep in spec.depends_on:
        if ":" in dep:
            ComponentRef.parse(dep)
        else:
            check_name("depends_on entry", dep)
    return spec
