"""Peak resident memory of staging, promoting and verifying one very large file, beside
a 1 MiB file, and beside ``cp``, ``sha256sum`` and ``git hash-object`` of the same file.

Run from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/memory.py                  # a 4 GiB file
    .venv/bin/python benchmarks/memory.py --size-gib 1 --json memory.json

One fresh project (``lockgate init``, default configuration: gates on for every stage)
in a temporary directory under /tmp, removed at the end, holds two components of type
``data`` in workspace ``bench``: ``big``, one file of ``--size-gib`` GiB, and ``small``,
one file of 1 MiB. The big file holds real data (no holes): a 16 MiB block from
``os.urandom``, written again and again with each copy's first 8 bytes set to its
number, so no two blocks are equal. Free disk is checked first (the file, its stored
object and the peer's copy need about three times its size).

Each row is one whole process (``lockgate -C PROJ ...`` with the builtin plugins only),
run once, with the ``limits`` validator's size caps raised to the big file's size:
``stage``, ``promote`` (into staging: lays the release out, verifies it, runs the gates,
switches), ``promote --to integration``, and ``verify`` (hashes every byte of what is
deployed). Its peak resident set size is the child's own ``ru_maxrss`` as GNU
``/usr/bin/time -f %M`` reports it (needed: the benchmark stops without it; ``true``
measures about 1 MiB), and its wall time is reported beside it. The peers, on the same
big file in the same run: ``cp`` (to a new file beside it), ``sha256sum`` and ``git
hash-object`` (outside any repository: it only hashes). The page cache is whatever the previous row
left (the big file is written just before), so times are indicative; memory is the
point. The target: every lockgate row of the big file under 100 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import LOCKGATE, MiB, environment, load_average, load_line, python_and_cores

GiB = 1024 * MiB
BLOCK = 16 * MiB
TARGET_MIB = 100


def write_big(path: Path, size: int) -> None:
    """``size`` bytes of real data: a random block, each copy numbered (no holes)."""
    block = bytearray(os.urandom(BLOCK))
    with path.open("wb") as fh:
        written = 0
        n = 0
        while written < size:
            block[:8] = n.to_bytes(8, "little")
            chunk = memoryview(block)[: min(BLOCK, size - written)]
            fh.write(chunk)
            written += len(chunk)
            n += 1


def measured(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """Run ``argv`` once: its wall time in ms and its own peak RSS in MiB.

    The peak is GNU time's ``%M`` (the child's ``ru_maxrss``): ``/usr/bin/time`` forks it
    from a process of about 1 MiB. Read directly with ``os.wait4``, a child of this
    process would report at least this process's own peak (a forked child starts from a
    copy of its parent's memory counters, and ``exec`` keeps the high-water mark).
    """
    os.sync()
    with tempfile.NamedTemporaryFile("r", prefix="lockgate-memory-rss-") as out:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        elapsed = (time.perf_counter() - start) * 1000
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        kib = int(out.read().split()[-1])
    return elapsed, kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-gib", type=float, default=4.0, help="the big file (GiB)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not os.access("/usr/bin/time", os.X_OK):
        sys.exit("needs GNU time at /usr/bin/time (Debian/Ubuntu: apt-get install time)")
    size = int(args.size_gib * GiB)
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < 3 * size + GiB:
        sys.exit(
            f"{free / GiB:.1f} GiB free under {tempfile.gettempdir()}; "
            f"need {3 * size / GiB + 1:.0f}"
        )
    start_load = load_average()
    with tempfile.TemporaryDirectory(prefix="lockgate-memory-") as tmp:
        root = Path(tmp)
        env = environment(root / "pycache")
        # The limits validator's defaults refuse files past 100 MiB (staging: 256 MiB).
        for key in ("MAX_FILE_SIZE", "MAX_COMPONENT_SIZE"):
            env[f"LOCKGATE__PLUGINS__LIMITS__{key}"] = str(size)
            env[f"LOCKGATE__PLUGINS__LIMITS__STAGING_{key}"] = str(size)
        proj = root / "proj"
        subprocess.run([LOCKGATE, "init", str(proj)], env=env, check=True, capture_output=True)
        comps = {"small": MiB, "big": size}
        for name, n in comps.items():
            src = proj / "workspaces" / "bench" / "data" / name
            src.mkdir(parents=True)
            print(f"writing {name} ({n / MiB:,.0f} MiB) ...", file=sys.stderr)
            write_big(src / f"{name}.bin", n)
        rows: list[tuple[str, str, float, float]] = []
        steps = [
            ("stage", ["stage"]),
            ("promote (into staging)", ["promote"]),
            ("promote --to integration", ["promote", "--to", "integration"]),
        ]
        for name in comps:
            for label, argv in steps:
                ms, rss = measured([LOCKGATE, "-C", str(proj), *argv, f"bench:{name}"], env)
                rows.append((name, f"lockgate {label}", ms, rss))
        ms, rss = measured([LOCKGATE, "-C", str(proj), "verify"], env)
        rows.append(("both", "lockgate verify (hashes all deployed)", ms, rss))
        big = proj / "workspaces" / "bench" / "data" / "big" / "big.bin"
        peers = [
            ("cp", ["cp", str(big), str(root / "copy.bin")]),
            ("sha256sum", ["sha256sum", str(big)]),
            ("git hash-object", ["git", "hash-object", str(big)]),
        ]
        for label, argv in peers:
            if shutil.which(argv[0]) is None:
                continue
            ms, rss = measured(argv, env, cwd=root)
            rows.append(("big", label, ms, rss))
            (root / "copy.bin").unlink(missing_ok=True)
    end_load = load_average()
    print(f"# peak resident memory; {python_and_cores()}; big file {size / GiB:g} GiB")
    print(load_line(start_load, end_load))
    print(f"{'component':<10} {'command':<40} {'wall ms':>10} {'peak RSS MiB':>13}")
    for comp, label, ms, rss in rows:
        mark = ""
        if comp == "big" and label.startswith("lockgate"):
            mark = "  PASS" if rss < TARGET_MIB else "  FAIL"
        print(f"{comp:<10} {label:<40} {ms:>10,.0f} {rss:>13,.1f}{mark}")
    if args.json:
        data = {
            "size_bytes": size,
            "load": {"start": start_load, "end": end_load},
            "rows": [
                {"component": c, "command": label, "ms": ms, "peak_rss_mib": rss}
                for c, label, ms, rss in rows
            ],
        }
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
