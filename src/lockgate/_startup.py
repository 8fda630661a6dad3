"""Start-up tricks: each one kept because it measured worth its weight, all of them here.

Every lockgate command is a new process, so what it spends before doing anything is part
of every figure in docs/performance.md. Measured in one run, side by side, medians
(2 cores, Python 3.11, bytecode caches warm; see docs/performance.md, "What each
start-up trick buys"):

- :func:`record` is ``attrs.frozen`` with shared ``__repr__``, ``__eq__`` and
  ``__hash__``: attrs writes and compiles every method of every class it builds, and a
  command imports some seventy. Building 70 frozen classes: 16 ms instead of 32.
- :func:`_cache_attrs_code` keeps the code attrs compiles for each class it builds
  across processes, in one marshal file beside lockgate's bytecode: compiling is 0.29
  of the 0.45 ms a class costs, and a command builds some 75. An unchanged restage of
  1,000 files: 112.5 ms of CPU instead of 122.9.
- :func:`scan_entry_points` reads ``entry_points.txt`` of every distribution on
  ``sys.path`` itself: ``importlib.metadata`` imports email, zipfile and csv and parses
  every METADATA file; a process that discovers the plugins took 72 ms instead of 94.
- :func:`collector_off` / :func:`collector_back` / :func:`collector_frozen`: kernel
  commands run with the cyclic garbage collector off (reference counting still frees
  everything; they create no cycles worth chasing) and freeze what is alive at exit, so
  the interpreter's last collection walks nothing. ``lockgate --version``: 53 ms instead
  of 60; an unchanged restage of 3,000 files: 121 ms instead of 139.
- :func:`lazy_exports`: ``import lockgate`` imports no module behind its public names
  until one is used, so ``lockgate --version`` and ``--help`` import nothing heavy.

Two more live where their data is, not here: each kernel command's module is imported
only when it runs (``KERNEL_COMMANDS`` in :mod:`lockgate.cli.main`, the command table
itself: a process importing one command module took 60.1 ms, all of them 62.8), and YAML
files are parsed through a cache keyed by their content (:mod:`lockgate.schema.yamlfile`:
PyYAML is not even imported when nothing changed).

And one in :mod:`lockgate.core.plugins`: pluggy's registration parser is overridden to
skip, by a dict lookup, the names of a plugin module that are not functions
(``_PluginManager``; registering the 14 builtin modules, which import dozens of names
from :mod:`lockgate.plugin` each: 1.0 ms instead of 2.6).

Two more in the kernel and the command line: a plugin that declares its hooks
(``lockgate.hooks``) is imported only when a command needs one of them
(:mod:`lockgate.core.plugins`; an unchanged restage imports 222 modules instead of 294),
and a table printed into a pipe is written without rich when rich would only pad it
(:mod:`lockgate.cli.output`).

Measured and dropped: pausing the collector around a scan (:func:`gc_paused`, 13.6 ms
with it and 13.1 without for 3,000 files with the collector on), kept only as the public helper
plugins may already call.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import os
import sys
from collections.abc import Callable, Iterator

# Nothing heavy at module level: the package's ``__init__`` and the console script import
# this module first, the script before it turns the collector off; attrs is imported by
# the first ``@record``.

__all__ = [
    "collector_back",
    "collector_frozen",
    "collector_off",
    "gc_paused",
    "lazy_exports",
    "lazy_names",
    "record",
    "scan_entry_points",
]

TYPE_CHECKING = False  # not typing's: see lockgate/__init__.py
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _C = TypeVar("_C", bound=type)

# --------------------------------------------------------------------------- record

if TYPE_CHECKING:
    from pathlib import Path

    from attrs import frozen as record
else:

    def record(maybe_cls: _C | None = None, /, **options: Any) -> Any:
        """``attrs.frozen`` (same options), with shared repr, eq and hash that behave as
        attrs' own: ``ClassName(field=value, ...)`` over the fields with ``repr=True``;
        equality and hashing over the fields with ``eq=True``, only between instances of
        the very same class. Type checkers see ``attrs.frozen`` itself."""
        import attrs

        _cache_attrs_code()
        if options.get("order") or "repr" in options or "eq" in options:
            return attrs.frozen(maybe_cls, **options)  # pragma: no cover - not used so

        def wrap(cls: _C) -> _C:
            built: Any = attrs.frozen(cls, repr=False, eq=False, **options)
            _share_methods(built)
            return built  # type: ignore[no-any-return]

        return wrap if maybe_cls is None else wrap(maybe_cls)


def _share_methods(cls: Any) -> None:
    import attrs

    fields = attrs.fields(cls)
    shown = tuple((f.name, f.repr) for f in fields if f.repr is not False)
    compared = [f.name for f in fields if f.eq]
    hashed = [f.name for f in fields if (f.hash if f.hash is not None else f.eq)]
    name = cls.__qualname__.rsplit(">.", 1)[-1]
    values = _getter(compared)
    hash_values = _getter(hashed)

    def __repr__(self: Any) -> str:
        parts = []
        for field, how in shown:
            value = getattr(self, field, attrs.NOTHING)
            parts.append(f"{field}={how(value) if callable(how) else repr(value)}")
        return f"{name}({', '.join(parts)})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(values(self) == values(other))

    def __hash__(self: Any) -> int:
        return hash((cls, hash_values(self)))

    for method in (__repr__, __eq__, __hash__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)


# --------------------------------------------------------------------------- attrs code

# attrs' file name of a script -> (script, code object), once the cache is installed
_code: dict[str, tuple[str, Any]] | None = None
_code_added = False


def _cache_attrs_code() -> None:
    """Keep the code attrs compiles for the classes it builds, across processes.

    attrs writes each class's ``__init__`` (and ``__setattr__``, …) as source and compiles
    it: about 0.3 ms of the 0.45 it takes to build a class, some 20 ms of every command.
    The code objects are kept in one marshal file beside lockgate's own bytecode (where
    ``importlib`` puts this module's ``.pyc``, so ``PYTHONPYCACHEPREFIX`` and
    ``PYTHONDONTWRITEBYTECODE`` are honoured), keyed by the
    file name attrs gives it (a script that differs from the one kept is compiled again,
    as after an upgrade of attrs; one with the hash salt attrs draws anew in every
    process is not kept); a file of another Python, or a damaged one, is ignored. Where
    attrs no longer has the function this wraps, nothing changes.
    """
    global _code
    if _code is not None:
        return
    from attr import _make

    original = getattr(_make, "_compile_and_eval", None)
    names = getattr(getattr(original, "__code__", None), "co_varnames", ())[:4]
    if names != ("script", "globs", "locs", "filename"):
        _code = {}
        return
    _code = _load_code()
    cache = _code

    def compile_and_eval(script: str, globs: Any, locs: Any = None, filename: str = "") -> None:
        global _code_added
        kept = cache.get(filename)
        if kept is not None and kept[0] == script:
            eval(kept[1], globs, locs)  # attrs' own generated code, as attrs itself does
            return
        code = compile(script, filename, "exec")
        if "def __hash__" not in script:  # its hash salt is new in every process
            cache[filename] = (script, code)
            if not _code_added:
                import atexit

                _code_added = True
                atexit.register(_save_code)
        eval(code, globs, locs)

    _make._compile_and_eval = compile_and_eval


def _code_path() -> Path | None:
    """Where ``importlib`` keeps this package's bytecode (not importing ``importlib.util``
    nor ``hashlib``, 4 ms each, nor asking attrs its version, which imports
    ``importlib.metadata``, 15 ms: another attrs writes other scripts, which are checked
    against the kept ones and compiled again)."""
    from pathlib import Path

    tag = getattr(sys.implementation, "cache_tag", None)  # None: no bytecode kept
    if tag is None:
        return None
    package = Path(os.path.abspath(__file__)).parent  # noqa: PTH100 - as importlib does
    if sys.pycache_prefix:
        base = Path(sys.pycache_prefix, *package.parts[1:])
    else:
        base = package / "__pycache__"
    return base / f"attrs-code.{tag}.bin"


def _header() -> bytes:
    return b"lockgate-attrs-code\0" + sys.version.encode() + b"\0"


def _load_code() -> dict[str, tuple[str, Any]]:
    import marshal

    path = _code_path()
    try:
        data = path.read_bytes() if path is not None else b""
    except OSError:
        return {}
    header = _header()
    if not data.startswith(header):
        return {}
    try:
        loaded = marshal.loads(data[len(header) :])
    except (ValueError, EOFError, TypeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _save_code() -> None:
    import marshal

    path = _code_path()
    if path is None or sys.dont_write_bytecode or not _code:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(_header() + marshal.dumps(_code))
        tmp.replace(path)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            tmp.unlink()


# --------------------------------------------------------------------------- entry points

_SUFFIXES = (".dist-info", ".egg-info")


def scan_entry_points(
    group: str, declarations: str | None = None
) -> list[tuple[str, str, str, str | None, str, str | None]]:
    """``(name, value, distribution, version, metadata directory, declaration)`` of every
    entry point in ``group`` of the distributions on ``sys.path``, as
    ``importlib.metadata.entry_points`` finds them in directories: wheels'
    ``NAME-VERSION.dist-info`` and setuptools' ``.egg-info`` (``NAME.egg-info`` of an
    in-place install, whose version is read from its ``PKG-INFO``, and
    ``NAME-VERSION[-pyX.Y].egg-info``). The first distribution of a name on ``sys.path``
    wins, as in importlib.metadata; distribution names are normalized (lower case, ``-``
    for ``_`` and ``.``). ``declaration`` is the value of the entry point of the same name
    in group ``declarations`` of the same distribution (read from the same file), or None."""
    found: list[tuple[str, str, str, str | None, str, str | None]] = []
    seen: set[str] = set()
    header = f"[{group}]"
    for entry in sys.path:
        directory = entry or "."
        try:
            names = os.listdir(directory)  # noqa: PTH208 - start-up path: str in, str out
        except OSError:
            continue  # a zip file or a missing directory: nothing installed there
        for dirname in sorted(names):
            if not dirname.endswith(_SUFFIXES):
                continue
            stem = dirname.rsplit(".", 1)[0]
            raw_name, _, rest = stem.partition("-")
            normalized = raw_name.lower().replace("_", "-").replace(".", "-")
            if not normalized or normalized in seen:
                continue
            seen.add(normalized)
            path = f"{directory}/{dirname}"
            text = _read(f"{path}/entry_points.txt")
            if text is None or header not in text:
                continue
            version = rest.partition("-")[0] or _version_of(path)
            declared: dict[str, str] = {}
            if declarations is not None and f"[{declarations}]" in text:
                declared = dict(_group_entries(text, f"[{declarations}]"))
            for name, value in _group_entries(text, header):
                found.append((name, value, normalized, version, path, declared.get(name)))
    return found


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def _version_of(path: str) -> str | None:
    """The ``Version:`` header of an ``.egg-info``'s ``PKG-INFO`` (or a ``METADATA``)."""
    for name in ("PKG-INFO", "METADATA"):
        text = _read(f"{path}/{name}")
        if text is None:
            continue
        for line in text.splitlines():
            if not line:
                break  # the headers end at the first blank line
            if line.startswith("Version:"):
                return line[len("Version:") :].strip() or None
    return None


