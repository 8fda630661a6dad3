"""Cold-start wall time of ``lockgate --version`` and ``lockgate plugins``, beside real peers.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/startup.py                   # 20 timed runs per command
    .venv/bin/python benchmarks/startup.py --runs 50 --json startup.json
    .venv/bin/python benchmarks/startup.py --hyperfine       # optional cross-check

Each command is a fresh process in an empty temporary directory (outside any project).
``lockgate`` runs with 0, 10 and 50 third-party plugin distributions (real ``*.dist-info``
plus a module with one hookimpl each) on ``PYTHONPATH``; ``lockgate plugins --json`` must
first report exactly N of them "loaded", or the benchmark stops.
``LOCKGATE_DISABLE_PLUGINS`` keeps the example plugins out of the count.
Peers (``python -c "import click"``, ``pytest --version``; same interpreter) run in the
same interleaved rounds; ratios are against the median of ``python -c "import click"``.
Bytecode is cached in the temporary directory, warm after the warm-up runs.

Two everyday commands in a small project (one component of one file, staged once) run
in the same rounds with no third-party plugin: an unchanged restage (``lockgate stage``)
and ``lockgate ls``. After the timing, each of them and ``lockgate --version`` runs once
more under ``python -X importtime``: the table gives how many modules it imported and
the sum of the top-level imports' cumulative microseconds (what importing cost it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import BIN, environment, machine_json, print_table, python_and_cores

PLUGIN_COUNTS = (0, 10, 50)
HOOK_MODULE = """from lockgate import hookimpl


@hookimpl
def on_metrics_collect(context):
    return {"n": 1}
