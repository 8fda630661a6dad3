"""Faults in plugin-supplied code are named and contained: a target, store or factory that
raises is reported naming its plugin, distribution and version (exit 3); a target that
fails leaves recovery pending without stopping the commands that only read; a plugin
raising in an announcing hook is named in the audit log; a plugin whose settings lack a
required key fails alone. Real subprocesses against real installed distributions.

Tests run as root, and root writes into a ``chmod 555`` directory; so the command that
must meet an unwritable stage directory runs under ``setpriv`` without the capability
that lets root ignore permissions (``CAP_DAC_OVERRIDE``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate, subprocess_env, write_distribution

FLAKY = '''
import json
from lockgate.plugin import hookimpl, Prepared


class FlakyTarget:
    """Deploys into a JSON file; raises in every method named in the file 'break'."""

    def __init__(self, root):
        self.root = root
        self.file = root / "flaky-deployed.json"

    def _maybe_fail(self, method):
        flag = self.root / "break"
        if flag.exists() and method in flag.read_text().split():
            raise RuntimeError(f"flaky {method} exploded")

    def _read(self):
        return json.loads(self.file.read_text()) if self.file.exists() else {}

    def prepare(self, component_id, revision):
        self._maybe_fail("prepare")
        return Prepared(component_id, revision.revision if revision else None, None)

    def commit(self, prepared):
        self._maybe_fail("commit")
        data = self._read()
        if prepared.revision is None:
            data.pop(prepared.component_id, None)
        else:
            data[prepared.component_id] = prepared.revision
        self.file.write_text(json.dumps(data))

    def abort(self, prepared):
        self._maybe_fail("abort")

    def deployed(self):
        self._maybe_fail("deployed")
        return self._read()

    def location(self, component_id):
        return f"flaky://{component_id}"

    def check(self, component_id, revision):
        self._maybe_fail("check")
        now = self._read().get(component_id)
        return [] if now == revision else [f"flaky://{component_id} has {now}"]


def build(ctx):
    mode = ctx.options.get("mode", "json")
    if mode != "json":
        raise ValueError(f"unknown mode {mode!r}")
    return FlakyTarget(ctx.project_root)


@hookimpl
def register_targets(register):
    register("flaky", build)
'''

FLAKY_PLUGIN = "plugin 'flaky' (lockgate-flaky 2.3.1)"
READERS = [
    ("ls",),
    ("log",),
    ("history", "alice:app"),
    ("summary",),
    ("stats",),
    ("verify",),
    ("audit", "verify"),
]


def _project(tmp_path: Path, site: Path, targets: str = "      - kind: flaky\n") -> Path:
    write_distribution(site, "lockgate-flaky", "2.3.1", {"flaky": "lg_flaky"}, {"lg_flaky": FLAKY})
    root = tmp_path / "p"
    root.mkdir()
    (root / "lockgate.yaml").write_text(
        f"stages:\n  staging:\n    targets:\n{targets}  production: {{}}\n"
    )
    app = root / "workspaces" / "alice" / "builders" / "app"
    app.mkdir(parents=True)
    (app / "run.py").write_text("print(1)\n")
    return root


def _run(root: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_lockgate("-C", str(root), *args, cwd=root, site=site, env=ENV)


def test_a_target_raising_in_commit_names_plugin_distribution_version_and_method(
    tmp_path: Path, site: Path
) -> None:
    root = _project(tmp_path, site)
    assert _run(root, site, "stage", "alice:app").returncode == 0
    (root / "break").write_text("commit")
    done = _run(root, site, "promote", "alice:app")
    assert done.returncode == 3, done.stderr
    assert f"{FLAKY_PLUGIN} failed in commit() of stage target 'flaky'" in done.stderr
    assert "RuntimeError: flaky commit exploded" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    # The switch was undone, so nothing is pending and the target is whole again.
    assert _run(root, site, "ls").stderr == ""
    (root / "break").unlink()
    assert _run(root, site, "promote", "alice:app").returncode == 0
    verbose = _run(root, site, "-v", "verify")
    assert verbose.returncode == 0, verbose.stderr


def test_a_target_raising_outside_a_switch_is_named_and_traced_only_with_v(
    tmp_path: Path, site: Path
) -> None:
    root = _project(tmp_path, site)
    assert _run(root, site, "stage", "alice:app").returncode == 0
    assert _run(root, site, "promote", "alice:app").returncode == 0
    (root / "break").write_text("check")
    done = _run(root, site, "verify")
    assert done.returncode == 3, done.stderr
    assert f"{FLAKY_PLUGIN} failed in check() of stage target 'flaky'" in done.stderr
    assert "Traceback" not in done.stderr
    traced = _run(root, site, "-v", "verify")
    assert traced.returncode == 3
    assert "Traceback" in traced.stderr and "flaky check exploded" in traced.stderr


def test_a_target_factory_rejecting_its_options_is_the_plugin_s_error(
    tmp_path: Path, site: Path
) -> None:
    root = _project(tmp_path, site, "      - kind: flaky\n        options: {mode: xml}\n")
    assert _run(root, site, "stage", "alice:app").returncode == 0
    done = _run(root, site, "promote", "alice:app")
    assert done.returncode == 3, done.stderr
    assert f"{FLAKY_PLUGIN} failed in factory() of stage target 'flaky'" in done.stderr
    assert "ValueError: unknown mode 'xml'" in done.stderr


def test_a_failing_target_leaves_recovery_pending_and_readers_keep_working(
    tmp_path: Path, site: Path
) -> None:
    root = _project(tmp_path, site)
    assert _run(root, site, "stage", "alice:app").returncode == 0
    # commit fails, and so does every way back: the intent stays open.
    (root / "break").write_text("commit abort")
    failed = _run(root, site, "promote", "alice:app")
    assert failed.returncode == 3, failed.stderr
    assert FLAKY_PLUGIN in failed.stderr
    for args in READERS:
        done = _run(root, site, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stderr.count("recovery pending") == 1, (args, done.stderr)
    for args in (("promote", "alice:app"), ("stage", "alice:app"), ("recover",)):
        done = _run(root, site, *args)
        assert done.returncode == 3, (args, done.stderr)
        assert "recovery pending: target 'flaky' of staging failing: " in done.stderr
        assert f"{FLAKY_PLUGIN} failed in abort()" in done.stderr
        assert "lockgate recover" in done.stderr
    # Once the target works again, recovery settles it and nothing is pending.
    (root / "break").unlink()
    assert _run(root, site, "recover").returncode == 0
    quiet = _run(root, site, "ls")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert _run(root, site, "promote", "alice:app").returncode == 0


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop root's permission override")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_an_unwritable_stage_directory_leaves_recovery_pending_and_readers_keep_working(
    tmp_path: Path,
) -> None:
    root = tmp_path / "p"
    assert run_lockgate("init", str(root), cwd=tmp_path, env=ENV).returncode == 0
    app = root / "workspaces" / "alice" / "builders" / "app"
    app.mkdir(parents=True)
    (app / "run.py").write_text("print(1)\n")
    for text in ("print(1)\n", "print(2)\n"):  # one revision deployed, the next staged
        (app / "run.py").write_text(text)
        assert run_lockgate("stage", "alice:app", cwd=root, env=ENV).returncode == 0
        if text == "print(1)\n":
            assert run_lockgate("promote", "alice:app", cwd=root, env=ENV).returncode == 0
    (root / "stages" / "staging").chmod(0o555)
    prefix = _unprivileged()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*prefix, sys.executable, "-m", "lockgate", *args]
        return subprocess.run(
            cmd, cwd=root, env=subprocess_env(ENV), capture_output=True, text=True, timeout=60
        )

    try:
        failed = run("promote", "alice:app")
        assert failed.returncode == 4, failed.stderr
        assert "permission denied" in failed.stderr
        for args in READERS:
            done = run(*args)
            assert done.returncode == 0, (args, done.stderr)
        done = run("promote", "alice:app")
        assert done.returncode == 4, done.stderr
        assert "recovery pending: target 'directory' of staging failing: " in done.stderr
        assert "internal error" not in done.stderr
    finally:
        (root / "stages" / "staging").chmod(0o755)
    assert run("promote", "alice:app").returncode == 0
    assert json.loads(run("--json", "verify").stdout)["ok"]


NOTIFY = """
import attrs
from lockgate.plugin import hookimpl


