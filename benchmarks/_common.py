"""Helpers shared by the benchmarks in this directory (not a benchmark itself).

The benchmarks run as scripts (``.venv/bin/python benchmarks/staging.py``), so Python puts
this directory first on ``sys.path`` and they import this module as ``_common``.

What is here: the subprocess environment every lockgate process runs with
(:func:`environment`), running and timing whole processes (:func:`run`,
:func:`timed_process`), deterministic file trees (:class:`RandomTree`), the
conditioning and bookkeeping of long runs (:func:`prefill`, :func:`pin_sources`,
:class:`RunConditions`), timed runs with their medians and percentiles (:class:`Timings`),
ratio targets (:class:`Target`) and plain-text tables (:func:`print_table`); the peers'
tools, installed by the benchmarks themselves into ``.bench-tools/`` or from Debian's
packages (:func:`pip_tool`, :func:`debian_tool`), and copies of lockgate's sources to
measure two of them side by side (:func:`copy_source`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

BIN = Path(sys.executable).parent  # the virtualenv's bin/, unresolved (keep the venv)
REPOSITORY = Path(__file__).resolve().parent.parent
# Peers' tools the benchmarks install themselves (git-ignored; never by `make test`).
TOOLS_DIR = REPOSITORY / ".bench-tools"
LOCKGATE = str(BIN / "lockgate")
MiB = 1 << 20
GiB = 1 << 30

# Variables that would make processes write bytecode elsewhere, or not at all.
BYTECODE_VARIABLES = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
# git ignores the user's and the system's configuration, and commits without asking. It
# also starts no automatic housekeeping: with gc.auto at its default, a commit of more
# than 6,700 loose objects (tree (a) of the staging benchmark has 10,000) starts
# `git gc --auto` detached in the background, which then packs objects on the CPUs while
# the next commands are timed (it cost the next command about 300 ms).
GIT_ENVIRONMENT = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "gc.auto",
    "GIT_CONFIG_VALUE_0": "0",
    "GIT_CONFIG_KEY_1": "maintenance.auto",
    "GIT_CONFIG_VALUE_1": "false",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


# --------------------------------------------------------------------------- processes


def inherited_environment(drop: Collection[str] = ()) -> dict[str, str]:
    """This process's environment without any ``LOCKGATE*`` variable or a name in ``drop``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE") and k not in drop}


def environment(pycache: Path, *, git: bool = False, drop: Collection[str] = ()) -> dict[str, str]:
    """The environment of every process a benchmark starts.

    The inherited one minus ``LOCKGATE*``, the bytecode settings and ``drop``; plus
    ``PYTHONPYCACHEPREFIX=pycache`` (bytecode is cached there, warm after a warm-up, even
    where PYTHONDONTWRITEBYTECODE was set, and nothing is written to the checkout) and
    ``LOCKGATE_DISABLE_PLUGINS`` naming every example plugin of ``example_plugins/`` (see
    :func:`example_plugins`); with ``git``, :data:`GIT_ENVIRONMENT` too.
    """
    env = inherited_environment({*BYTECODE_VARIABLES, *drop})
    env |= {
        "PYTHONPYCACHEPREFIX": str(pycache),
        "LOCKGATE_DISABLE_PLUGINS": ",".join(example_plugins()),
    }
    if git:
        env |= GIT_ENVIRONMENT
    return env


def example_plugins() -> list[str]:
    """The plugin names of the distributions under ``example_plugins/`` and ``plugins/``
    (the examples and the first-party backends such as lockgate-postgres).

    ``make`` installs them into the dev virtualenv, so every lockgate process would load
    them; the benchmarks measure lockgate with its builtin plugins only (and sources from
    before a distribution existed could not load it at all).
    """
    names = {"teamdefaults"}
    for pyproject in [
        *REPOSITORY.glob("example_plugins/*/pyproject.toml"),
        *REPOSITORY.glob("plugins/*/pyproject.toml"),
    ]:
        names.update(entry_points(pyproject).get("lockgate", {}))
    return sorted(names)


