"""Read a YAML file safely, keeping the line of every key and refusing duplicate keys.

PyYAML's safe loader silently keeps the last of two equal keys and forgets where each
value came from; configuration errors must name the line, so this walks the composed node
tree itself. Only the safe loader's constructors are used, the file size is capped, and
the number of nodes (which aliases can multiply) is capped too.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.core.records import record
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    import yaml

__all__ = ["MAX_NODES", "MAX_YAML_BYTES", "YamlDocument", "load_yaml_file", "load_yaml_text"]

MAX_YAML_BYTES = 1024 * 1024
MAX_NODES = 100_000
_RACY_WINDOW_NS = 50_000_000

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

    With ``cache_dir``, the parsed document is kept there keyed by the file's stat (like a
    ``.pyc``), so an unchanged file loads without importing or running the YAML parser —
    a noticeable part of every command's start-up.
    """
    cached = _cache_get(path, cache_dir) if cache_dir is not None else None
    if cached is not None:
        return cached
    doc = _load_yaml_file(path, max_bytes)
    if cache_dir is not None:
        _cache_put(path, cache_dir, doc)
    return doc


def _cache_file(path: Path, cache_dir: Path) -> tuple[str, tuple[int, ...]] | None:
    from lockgate.core.manifest import digest_bytes

    try:
        st = path.stat()
    except OSError:
        return None
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    name = digest_bytes(os.fsencode(path.resolve()))[:32]
    return f"{cache_dir}/{name}", key


def _cache_get(path: Path, cache_dir: Path) -> YamlDocument | None:
    located = _cache_file(path, cache_dir)
    if located is None:
        return None
    file, key = located
    try:
        with open(file, "rb") as fh:
            written_ns = os.fstat(fh.fileno()).st_mtime_ns
            stored_key, data, lines = marshal.loads(fh.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    # Like the stat cache: a file changed within the timestamp granularity of the cache
    # write could look unchanged, so it is parsed again.
    if tuple(stored_key) != key or max(key[1], key[2]) >= written_ns - _RACY_WINDOW_NS:
        return None
    return YamlDocument(data=data, lines=lines, path=path)


def _cache_put(path: Path, cache_dir: Path, doc: YamlDocument) -> None:
    located = _cache_file(path, cache_dir)
    if located is None:
        return
    file, key = located
    try:
        blob = marshal.dumps((key, doc.data, doc.lines))
    except ValueError:
        return  # a value marshal cannot hold (a YAML timestamp, say): just not cached
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{file}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(file)
    except OSError:
        pass  # a read-only project still works, only without the cache


def _load_yaml_file(path: Path, max_bytes: int) -> YamlDocument:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(
                f"{path}: the file is {size} bytes, more than the {max_bytes}-byte limit "
                "for configuration; keep large data out of it"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
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