def _positive(instance, attribute, value):
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")


@attrs.define(frozen=True)
class Settings:
    url: str
    retries: int = attrs.field(default=1, validator=_positive)


@hookimpl
def register_settings():
    return Settings


@hookimpl
def on_promote(event, settings):
    raise RuntimeError(f"cannot reach {settings.url}")
"""


def _notify_project(tmp_path: Path, site: Path, plugins: str) -> Path:
    write_distribution(
        site, "lockgate-notify", "0.4.0", {"notify": "lg_notify"}, {"lg_notify": NOTIFY}
    )
    root = tmp_path / "p"
    root.mkdir()
    (root / "lockgate.yaml").write_text(f"stages:\n  staging: {{}}\n  production: {{}}\n{plugins}")
    app = root / "workspaces" / "alice" / "builders" / "app"
    app.mkdir(parents=True)
    (app / "run.py").write_text("print(1)\n")
    return root


def test_a_plugin_raising_in_on_promote_is_named_in_the_audit_log(
    tmp_path: Path, site: Path
) -> None:
    root = _notify_project(tmp_path, site, "plugins:\n  notify:\n    url: http://hooks.invalid\n")
    assert _run(root, site, "stage", "alice:app").returncode == 0
    done = _run(root, site, "promote", "alice:app")
    assert "plugin 'notify' (lockgate-notify 0.4.0) failed in hook on_promote" in done.stderr
    events = json.loads(_run(root, site, "--json", "log").stdout)
    promote = next(e for e in events if e["action"] == "promote")
    assert promote["outcome"] == "ok"  # the change stands
    (failed,) = [e for e in events if e["action"] == "announce"]
    assert failed["seq"] == promote["seq"] + 1
    assert (failed["outcome"], failed["component"], failed["stage"]) == (
        "failed",
        "alice:app",
        "staging",
    )
    assert failed["revision"] == promote["revision"]
    assert failed["details"]["plugin"] == "notify"
    assert failed["details"]["hook"] == "on_promote"
    assert "(lockgate-notify 0.4.0)" in failed["details"]["error"]
    assert "RuntimeError: cannot reach http://hooks.invalid" in failed["details"]["error"]
    table = _run(root, site, "log").stdout
    assert "announce (failed) (notify in on_promote)" in table
    audit = _run(root, site, "audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_a_required_setting_left_unset_fails_only_that_plugin(tmp_path: Path, site: Path) -> None:
    root = _notify_project(tmp_path, site, "")
    for args in (("ls",), ("stage", "alice:app"), ("promote", "alice:app"), ("log",)):
        done = _run(root, site, *args)
        assert done.returncode == 0, (args, done.stderr)
    listed = {
        p["name"]: p for p in json.loads(_run(root, site, "--json", "plugins").stdout)["plugins"]
    }
    assert listed["notify"]["status"] == "failed"
    assert "plugins.notify.url is required and not set" in listed["notify"]["error"]
    assert "LOCKGATE__PLUGINS__NOTIFY__URL" in listed["notify"]["error"]
    assert listed["directory"]["status"] == "loaded"
    # Outside any project too; strict mode still refuses a failed plugin.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    anywhere = run_lockgate("plugins", cwd=outside, site=site, env=ENV)
    assert anywhere.returncode == 0, anywhere.stderr
    assert "plugins.notify.url is required" in anywhere.stdout
    strict = _run(root, site, "--strict-plugins", "ls")
    assert strict.returncode == 3 and "plugins.notify.url is required" in strict.stderr


def test_a_settings_validator_error_points_at_the_key_s_line_or_variable(
    tmp_path: Path, site: Path
) -> None:
    root = _notify_project(
        tmp_path, site, "plugins:\n  notify:\n    url: http://x\n    retries: 0\n"
    )
    done = _run(root, site, "ls")
    assert done.returncode == 2
    assert "lockgate.yaml:7: plugins.notify.retries: must be positive, got 0" in done.stderr
    env = {**ENV, "LOCKGATE__PLUGINS__NOTIFY__RETRIES": "-1"}
    from_env = run_lockgate("-C", str(root), "ls", cwd=root, site=site, env=env)
    assert from_env.returncode == 2
    assert (
        "environment LOCKGATE__PLUGINS__NOTIFY__RETRIES: plugins.notify.retries: "
        "must be positive, got -1" in from_env.stderr
    )