def run(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, ok: int = 0) -> str:
    """Run untimed and return stdout; an exit code outside 0..``ok`` (or death by a signal)
    stops the benchmark."""
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if not 0 <= proc.returncode <= ok:
        sys.exit(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def timed_process(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, *, sync: bool = True
) -> tuple[float, str]:
    """The wall time of one process in ms, and its stdout; any non-zero exit stops the
    benchmark. With ``sync``, dirty pages are flushed first (``os.sync()``, untimed)."""
    if sync:
        os.sync()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return elapsed, proc.stdout


def expect(what: str, ok: bool, detail: object) -> None:
    """Stop the benchmark unless ``ok``: a measurement that did not do its work is void."""
    if not ok:
        sys.exit(f"{what}: unexpected result: {str(detail).strip()}")


# --------------------------------------------------------------------------- file trees


@dataclass(frozen=True)
class RandomTree:
    """``files`` files of ``size`` bytes in ``dirs`` directories, their content
    deterministic pseudo-random (incompressible) from ``seed``."""

    name: str
    files: int
    size: int
    dirs: int
    seed: int
    digits: ClassVar[int] = 4  # the width of the number in a file's name

    def generate(self, dest: Path) -> list[Path]:
        """Write ``files // dirs`` files into each of ``dest/d000``, ``dest/d001``, ...,
        named ``f0000.bin`` on; return their paths, in the order written."""
        rng = random.Random(self.seed)
        paths = []
        for d in range(self.dirs):
            directory = dest / f"d{d:03d}"
            directory.mkdir(parents=True)
            for f in range(self.files // self.dirs):
                path = directory / f"f{f:0{self.digits}d}.bin"
                path.write_bytes(rng.randbytes(self.size))
                paths.append(path)
        return paths


def size_label(size: int) -> str:
    """``1 MiB``, ``4 KiB``: a file size in whole MiB from 1 MiB up, else in whole KiB."""
    return f"{size >> 20} MiB" if size >= MiB else f"{size >> 10} KiB"


# --------------------------------------------------------------------------- run conditions


def mem_free() -> int | None:
    """``MemFree`` from /proc/meminfo in bytes (None where there is no /proc/meminfo)."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemFree:"):
            return int(line.split()[1]) * 1024
    return None


def prefill(ballast: Path) -> tuple[int, int] | None:
    """Fill free memory with clean page cache; return MemFree before and after.

    On this kind of VM, the first use of a guest page that is free (never used, or
    handed back to the host after a deletion freed it) costs about 3 s per GiB in the
    kernel, so any command that writes a GiB takes 2-5x longer until the page cache has
    filled RAM, and how much longer depends on what ran before. Reading a sparse file as
    large as free memory (no disk space used) fills the page cache with clean pages that
    later writes reclaim cheaply: the steady state of a machine that has been up a while.
    Nothing is dropped from the page cache; the ballast is only ever read. Other
    processes freeing memory during the run undo part of this, so
    :meth:`RunConditions.top_up` fills it again (with a new ballast file) whenever more
    than 1 GiB is free again.
    """
    before = mem_free()
    if before is None:
        return None
    with open(ballast, "wb") as fh:
        fh.truncate(before + GiB)
    fd = os.open(ballast, os.O_RDONLY)
    try:
        buf = bytearray(8 << 20)
        while os.readv(fd, [buf]):
            pass
    finally:
        os.close(fd)
    return before, mem_free() or 0


def package_dir() -> Path:
    """Where ``import lockgate`` finds the package (without importing it)."""
    spec = importlib.util.find_spec("lockgate")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("lockgate is not importable: run with the project's .venv/bin/python")
    return Path(next(iter(spec.submodule_search_locations)))


def source_fingerprint(package: Path) -> str:
    """A digest of the package's sources, to notice edits during a run."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def pin_sources(package: Path, root: Path, env: dict[str, str]) -> None:
    """Copy lockgate's sources into ``root`` and import them from there, in here and in
    every process started with ``env``, so edits made to the checkout during the run are
    not mixed in."""
    dest = root / "pinned"
    shutil.copytree(package, dest / "lockgate", ignore=shutil.ignore_patterns("__pycache__"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dest), env.get("PYTHONPATH")]))
    sys.path.insert(0, str(dest))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``0.52 0.40 0.31``."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def load_line(start: str, end: str) -> str:
    return f"load average (1/5/15 min): {start} at the start, {end} at the end"


def python_and_cores() -> str:
    """``Python 3.12.3, 2 cores``: for the header of a report."""
    return f"Python {platform.python_version()}, {os.cpu_count()} cores"


def machine_json() -> dict[str, object]:
    """The same for a JSON report: ``cpus`` and ``python``."""
    return {"cpus": os.cpu_count(), "python": platform.python_version()}