def _group_entries(text: str, header: str) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    in_group = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            in_group = line == header
            continue
        if in_group and "=" in line:
            name, _, value = line.partition("=")
            entries.append((name.strip(), value.strip()))
    return entries


# --------------------------------------------------------------------------- the collector


def collector_off() -> bool:
    """Turn the cyclic garbage collector off; whether it was on."""
    was_on = gc.isenabled()
    gc.disable()
    return was_on


def collector_back(was_on: bool) -> None:
    """Turn the collector back on if it was on (a command that may run for hours, such as
    a plugin's ``watch``, or lockgate used in-process)."""
    if was_on:
        gc.enable()


def collector_frozen() -> None:
    """The process ends now: spare the interpreter's last full collection a walk over
    every object still alive (tens of ms after a large scan)."""
    gc.freeze()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block. Nesting is fine: only the block that
    found it enabled turns it back on (so with threads, a pause ends when the block that
    began it ends)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --------------------------------------------------------------------------- lazy names


def lazy_names(
    namespace: dict[str, Any], table: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` (PEP 562) for a module whose public names are
    imported on first use: ``table`` maps each name to the module that defines it
    (``lockgate.plugin``, ``lockgate.testing``). A name, once imported, is kept in the
    module's namespace, so it is looked up once."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", table))

    return __getattr__, __dir__


def moved_names(
    namespace: dict[str, Any], modules: tuple[str, ...], instead: str
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a module whose names moved to ``modules``: a
    name is found in the first of them that has it, with a :class:`DeprecationWarning`
    saying to import it from ``instead``."""

    def __getattr__(name: str) -> Any:
        import importlib
        import warnings

        for module in modules:
            found = importlib.import_module(module)
            if not name.startswith("_") and hasattr(found, name):
                warnings.warn(
                    f"{namespace['__name__']}.{name} moved: import it from {instead}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(found, name)
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        import importlib

        return sorted(
            {n for m in modules for n in dir(importlib.import_module(m)) if not n.startswith("_")}
        )

    return __getattr__, __dir__


def lazy_exports(
    namespace: dict[str, Any],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """:func:`lazy_names` for a package whose public names are its ``if TYPE_CHECKING:``
    block of ``from module import Name as Name`` lines: that block is the one list of
    them (type checkers read it; this reads it from the source on first use),
    ``__all__`` included, so a name is written once.
    """
    table: dict[str, str] = {}
    lookup, _ = lazy_names(namespace, table)

    def exports() -> dict[str, str]:
        if not table:
            table.update(_type_checking_imports(namespace))
        return table

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            value = sorted([*exports(), *_dunder_exports(namespace)])
            namespace[name] = value
            return value
        exports()
        return lookup(name)

    def __dir__() -> list[str]:
        return sorted({*exports(), *_dunder_exports(namespace), "__all__"})

    return __getattr__, __dir__


def _dunder_exports(namespace: dict[str, Any]) -> list[str]:
    return [n for n in ("__version__",) if n in namespace]


def _type_checking_imports(namespace: dict[str, Any]) -> dict[str, str]:
    """``{name: module}`` from the ``if TYPE_CHECKING:`` block's ``from module import
    Name as Name`` lines. Read with a regular expression rather than :mod:`ast`, whose
    import alone costs more than the rest of ``import lockgate``."""
    import re

    try:
        with open(namespace["__file__"], encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError, KeyError):
        # No source file beside the module (a zip, a frozen application): its loader's.
        loader = namespace["__spec__"].loader
        text = loader.get_source(namespace["__name__"]) or ""
    start = text.index("\nif TYPE_CHECKING:\n") + len("\nif TYPE_CHECKING:\n")
    end = re.compile(r"^\S", re.MULTILINE).search(text, start)
    block = text[start : end.start() if end else len(text)]
    table: dict[str, str] = {}
    for statement in re.split(r"^\s+from ", block, flags=re.MULTILINE)[1:]:
        module, _, names = statement.partition(" import ")
        table.update({alias: module for _, alias in re.findall(r"(\w+) as (\w+)", names)})
    return table
