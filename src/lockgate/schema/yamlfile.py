"""Read a YAML file safely, keeping the line of every key and refusing duplicate keys.

PyYAML's safe loader silently keeps the last of two equal keys and forgets where each
value came from; configuration errors must name the line, so this walks the composed node
tree itself. Only the safe loader's constructors are used, the file size is capped, and
the number of nodes (which aliases can multiply) is capped too.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.contracts.manifest import digest_bytes
from lockgate.contracts.records import record
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_YAML_BYTES",
    "YamlDocument",
    "load_yaml_file",
    "load_yaml_text",
]

MAX_YAML_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 100
CACHE_ENTRIES = 1024
"""Parsed YAML files kept in a cache directory before the older half is dropped."""

KeyPath = tuple[str, ...]
_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@record
class YamlDocument:
    """Plain data from a YAML file plus the 1-based line of every key path in it."""

    data: Any
    lines: dict[KeyPath, int]
    path: Path

    def where(self, key_path: KeyPath) -> str:
        """``file:line`` of the key path, or of its nearest ancestor that has a line."""
        probe = key_path
        while probe:
            if probe in self.lines:
                return f"{self.path}:{self.lines[probe]}"
            probe = probe[:-1]
        return str(self.path)


def load_yaml_file(
    path: Path, *, max_bytes: int = MAX_YAML_BYTES, cache_dir: Path | None = None
) -> YamlDocument:
    """Load ``path``; every problem is a one-line :class:`ConfigError` naming file and line.

    With ``cache_dir``, the parsed document is kept there keyed by the digest of the
    file's bytes, so an unchanged file loads without importing or running the YAML parser
    — a noticeable part of every command's start-up. Keyed by content, not by stat, a
    cache entry can never vouch for bytes it was not made from (no racy window), and one
    written right after the file (as ``lockgate init`` does) serves at once.
    """
    raw = _read(path, max_bytes)
    if cache_dir is None:
        return _parse(raw, path)

    digest = digest_bytes(raw)
    # Named by content alone: the parse depends on nothing else, so a moved or copied
    # project, or two files with the same text, share an entry.
    file = f"{cache_dir}/{digest[:32]}"
    cached = _cache_get(file, digest, path)
    if cached is not None:
        return cached
    doc = _parse(raw, path)
    _cache_put(file, cache_dir, digest, doc)
    return doc


def _cache_get(file: str, digest: str, path: Path) -> YamlDocument | None:
    try:
        with open(file, "rb") as fh:
            stored, data, lines = marshal.loads(fh.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if stored != digest or not isinstance(lines, dict):
        return None
    return YamlDocument(data=data, lines=lines, path=path)


def _cache_put(file: str, cache_dir: Path, digest: str, doc: YamlDocument) -> None:
    try:
        blob = marshal.dumps((digest, doc.data, doc.lines))
    except ValueError:
        return  # a value marshal cannot hold (a YAML timestamp, say): just not cached
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{file}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(file)
        _prune(cache_dir)
    except OSError:
        pass  # a read-only project still works, only without the cache


def _prune(cache_dir: Path) -> None:
    """Every edit adds an entry: past :data:`CACHE_ENTRIES`, drop the older half."""
    names = os.listdir(cache_dir)
    if len(names) <= CACHE_ENTRIES:
        return
    aged = []
    for name in names:
        with contextlib.suppress(OSError):
            aged.append((os.stat(f"{cache_dir}/{name}").st_mtime_ns, name))
    for _, name in sorted(aged)[: len(aged) - CACHE_ENTRIES // 2]:
        with contextlib.suppress(OSError):
            os.unlink(f"{cache_dir}/{name}")


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        size = path.stat().st_size
        raise ConfigError(
            f"{path}: the file is {size} bytes, more than the {max_bytes}-byte limit "
            "for configuration; keep large data out of it"
        )
    return raw


def _parse(raw: bytes, path: Path) -> YamlDocument:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    return load_yaml_text(text, path)


def load_yaml_text(text: str, path: Path) -> YamlDocument:
    """Parse ``text`` (as if read from ``path``) into a :class:`YamlDocument`."""
    import yaml

    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        budget = [MAX_NODES]
        data = _convert(loader, node, (), lines, path, budget) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    except RecursionError as exc:  # the parser's own recursion, on absurd nesting
        raise ConfigError(f"{path}: nested too deeply; simplify the file") from exc
    finally:
        loader.dispose()
    return YamlDocument(data=data, lines=lines, path=path)


def _loader_class() -> type[yaml.SafeLoader]:
    """libyaml's safe loader when PyYAML was built with it (15x faster), else PyYAML's."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _convert(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    key_path: KeyPath,
    lines: dict[KeyPath, int],
    path: Path,
    budget: list[int],
) -> Any:
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"{path}:{node.start_mark.line + 1}: more than {MAX_NODES} YAML nodes "
            "(aliases expand); simplify the file"
        )
    if len(key_path) > MAX_DEPTH:
        # Also what a recursive alias (``x: &a [*a]``) becomes: a value inside itself.
        raise ConfigError(
            f"{path}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep "
            "(or an alias refers to a value that contains it); simplify the file"
        )
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        # The walk below builds plain dicts and lists itself, so a tag on a collection
        # (!!python/object, !!set, ...) would otherwise be silently dropped.
        raise ConfigError(
            f"{path}:{node.start_mark.line + 1}: unsupported YAML tag {node.tag!r}; "
            "use plain mappings and lists"
        )
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<) the way SafeLoader does
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise ConfigError(
                    f"{path}:{line}: key {key!r} is not a string; quote it or rename it"
                )
            child = (*key_path, key)
            if key in result:
                dotted = ".".join(child)
                raise ConfigError(
                    f"{path}:{line}: duplicate key '{dotted}' (first at line {lines[child]}); "
                    "remove one of them"
                )
            lines[child] = line
            result[key] = _convert(loader, value_node, child, lines, path, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*key_path, str(index))
            lines.setdefault(child, item.start_mark.line + 1)
            items.append(_convert(loader, item, child, lines, path, budget))
        return items
    return loader.construct_object(node, deep=True)