def add_condition_options(parser: argparse.ArgumentParser, *, prefill: bool = True) -> None:
    """``--pin-sources`` (see :func:`pin_sources`) and, with ``prefill``, ``--no-prefill``
    (see :func:`prefill`): the options of :class:`RunConditions`."""
    if prefill:
        parser.add_argument(
            "--no-prefill",
            action="store_true",
            help="do not fill free memory with page cache first",
        )
    parser.add_argument(
        "--pin-sources",
        action="store_true",
        help="measure a copy of lockgate's sources made at the start (for a checkout that "
        "is being edited during the run)",
    )


class RunConditions:
    """What can skew a long run, noted at its start and at its end.

    The load average; a fingerprint of lockgate's sources, to notice edits during the run
    (or, with ``pin``, a copy of them made now that the run uses instead, see
    :func:`pin_sources`); and, with ``prefill``, the page-cache prefills (see
    :func:`prefill`; :meth:`top_up` does them).
    """

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        *,
        prefill: bool,
        pin: bool,
        compared: Sequence[SourceCopy] = (),
    ) -> None:
        self.root = root
        self.prefill = prefill
        self.pinned = pin
        self.compared = compared  # copies measured instead of the checkout
        self.package = package_dir()
        self.start_load, self.start_sources = load_average(), source_fingerprint(self.package)
        self.end_load = self.end_sources = ""
        self.fills: list[tuple[int, int]] = []  # MemFree before and after, per prefill
        if pin:
            pin_sources(self.package, root, env)

    def top_up(self) -> None:
        """Prefill the page cache the first time, then whenever more than 1 GiB is free."""
        free = mem_free()
        if not self.prefill or free is None or (self.fills and free < GiB):
            return
        print(f"filling {free / GiB:.1f} GiB of free memory ...", file=sys.stderr)
        filled = prefill(self.root / f"ballast-{len(self.fills)}")
        if filled:
            self.fills.append(filled)

    def finish(self) -> None:
        """Note the end of the run and print the prefills, load average and sources."""
        self.end_load, self.end_sources = load_average(), source_fingerprint(self.package)
        if self.fills:
            shown = ", ".join(f"{a / GiB:.1f} -> {b / GiB:.1f}" for a, b in self.fills)
            print(f"page cache prefilled {len(self.fills)} time(s), MemFree GiB: {shown}")
        else:
            print("page cache not prefilled" + ("" if self.prefill else " (--no-prefill)"))
        print(load_line(self.start_load, self.end_load))
        start, end = self.start_sources, self.end_sources
        if self.compared:
            for copy in self.compared:
                print(f"lockgate sources {copy.describe()}, copied at the start")
        elif self.pinned:
            print(
                f"lockgate sources {start}, pinned (a copy made at the start); "
                f"the checkout's sources at the end: {end}"
            )
        elif end == start:
            print(f"lockgate sources {start} (unchanged during the run)")
        else:
            print(
                f"WARNING: lockgate's sources changed during the run ({start} -> {end}): "
                "the numbers mix versions"
            )

    def to_json(self) -> dict[str, object]:
        return {
            "prefill_memfree_before_after": self.fills,
            "load_average": {"start": self.start_load, "end": self.end_load},
            "sources": {"start": self.start_sources, "end": self.end_sources},
            "pinned": self.pinned,
            "compared": [
                {"label": c.label, "origin": c.origin, "commit": c.commit, "sources": c.fingerprint}
                for c in self.compared
            ],
        }


# --------------------------------------------------------------------------- peers' tools


@dataclass(frozen=True)
class Tool:
    """A peer's command (``argv`` to start it with), or why it is missing (``argv`` empty)."""

    argv: tuple[str, ...]
    note: str  # its version, or the one-line reason it is skipped

    @property
    def present(self) -> bool:
        return bool(self.argv)


