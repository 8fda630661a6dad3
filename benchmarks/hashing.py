"""Throughput of content digests: hashlib.sha256 against BLAKE3, on files read from disk.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/hashing.py                 # 5 rounds (median of 5)
    .venv/bin/python benchmarks/hashing.py --runs 9 --json hashing.json

Two sets of files are generated once (deterministic pseudo-random content) in a temporary
directory under /tmp, removed at the end: (i) 200 files of 1 MiB and (ii) 10,000 files of
4 KiB (in 100 directories). Each case reads every file of a set from disk (one
``read()`` of the whole file, as ``lockgate stage`` does for files up to 1 MiB) and
hashes it to a hex digest, on 1 thread and on a thread pool of 2 (and BLAKE3 also with its
own multi-threading within each input, ``max_threads=AUTO``); "read only" does the
same reads without hashing, as the floor. The peers are the ``sha256sum`` and ``b3sum``
command-line tools, if on ``PATH``, given all the files of a set in one process (and, for
the pool of 2, two processes with half the files each); ``b3sum`` runs with
``--num-threads 1``, and also with its default multi-threading. Their digests are checked
against Python's. The page cache is warm (every file is read once before timing); cases
run interleaved, one of each per round; throughput is total bytes / median time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import blake3
from _common import MiB, RandomTree, machine_json, print_table, size_label


class FileSet(RandomTree):
    """A set of ``files`` files of ``size`` bytes in ``dirs`` directories."""

    digits = 5

    @property
    def total(self) -> int:
        return self.files * self.size

    @property
    def label(self) -> str:
        return f"{self.files:,} x {size_label(self.size)}"


SETS = (
    FileSet("i", files=200, size=MiB, dirs=1, seed=1),
    FileSet("ii", files=10_000, size=4 << 10, dirs=100, seed=2),
)

Hasher = Callable[[bytes], str]
HASHERS: dict[str, Hasher | None] = {
    "read only": None,
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
    "blake3": lambda data: str(blake3.blake3(data).hexdigest()),
    # BLAKE3's own multi-threading inside one input (what lockgate uses for large files).
    "blake3 max_threads=AUTO": lambda data: str(
        blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
    ),
}


def digest_file(path: Path, hasher: Hasher | None) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    return hasher(data) if hasher else ""


@dataclass
class Case:
    """One way of hashing a whole file set, and its timed runs."""

    label: str
    mode: str
    run: Callable[[list[Path]], None] = field(repr=False)
    times: dict[str, list[float]] = field(default_factory=dict)  # set name -> seconds

    def mib_s(self, fs: FileSet) -> float | None:
        runs = self.times.get(fs.name)
        return fs.total / MiB / statistics.median(runs) if runs else None


def python_case(name: str, threads: int) -> Case:
    hasher = HASHERS[name]

    def run(paths: list[Path]) -> None:
        if threads == 1:
            for p in paths:
                digest_file(p, hasher)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(lambda p: digest_file(p, hasher), paths):
                pass

    mode = "1 thread" if threads == 1 else f"pool of {threads}"
    return Case(f"python {name}" if hasher else name, mode, run)


def cli_case(label: str, argv: list[str], procs: int, mode: str) -> Case:
    def run(paths: list[Path]) -> None:
        chunks = [paths[i::procs] for i in range(procs)]
        running = [
            subprocess.Popen([*argv, *map(str, chunk)], stdout=subprocess.DEVNULL)
            for chunk in chunks
        ]
        for proc in running:
            if proc.wait() != 0:
                sys.exit(f"{label}: exit {proc.returncode}")

    return Case(label, mode, run)


def check_cli(argv: list[str], path: Path, expected: str) -> None:
    """The tool's digest of ``path`` must be Python's."""
    out = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=True).stdout
    got = out.split()[0]
    if got != expected:
        sys.exit(f"{argv[0]}: digest {got} differs from Python's {expected}")


def cases(sample: Path) -> list[Case]:
    out = [python_case(name, threads) for name in HASHERS for threads in (1, 2)]
    data = sample.read_bytes()
    sha = shutil.which("sha256sum")
    if sha:
        check_cli([sha], sample, hashlib.sha256(data).hexdigest())
        out.append(cli_case("sha256sum", [sha], 1, "1 process"))
        out.append(cli_case("sha256sum", [sha], 2, "2 processes"))
    else:
        print("sha256sum is not on PATH: skipping its rows (coreutils)")
    b3 = shutil.which("b3sum")
    if b3:
        check_cli([b3], sample, str(blake3.blake3(data).hexdigest()))
        one = [b3, "--num-threads", "1"]
        out.append(cli_case("b3sum", one, 1, "1 process, 1 thread"))
        out.append(cli_case("b3sum", one, 2, "2 processes, 1 thread"))
        out.append(cli_case("b3sum", [b3], 1, "1 process, default threads"))
    else:
        print("b3sum is not on PATH: skipping its rows (e.g. apt-get install b3sum)")
    return out


def print_throughput(all_cases: list[Case]) -> None:
    header = ["hasher", "mode"]
    for fs in SETS:
        header += [f"({fs.name}) MiB/s", "x sha256"]
    base = {
        fs.name: next(c for c in all_cases if c.label == "python sha256").mib_s(fs) for fs in SETS
    }
    rows = []
    for c in all_cases:
        row = [c.label, c.mode]
        for fs in SETS:
            value, ref = c.mib_s(fs), base[fs.name]
            row.append("-" if value is None else f"{value:,.0f}")
            row.append(
                "" if value is None or not ref or c.label == "read only" else f"{value / ref:.2f}"
            )
        rows.append(row)
    print_table(header, rows, left=2)


def main() -> None:
    parser = argparse.ArgumentParser(description="sha256 vs BLAKE3 throughput on files")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (5)")
    parser.add_argument("--json", type=Path, help="write the raw per-run times here")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="lgbench-hashing-", dir="/tmp") as tmp:
        paths = {fs.name: fs.generate(Path(tmp) / fs.name) for fs in SETS}
        all_cases = cases(paths[SETS[0].name][0])
        for fs in SETS:  # warm the page cache
            for p in paths[fs.name]:
                p.read_bytes()
        for _ in range(args.runs):
            for fs in SETS:
                for c in all_cases:
                    start = time.perf_counter()
                    c.run(paths[fs.name])
                    c.times.setdefault(fs.name, []).append(time.perf_counter() - start)
        print(
            f"median of {args.runs} rounds, warm page cache; Python {platform.python_version()}, "
            f"blake3 {blake3.__version__}, {os.cpu_count()} cores"
        )
        for fs in SETS:
            print(f"  ({fs.name}) {fs.label} = {fs.total / MiB:,.0f} MiB")
        print()
        print_throughput(all_cases)
        if args.json:
            raw = {
                "runs": args.runs,
                **machine_json(),
                "blake3": blake3.__version__,
                "sets": {fs.name: {"label": fs.label, "bytes": fs.total} for fs in SETS},
                "results": [
                    {"hasher": c.label, "mode": c.mode, "seconds": c.times}
                    | {"mib_s": {fs.name: c.mib_s(fs) for fs in SETS}}
                    for c in all_cases
                ],
            }
            args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