"""


@dataclass
class Case:
    """One command line in one environment, and its timed runs."""

    label: str
    plugins: str  # "-" for the peers
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    times_ms: list[float] = field(default_factory=list)
    cwd: Path | None = None  # None: the empty directory

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.times_ms, n=20, method="inclusive")[18]


def install_plugins(root: Path, n: int) -> Path:
    """A directory holding ``n`` real plugin distributions (dist-info + module)."""
    site = root / f"site{n}"
    site.mkdir()
    for i in range(n):
        info = site / f"lgbench_plugin_{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: lgbench-plugin-{i}\nVersion: 1.0\n"
        )
        (info / "RECORD").write_text("")
        (info / "entry_points.txt").write_text(f"[lockgate]\nbench{i} = lgbench_plugin_{i}\n")
        (site / f"lgbench_plugin_{i}.py").write_text(HOOK_MODULE)
    return site


def plugin_environment(pythonpath: Path, pycache: Path) -> dict[str, str]:
    """:func:`_common.environment` (bytecode cached under ``pycache``, warm after the
    warm-up runs, as for an installed tool), with ``PYTHONPATH`` set to ``pythonpath``
    alone: the directory of plugin distributions."""
    env = environment(pycache, drop=("PYTHONPATH",))
    env["PYTHONPATH"] = str(pythonpath)
    return env


def verify(n: int, env: dict[str, str], cwd: Path) -> None:
    """Fail unless ``lockgate plugins --json`` shows exactly the N bench plugins loaded."""
    argv = [str(BIN / "lockgate"), "plugins", "--json"]
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"verify N={n}: exit {proc.returncode}: {proc.stderr.strip()}")
    third = [p for p in json.loads(proc.stdout)["plugins"] if not p["builtin"]]
    loaded = [p for p in third if p["status"] == "loaded"]
    bench = [
        p
        for p in loaded
        if (p["distribution"] or "").startswith("lgbench-plugin-")
        and p["hooks"] == ["on_metrics_collect"]
    ]
    if len(bench) != n or len(loaded) != n:
        got = [(p["name"], p["status"], p["error"]) for p in third]
        sys.exit(f"verify N={n}: expected {n} bench plugins loaded and no others, got {got}")


def small_project(root: Path, env: dict[str, str]) -> Path:
    """A project holding one component of one file, staged once."""
    project = root / "project"
    project.mkdir()
    lockgate = str(BIN / "lockgate")
    subprocess.run([lockgate, "init"], cwd=project, env=env, capture_output=True, check=True)
    component = project / "workspaces" / "alice" / "scripts" / "hello"
    component.mkdir(parents=True)
    (component / "run.py").write_text("print('hello')\n")
    subprocess.run(
        [lockgate, "stage", "alice:hello"], cwd=project, env=env, capture_output=True, check=True
    )
    return project


def import_report(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float]:
    """Modules ``lockgate args`` imports and what importing cost it (ms), from
    ``python -X importtime``."""
    argv = [sys.executable, "-X", "importtime", "-m", "lockgate", *args]
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    count, top = 0, 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        count += 1
        if not name.startswith("  "):  # nested imports are in their parent's figure
            top += int(cumulative)
    return count, top / 1000


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one process in ms; any non-zero exit stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr.decode().strip()}")
    return elapsed


def print_times(cases: list[Case], base: float) -> None:
    rows = []
    for c in cases:
        ratio = f"{c.median / base:.2f}" if c.label.startswith("lockgate") else ""
        rows.append((c.label, c.plugins, f"{c.median:.1f}", f"{c.p95:.1f}", ratio))
    print_table(("command", "plugins", "median ms", "p95 ms", "x click"), rows)


def hyperfine(cases: list[Case], cwd: Path, runs: int) -> None:
    """Optional cross-check: the same commands through hyperfine, medians in ms."""
    exe = shutil.which("hyperfine")
    if exe is None:
        sys.exit("--hyperfine: hyperfine is not on PATH (e.g. apt-get install hyperfine)")
    print("\nhyperfine cross-check (median ms):")
    for c in cases:
        out = cwd / "hyperfine.json"
        cmd = [exe, "-N", "-w", "3", "-r", str(runs), "--export-json", str(out), shlex.join(c.argv)]
        subprocess.run(cmd, env=c.env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        median = json.loads(out.read_text())["results"][0]["median"] * 1000
        print(f"  {c.label:<26} {c.plugins:>3}  {median:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="lockgate cold-start benchmark")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per command (3)")
    parser.add_argument("--json", type=Path, help="write the raw per-run times here")
    parser.add_argument("--hyperfine", action="store_true", help="also time with hyperfine")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    lockgate = str(BIN / "lockgate")
    with tempfile.TemporaryDirectory(prefix="lgbench-") as tmp:
        root = Path(tmp)
        cwd = root / "cwd"
        cwd.mkdir()
        empty = install_plugins(root, 0)
        peer_env = plugin_environment(empty, root / "pycache")
        cases = [
            Case('python -c "import click"', "-", [sys.executable, "-c", "import click"], peer_env),
            Case("pytest --version", "-", [str(BIN / "pytest"), "--version"], peer_env),
        ]
        project = small_project(root, peer_env)
        everyday = {
            "lockgate stage (unchanged)": ["stage", "alice:hello"],
            "lockgate ls": ["ls"],
        }
        for label, args_ in everyday.items():
            cases.append(Case(label, "0", [lockgate, *args_], peer_env, cwd=project))
        for n in PLUGIN_COUNTS:
            env = plugin_environment(install_plugins(root, n) if n else empty, root / "pycache")
            verify(n, env, cwd)
            cases.append(Case("lockgate --version", str(n), [lockgate, "--version"], env))
            cases.append(Case("lockgate plugins", str(n), [lockgate, "plugins"], env))
        for round_no in range(args.warmup + args.runs):
            for c in cases:
                elapsed = run_once(c.argv, c.env, c.cwd or cwd)
                if round_no >= args.warmup:
                    c.times_ms.append(elapsed)
        print(
            f"{args.runs} runs each after {args.warmup} warm-up, interleaved; "
            f"{python_and_cores()}\n"
        )
        print_times(cases, base=cases[0].median)
        rows = []
        for label, args_ in {"lockgate --version": ["--version"], **everyday}.items():
            count, ms = import_report(args_, peer_env, project)
            rows.append((label, str(count), f"{ms:.1f}"))
        print()
        print_table(("command (-X importtime)", "modules", "import ms"), rows)
        if args.json:
            raw = {
                "runs": args.runs,
                "warmup": args.warmup,
                **machine_json(),
                "results": [
                    {"label": c.label, "plugins": c.plugins, "argv": c.argv}
                    | {"median_ms": c.median, "p95_ms": c.p95, "times_ms": c.times_ms}
                    for c in cases
                ],
            }
            args.json.write_text(json.dumps(raw, indent=2) + "\n")
        if args.hyperfine:
            hyperfine(cases, cwd, args.runs)


if __name__ == "__main__":
    main()