def _quiet(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """Run ``argv``; None when it succeeded, else the last line of its error output."""
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        return str(exc)
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return f"exit {proc.returncode}: {lines[-1] if lines else 'no output'}"


def _first_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"


def pip_tool(name: str, requirement: str, command: str) -> Tool:
    """``command`` from ``requirement``, installed with pip into its own virtualenv,
    ``.bench-tools/<name>/`` (made on first use, kept for later runs).

    Its own virtualenv, so that the peer's dependencies never mix with lockgate's.
    """
    venv = TOOLS_DIR / name
    stamp = venv / ".installed"
    exe = venv / "bin" / command
    if not (exe.exists() and stamp.exists() and stamp.read_text() == requirement):
        print(f"installing {requirement} into {venv} ...", file=sys.stderr)
        TOOLS_DIR.mkdir(exist_ok=True)
        (TOOLS_DIR / ".gitignore").write_text("*\n")
        error = _quiet([sys.executable, "-m", "venv", "--clear", str(venv)]) or _quiet(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", requirement]
        )
        if error or not exe.exists():
            return Tool((), f"pip install {requirement!r} failed ({error})")
        stamp.write_text(requirement)
    return Tool((str(exe),), _first_line([str(exe), "--version"]))


def debian_tool(command: str, package: str, version_argv: Sequence[str]) -> Tool:
    """``command`` from ``PATH``; when it is missing and this process runs as root,
    ``apt-get install -y <package>`` first (with one ``apt-get update`` and a second try
    if the first install fails); otherwise the reason it is skipped."""
    found = shutil.which(command)
    if found is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return Tool((), f"{command} is not on PATH (install the Debian package {package})")
        print(f"apt-get install -y {package} ...", file=sys.stderr)
        apt = inherited_environment() | {"DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", package]
        error = _quiet(install, apt)
        if error is not None:  # perhaps a stale package list
            error = _quiet(["apt-get", "update", "-q"], apt) or _quiet(install, apt)
        found = shutil.which(command)
        if found is None:
            return Tool((), f"apt-get install {package} failed ({error})")
    return Tool((found,), _first_line([found, *version_argv]))


# --------------------------------------------------------------------------- lockgate sources


def entry_points(pyproject: Path) -> dict[str, dict[str, str]]:
    """The entry points a ``pyproject.toml`` declares, by group; its ``[project.scripts]``
    as the group ``console_scripts``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the dev extra installs the backport on 3.10
        import tomli as tomllib
    project = tomllib.loads(pyproject.read_text())["project"]
    groups: dict[str, dict[str, str]] = dict(project.get("entry-points", {}))
    if "scripts" in project:
        groups["console_scripts"] = project["scripts"]
    return groups


@dataclass(frozen=True)
class SourceCopy:
    """A copy of lockgate's sources that the benchmark runs instead of the installed ones.

    ``site`` holds the package and a ``lockgate-<version>.dist-info`` with that tree's own
    entry points (its builtin plugins), and goes first on ``PYTHONPATH``; ``command`` is a
    console script written as pip writes the virtualenv's own ``lockgate``.
    """

    label: str
    origin: str  # the directory it was copied from, as given
    commit: str  # ``git describe`` of the origin, ``+changes`` if its checkout has edits
    fingerprint: str  # of the copy (:func:`source_fingerprint`)
    site: Path
    command: Path

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with this copy first on ``PYTHONPATH``."""
        path = os.pathsep.join(filter(None, [str(self.site), env.get("PYTHONPATH")]))
        return dict(env) | {"PYTHONPATH": path}

    def describe(self) -> str:
        return f"{self.label} = {self.origin} ({self.commit}, sources {self.fingerprint})"


def find_package(origin: Path) -> tuple[Path, Path | None]:
    """The ``lockgate`` package in ``origin`` (a checkout, its ``src/``, or the package
    itself) and the checkout's ``pyproject.toml`` (None if there is none)."""
    for package in (origin / "src" / "lockgate", origin / "lockgate", origin):
        if package.name == "lockgate" and (package / "__init__.py").is_file():
            pyproject = package.parent.parent / "pyproject.toml"
            return package, pyproject if pyproject.is_file() else None
    sys.exit(f"{origin}: no lockgate package there (give a checkout, e.g. a git worktree)")


def copy_source(origin: Path, dest: Path, label: str) -> SourceCopy:
    """Copy the lockgate package of ``origin`` to ``dest`` and make it runnable there.

    The copy uses this virtualenv's dependencies. Without a ``pyproject.toml`` beside the
    package, the installed distribution's entry points are used.
    """
    package, pyproject = find_package(origin)
    site = dest / "site"
    shutil.copytree(package, site / "lockgate", ignore=shutil.ignore_patterns("__pycache__"))
    if pyproject is not None:
        groups = entry_points(pyproject)
    else:
        from importlib.metadata import distribution

        groups = {}
        for ep in distribution("lockgate").entry_points:
            groups.setdefault(ep.group, {})[ep.name] = ep.value
    found = re.search(r"""__version__\s*=\s*["']([^"']+)""", (package / "_version.py").read_text())
    version = found.group(1) if found else "0"
    info = site / f"lockgate-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lockgate\nVersion: {version}\n")
    (info / "RECORD").write_text("")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items()) + "\n"
            for group, names in groups.items()
        )
    )
    module, _, func = groups["console_scripts"]["lockgate"].partition(":")
    command = dest / "bin" / "lockgate"
    command.parent.mkdir()
    command.write_text(
        f"#!{BIN / 'python'}\nimport sys\nfrom {module} import {func}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n"
        f"    sys.exit({func}())\n"
    )
    command.chmod(0o755)
    checkout = package.parent.parent if pyproject else package
    commit = _first_line(["git", "-C", str(checkout), "describe", "--always", "--dirty=+changes"])
    return SourceCopy(
        label=label,
        origin=str(origin),
        commit=commit,
        fingerprint=source_fingerprint(site / "lockgate"),
        site=site,
        command=command,
    )


