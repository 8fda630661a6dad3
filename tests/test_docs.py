"""Keep the docs true: docs/hooks.md beside the hook specifications (in the style of
datasette's), and the README quickstart beside what lockgate prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockgate import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS_DOC = ROOT / "docs" / "hooks.md"

LIFECYCLE_HOOKS = (
    "on_config_load",
    "on_stage",
    "on_validate",
    "on_promote",
    "on_rollback",
    "on_metrics_collect",
)
PROVIDER_HOOKS = (
    "register_state_stores",
    "register_content_stores",
    "register_targets",
    "register_commands",
)

# HookspecMarker("lockgate") marks each spec with a `lockgate_spec` attribute.
SPECS = {name: fn for name, fn in vars(hookspecs).items() if hasattr(fn, "lockgate_spec")}


def documented_hooks() -> set[str]:
    return set(re.findall(r"^### `(\w+)`\s*$", HOOKS_DOC.read_text(encoding="utf-8"), re.M))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_docstring_says_when_it_runs_and_what_it_returns(name: str) -> None:
    doc = (SPECS[name].__doc__ or "").strip()
    assert doc, f"hook {name} has no docstring"
    assert "When:" in doc, f"hook {name} docstring lacks 'When:'"
    assert "Returns:" in doc, f"hook {name} docstring lacks 'Returns:'"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hookspec_has_a_section_in_hooks_md(name: str) -> None:
    assert name in documented_hooks(), f"docs/hooks.md has no '### `{name}`' section"


def test_hooks_md_documents_no_hook_that_does_not_exist() -> None:
    assert documented_hooks() - set(SPECS) == set()


def test_lifecycle_and_provider_hooks_exist_under_their_documented_names() -> None:
    missing = set(LIFECYCLE_HOOKS + PROVIDER_HOOKS) - set(SPECS)
    assert not missing, f"hook specs missing: {sorted(missing)}"


def test_the_readme_quickstart_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """Its first steps, run by ``sh`` as written, then ``lockgate sync``: the same lines."""
    import subprocess

    from conftest import run_lockgate, subprocess_env

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quickstart", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    setup = [ln[2:] for ln in lines if ln.startswith(("$ mkdir -p", "$ printf"))][:2]
    start = lines.index(next(ln for ln in lines if ln.startswith("$ lockgate sync")))
    shown = []
    for line in lines[start + 1 :]:
        if line.startswith("$"):
            break
        shown.append(line)
    assert run_lockgate("init", cwd=tmp_path).returncode == 0
    for command in setup:
        subprocess.run(["sh", "-c", command], cwd=tmp_path, check=True, env=subprocess_env())
    synced = run_lockgate("sync", cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.splitlines() == shown
