"""The code attrs compiles for lockgate's record classes is kept across processes.

``lockgate._startup`` keeps it in one marshal file where importlib keeps lockgate's
bytecode; these tests point that at a private ``PYTHONPYCACHEPREFIX``, so they never touch
the checkout's own ``__pycache__``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A child process that imports the record-heavy modules and reports how many scripts
# attrs handed to the cache and how many of them it had to compile.
PROBE = """
import sys
import lockgate._startup as s
s._cache_attrs_code()
from attr import _make
wrapped = _make._compile_and_eval
seen = []
def spy(script, globs, locs=None, filename=""):
    kept = (s._code or {}).get(filename)
    seen.append(kept is not None and kept[0] == script)
    return wrapped(script, globs, locs, filename)
_make._compile_and_eval = spy
import lockgate.contracts.state, lockgate.contracts.models, lockgate.core.config
from lockgate.contracts.state import PointerChange
change = PointerChange("staging", "etl", "alice:etl", "a" * 64, None, 1, "t", "alice", "promote")
assert change.generation == 1 and change.component == "alice:etl"
print(len(seen), seen.count(False))
"""


def probe(prefix: Path, **env: str) -> tuple[int, int]:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ |= {"PYTHONPYCACHEPREFIX": str(prefix), **env}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    built, compiled = done.stdout.split()
    return int(built), int(compiled)


def cache_files(prefix: Path) -> list[Path]:
    return sorted(prefix.rglob("attrs-code.*.bin"))


def test_the_second_process_compiles_nothing_it_can_reuse(tmp_path: Path) -> None:
    built, compiled = probe(tmp_path)
    assert built > 20 and compiled == built  # nothing kept yet
    [kept] = cache_files(tmp_path)
    again, recompiled = probe(tmp_path)
    assert again == built
    assert recompiled <= 3, recompiled  # only classes with attrs' per-process hash salt
    assert cache_files(tmp_path) == [kept]


def test_a_damaged_cache_is_ignored_and_replaced(tmp_path: Path) -> None:
    probe(tmp_path)
    [kept] = cache_files(tmp_path)
    good = kept.read_bytes()
    kept.write_bytes(good[: len(good) // 2])  # cut short
    built, compiled = probe(tmp_path)
    assert compiled == built
    kept.write_bytes(b"not a cache at all")
    built, compiled = probe(tmp_path)
    assert compiled == built
    assert probe(tmp_path)[1] <= 3  # rewritten whole by the run before


def test_nothing_is_written_where_bytecode_is_not(tmp_path: Path) -> None:
    probe(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert cache_files(tmp_path) == []


def test_a_changed_script_under_the_same_name_is_compiled_again() -> None:
    import lockgate._startup as startup

    startup._cache_attrs_code()
    from attr import _make

    if startup._code is None or _make._compile_and_eval.__name__ != "compile_and_eval":
        pytest.skip("this attrs has no _compile_and_eval to wrap: nothing is cached")
    name = "<attrs generated methods tests.Changed>"
    first: dict[str, object] = {}
    _make._compile_and_eval("def f():\n    return 1\n", {}, first, name)
    second: dict[str, object] = {}
    _make._compile_and_eval("def f():\n    return 2\n", {}, second, name)
    assert first["f"]() == 1 and second["f"]() == 2  # type: ignore[operator]
    startup._code.pop(name, None)