def remove_tree(path: Path) -> None:
    """``rm -rf``, also through the directories a peer made read-only (git-annex does)."""
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
    shutil.rmtree(path)


# --------------------------------------------------------------------------- results

Key = TypeVar("Key", bound=Hashable)


@dataclass
class Timings(Generic[Key]):
    """Timed runs in ms, by key (a row, or a (tree or component, row) pair)."""

    times: dict[Key, list[float]] = field(default_factory=dict)

    def add(self, key: Key, ms: float) -> None:
        self.times.setdefault(key, []).append(ms)

    def median(self, key: Key) -> float | None:
        runs = self.times.get(key)
        return statistics.median(runs) if runs else None

    def minimum(self, key: Key) -> float | None:
        runs = self.times.get(key)
        return min(runs) if runs else None

    def p95(self, key: Key) -> float | None:
        """The 95th percentile, nearest rank (the largest of fewer than 20 runs)."""
        runs = sorted(self.times.get(key, []))
        return runs[max(math.ceil(0.95 * len(runs)) - 1, 0)] if runs else None


def runs_json(timings: Timings[tuple[str, str]], group: str, row: str) -> list[dict[str, object]]:
    """Every key's runs for a JSON report: its two parts (named ``group`` and ``row``), the
    times, their median and their minimum."""
    return [
        {group: g, row: r, "times_ms": times}
        | {"median_ms": statistics.median(times), "min_ms": min(times)}
        for (g, r), times in timings.times.items()
    ]


@dataclass(frozen=True)
class Target:
    """A ratio of two medians, and the bound it should stay under (None: context only)."""

    label: str
    num: tuple[str, str]  # (tree or component, row)
    den: tuple[str, str]
    bound: float | None


def ratios(targets: Sequence[Target], timings: Timings[tuple[str, str]]) -> list[dict[str, object]]:
    """Each target's ratio of medians (None where a side was not measured), and its verdict."""
    out: list[dict[str, object]] = []
    for target in targets:
        num, den = timings.median(target.num), timings.median(target.den)
        value = num / den if num is not None and den else None
        passed = None if value is None or target.bound is None else value <= target.bound
        out.append({"ratio": target.label, "value": value, "bound": target.bound, "pass": passed})
    return out


# --------------------------------------------------------------------------- tables


