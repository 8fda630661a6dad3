"""The in-process rows of ``staging.py`` (not a benchmark itself).

    python benchmarks/_stage_probe.py PROJECT [--no-check]

Opens the project once (untimed), scans component ``bench:a`` once (untimed: the source's
first use), then times a scan and an unchanged ``Stager.stage("bench:a")`` — the path a
file watcher takes — and prints one JSON object. It runs as a child process so that the
lockgate on its ``PYTHONPATH`` is measured: the checkout's, a pinned copy, or one of the
sources compared by ``--compare-sources``. Unless ``--no-check``, the scan must find every
file in the stat cache and the stage must hash nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from lockgate import Project  # the public name, wherever the class lives

try:
    from lockgate.contracts.refs import ComponentRef
except ImportError:  # sources from before the contracts left core/
    from lockgate.core.refs import ComponentRef  # type: ignore[no-redef]

try:
    from lockgate.operations.stage import Stager
except ImportError:  # sources from before operations/ left core/
    from lockgate.core.staging import Stager  # type: ignore[no-redef]


def main() -> None:
    project_dir, check = Path(sys.argv[1]), "--no-check" not in sys.argv[2:]
    project = Project.open(project_dir, environ=dict(os.environ))
    try:
        source = project.source()
        component = source.find(ComponentRef.parse("bench:a"))
        source.scan(component)  # untimed: first use of the source
        os.sync()
        start = time.perf_counter()
        scan = source.scan(component)
        scan_ms = (time.perf_counter() - start) * 1000
        uncached = sum(1 for f in scan.files if f.digest is None)
        start = time.perf_counter()
        result = Stager(project).stage("bench:a")
        stage_ms = (time.perf_counter() - start) * 1000
    finally:
        project.close()
    if check and uncached:
        sys.exit(f"in-process scan: {uncached} files not vouched for by the stat cache")
    if result.created or (check and result.hashed):
        sys.exit(f"in-process stage: not a clean restage: {result.summary()}")
    print(json.dumps({"scan_ms": scan_ms, "stage_ms": stage_ms}))


if __name__ == "__main__":
    main()