def fmt_ms(ms: float | None) -> str:
    """Milliseconds with one decimal and thousands separators; ``-`` for no value."""
    return "-" if ms is None else f"{ms:,.1f}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> None:
    """The header, a rule and the rows, in columns two spaces apart: the first ``left``
    columns aligned left, the others right."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = [
            f"{v:<{w}}" if col < left else f"{v:>{w}}"
            for col, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def print_medians(
    title: str, rows: Sequence[str], groups: Sequence[str], timings: Timings[tuple[str, str]]
) -> None:
    """A table of the median and the minimum of each row, per group (tree or component)."""
    header = [title]
    for group in groups:
        header += [f"{group} median ms", f"{group} min ms"]
    body = []
    for row in rows:
        cells = [row]
        for group in groups:
            cells += [fmt_ms(timings.median((group, row))), fmt_ms(timings.minimum((group, row)))]
        body.append(cells)
    print_table(header, body)


def print_ratios(computed: Sequence[Mapping[str, object]]) -> None:
    """The table of :func:`ratios`: each ratio, its bound, PASS or FAIL (SKIP: unmeasured)."""
    rows = []
    for r in computed:
        value, bound, passed = r["value"], r["bound"], r["pass"]
        shown = "skipped" if value is None else f"{value:.2f}"
        limit = "" if bound is None else f"<= {bound:.1f}"
        verdict = "" if passed is None else ("PASS" if passed else "FAIL")
        if value is None and bound is not None:
            verdict = "SKIP"
        rows.append([str(r["ratio"]), shown, limit, verdict])
    print_table(["ratio of medians", "ratio", "target", ""], rows)


def print_ratios_side_by_side(
    computed: Mapping[str, Sequence[Mapping[str, object]]], *, worse: float = 0.10
) -> None:
    """The ratios of :func:`ratios` of each measured variant (the same targets, in the
    same order), side by side, and the change from the first variant to the last: a ratio
    that grew by more than ``worse`` (lower is better) is marked WORSE."""
    labels = list(computed)
    rows = []
    for i, target in enumerate(computed[labels[0]]):
        bound = target["bound"]
        cells = [str(target["ratio"]), "" if bound is None else f"<= {bound:.1f}"]
        values: list[float | None] = []
        for label in labels:
            r = computed[label][i]
            value = r["value"]
            values.append(value if isinstance(value, float) else None)
            verdict = {True: " PASS", False: " FAIL", None: ""}[r["pass"]]  # type: ignore[index]
            cells.append("skipped" if value is None else f"{value:.2f}{verdict}")
        before, after = values[0], values[-1]
        if before and after is not None:
            cells += [
                f"{(after / before - 1) * 100:+.0f}%",
                "WORSE" if after > before * (1 + worse) else "",
            ]
        else:
            cells += ["", ""]
        rows.append(cells)
    print_table(["ratio of medians", "target", *labels, "change", ""], rows)


def print_results(
    title: str,
    rows: Sequence[str],
    groups: Sequence[str],
    targets: Sequence[Target],
    timings: Timings[tuple[str, str]],
) -> list[dict[str, object]]:
    """The table of medians (:func:`print_medians`), then that of the ratios
    (:func:`print_ratios`); returns the ratios, for the JSON report."""
    print_medians(title, rows, groups, timings)
    print()
    computed = ratios(targets, timings)
    print_ratios(computed)
    return computed


def plugin_env(store: str) -> dict[str, str]:
    """The environment a benchmark project opens with: the example plugins disabled (but
    lockgate-postgres on ``postgres``), a fixed actor."""
    keep = {"postgres"} if store == "postgres" else set()
    names = [p for p in example_plugins() if p not in keep]
    return {"LOCKGATE_DISABLE_PLUGINS": ",".join(names), "LOCKGATE_ACTOR": "bench"}


def build_switch_project(
    root: Path, store: str, dsn: str | None, components: int
) -> dict[str, list[str]]:
    """A project of ``components`` one-file components (``bench:c<n>``), each staged twice
    and promoted into ``staging`` (on ``store``: sqlite, or postgres at ``dsn``); the
    revisions by ref. What the switch benchmarks (promote_team, server_load) start from."""
    from lockgate.core.project import Project
    from lockgate.operations.init import init_project
    from lockgate.operations.promote import Promoter
    from lockgate.operations.stage import Stager

    init_project(root)
    if store == "postgres":
        config = root / "lockgate.yaml"
        text = config.read_text(encoding="utf-8").replace(
            "plugins:\n  disable: []\n",
            "state:\n  store: postgres\n  lock_timeout: 600\ncontent:\n  store: postgres\n"
            f"plugins:\n  disable: []\n  postgres:\n    dsn: {json.dumps(dsn)}\n"
            "    project: bench\n",
        )
        config.write_text(text, encoding="utf-8")
    else:
        with (root / "lockgate.yaml").open("a", encoding="utf-8") as out:
            out.write("state:\n  lock_timeout: 600\n")
    revisions: dict[str, list[str]] = {}
    project = Project.open(root, environ=plugin_env(store))
    try:
        stager, promoter = Stager(project), Promoter(project)
        for n in range(components):
            ref, folder = f"bench:c{n}", root / "workspaces" / "bench" / "scripts" / f"c{n}"
            folder.mkdir(parents=True)
            for version in ("A", "B"):
                (folder / "main.py").write_text(f"VERSION = {version!r}\n", encoding="utf-8")
                revision = stager.stage(ref).revision
                revisions.setdefault(ref, []).append(revision)
                promoter.promote(ref, to="staging", rev=revision)
    finally:
        project.close()
    return revisions
