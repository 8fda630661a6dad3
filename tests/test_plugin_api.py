"""lockgate.plugin: the public plugin API, the context hooks and commands receive, and the
rule that plugins import nothing else."""

from __future__ import annotations

import ast
import importlib
import json
import re
import signal
import sys
from pathlib import Path

import pytest

import lockgate
import lockgate.plugin as plugin_api
from conftest import ENV, REPO, ProjectWorkspace, run_lockgate, write_distribution

SRC = REPO / "src" / "lockgate"

# --------------------------------------------------------------------------- import rule

# A module of a builtin plugin may import, from lockgate, only these and its own package.
ALLOWED = ("lockgate.plugin", "lockgate.testing")
# Plugins with modules of their own beside them: the local content store's writing (which
# names the journal's type), journal and releases, the workspace source its scan, the sqlite
# state store's lock files, schema and bounded reads, the webhook notifier its HTTP client.
SAME_PLUGIN = {
    "lockgate.builtin_plugins.local_store": (
        "lockgate.builtin_plugins.local_ingest",
        "lockgate.builtin_plugins.local_journal",
        "lockgate.builtin_plugins.local_releases",
    ),
    "lockgate.builtin_plugins.local_ingest": ("lockgate.builtin_plugins.local_journal",),
    "lockgate.builtin_plugins.workspace": ("lockgate.builtin_plugins._workspace_scan",),
    "lockgate.builtin_plugins.webhook_notifier": ("lockgate.builtin_plugins._webhook_http",),
    "lockgate.builtin_plugins.sqlite_state": (
        "lockgate.builtin_plugins.file_locks",
        "lockgate.builtin_plugins.sqlite_outbox",
        "lockgate.builtin_plugins.sqlite_reads",
        "lockgate.builtin_plugins.sqlite_schema",
    ),
    "lockgate.builtin_plugins.sqlite_reads": ("lockgate.builtin_plugins.sqlite_schema",),
    # The release layout is shared: the directory target lays releases out itself for a
    # content store that keeps none.
    "lockgate.builtin_plugins.directory_target": ("lockgate.builtin_plugins.local_releases",),
}


def _plugin_modules() -> list[tuple[Path, str, str]]:
    """(file, its module name, the package it may import from) for every plugin module."""
    found = []
    builtins = SRC / "builtin_plugins"
    for path in sorted(builtins.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        top = path.relative_to(builtins).parts[0].removesuffix(".py")
        own = f"lockgate.builtin_plugins.{top}" if top != "__init__" else "lockgate.builtin_plugins"
        found.append((path, module, own))
    for folder in ("example_plugins", "plugins"):  # example and first-party distributions
        for path in sorted((REPO / folder).rglob("*.py")):
            dist = path.relative_to(REPO / folder).parts[0]
            package = dist.replace("-", "_")
            found.append((path, package, package))
    return found


def _lockgate_imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level] if node.level else []
                target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            else:
                target = node.module or ""
            if target == "lockgate":  # ``from lockgate import x`` names a module or not
                names += [(node.lineno, f"lockgate.{alias.name}") for alias in node.names]
            else:
                names.append((node.lineno, target))
    return [(line, name) for line, name in names if name.split(".")[0] == "lockgate"]


def test_plugins_import_only_the_public_plugin_api() -> None:
    modules = _plugin_modules()
    assert len(modules) > 20  # every builtin plugin and the example plugins are walked
    offences = []
    for path, module, own in modules:
        allowed = (*ALLOWED, own, *SAME_PLUGIN.get(own, ()))
        for line, name in _lockgate_imports(path, module):
            if not any(name == a or name.startswith(f"{a}.") for a in allowed):
                offences.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert not offences, "\n".join(offences)


def test_the_import_walk_catches_a_private_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from lockgate.contracts.models import Issue\nfrom lockgate import Project\n"
        "import lockgate.cli.output\nfrom . import sibling\n"
    )
    found = [name for _, name in _lockgate_imports(bad, "lockgate.builtin_plugins.x.bad")]
    assert found == [
        "lockgate.contracts.models",
        "lockgate.Project",
        "lockgate.cli.output",
        "lockgate.builtin_plugins.x",
    ]


# --------------------------------------------------------------------------- __all__


def test_all_is_exact_and_every_name_importable() -> None:
    names = plugin_api.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(plugin_api, name) is not None, name
    assert sorted(dir(plugin_api)) == sorted(names)
    with pytest.raises(AttributeError):
        _ = plugin_api.Project  # type: ignore[attr-defined]  # the kernel is not plugin API


def test_all_holds_every_boundary_record_contract_and_error() -> None:
    from lockgate import errors
    from lockgate.contracts import content, models, source, state, target

    roles = {n for m in (source, content, target, state) for n in m.__all__}
    # Kernel-only helpers of the role contracts: how the kernel probes capabilities.
    kernel_only = {n for n in roles if n.startswith(("store_", "target_"))}
    expected = (
        (roles - kernel_only)
        | (set(models.__all__) - {"IntegrationStage"})
        | (set(errors.__all__) - {"environment_fault"})
    )
    assert expected <= set(plugin_api.__all__), sorted(expected - set(plugin_api.__all__))
    # Whatever a hook receives or a role contract names is public.
    for name in ("hookimpl", "PluginContext", "Prepared", "Target", "Register", "Watchable"):
        assert name in plugin_api.__all__


def test_every_public_name_has_a_docstring_or_is_a_constant() -> None:
    for name in plugin_api.__all__:
        value = getattr(plugin_api, name)
        if isinstance(value, str | int) or name.isupper():
            continue
        if name in {"Register", "LinkMode"}:  # type aliases: documented in the module
            continue
        assert getattr(value, "__doc__", None), name


# --------------------------------------------------------------------------- helpers


def test_audit_chain_helpers_chain_events_by_hash() -> None:
    event = plugin_api.AuditEvent(
        at="2026-01-01T00:00:00+00:00",
        actor="alice",
        action="stage",
        component="alice:etl",
        revision="a" * 64,
        seq=1,
    )
    first = plugin_api.event_hash(plugin_api.GENESIS, event)
    assert re.fullmatch("[0-9a-f]{64}", first)
    assert plugin_api.event_hash(first, event) != first  # the previous hash is chained in
    earlier, later = "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"
    assert plugin_api.not_before(earlier, later) == later
    assert plugin_api.not_before(later, earlier) == later


def test_name_rules_and_digests_are_the_kernels() -> None:
    assert plugin_api.check_name("workspace", "alice") == "alice"
    with pytest.raises(plugin_api.InputError):
        plugin_api.check_name("workspace", "../x")
    assert plugin_api.name_problem("ok-name") is None
    assert plugin_api.name_problem("a/b") is not None
    assert plugin_api.short("f" * 64) == "f" * 12
    digest = plugin_api.digest_bytes(b"x")
    assert re.fullmatch("[0-9a-f]{64}", digest)
    hasher = plugin_api.new_hasher()
    hasher.update(b"x")
    assert hasher.hexdigest() == digest
    assert plugin_api.now_iso().endswith("+00:00")
    ref = plugin_api.ComponentRef.parse("alice:etl")
    assert (ref.workspace, ref.component_id) == ("alice", "etl")


def test_durable_write_and_failpoint_helpers(tmp_path: Path) -> None:
    target = tmp_path / "f"
    plugin_api.write_durably(str(target), b"data")
    assert target.read_bytes() == b"data"
    plugin_api.fsync_dir(tmp_path)
    plugin_api.failpoint("never.armed")  # a no-op unless LOCKGATE_FAILPOINTS arms it


def test_current_context_outside_a_command_is_a_plugin_error() -> None:
    with pytest.raises(plugin_api.PluginError, match="outside a lockgate command"):
        plugin_api.current_context()


def test_operations_need_a_project() -> None:
    context = plugin_api.PluginContext(plugin="p")
    with pytest.raises(plugin_api.MissingCapabilityError, match="needs a project"):
        _ = context.operations


# --------------------------------------------------------------------------- the context

PROBE = """
import json
import attrs
import click
from lockgate.plugin import hookimpl, pass_context


@attrs.frozen
class Settings:
    out: str = "probe.jsonl"


@hookimpl
def register_settings():
    return Settings


def _log(context, hook, **extra):
    line = {
        "hook": hook,
        "plugin": context.plugin,
        "root": str(context.project_root),
        "actor": context.actor,
        "stage": context.stage,
        "protected": getattr(context.stage_config, "protected", None),
        "json": context.json,
        "verbosity": context.verbosity,
        **extra,
    }
    with open(context.project_root / context.settings.out, "a") as f:
        f.write(json.dumps(line) + "\\n")


@hookimpl
def on_stage(event, settings, context):
    _log(context, "on_stage", out=settings.out)


@hookimpl
def on_promote(event, context):
    _log(context, "on_promote")
    context.warn(f"promoted {event.component}")


@hookimpl
def on_rollback(event, context):
    _log(context, "on_rollback")


@hookimpl
def on_metrics_collect(context):
    _log(context, "on_metrics_collect")
    return {"configured": 1 if context.config.get("stages") else 0}


@click.command("probe")
@pass_context
def probe(context):
    click.echo(json.dumps({"root": str(context.project_root), "actor": context.actor,
                           "plugin": context.plugin, "out": context.settings.out}))
    context.warn("said by the command")


@click.command("probe-run")
@click.argument("args", nargs=-1)
@pass_context
def probe_run(context, args):
    out, err, code = context.operations.run_command(list(args))
    click.echo(json.dumps({"out": out.decode(), "err": err.decode(), "code": code}))


@hookimpl
def register_commands(register):
    register(probe)
    register(probe_run)
"""

# A plugin written before the context existed: it takes only what it always took.
OLD_STYLE = """
import os
from lockgate.plugin import hookimpl

def _log(line):
    if "OLD_STYLE_LOG" in os.environ:
        with open(os.environ["OLD_STYLE_LOG"], "a") as f:
            f.write(line + "\\n")

@hookimpl
def on_promote(event):
    _log(event.component)

@hookimpl
def on_stage(event, settings):
    _log("stage " + event.component)
"""


@pytest.fixture
def probed(tmp_path: Path, site: Path) -> tuple[ProjectWorkspace, Path]:
    write_distribution(site, "probe", "1.0", {"probe": "ctxprobe"}, {"ctxprobe": PROBE})
    write_distribution(site, "old-style", "1.0", {"oldstyle": "oldstyle"}, {"oldstyle": OLD_STYLE})
    work = ProjectWorkspace(
        tmp_path / "project", "stages:\n  staging: {}\n  production:\n    protected: true\n"
    )
    work.write("alice:etl", {"main.py": "print('hi')\n"})
    return work, site


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lifecycle_hooks_receive_the_context_of_their_plugin_and_stage(
    probed: tuple[ProjectWorkspace, Path], tmp_path: Path
) -> None:
    work, site = probed
    env = {**ENV, "OLD_STYLE_LOG": str(tmp_path / "old.log")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    common = ("-C", str(work.root), "--actor", "carol")
    for args in (
        ("stage", "alice:etl"),
        ("promote", "alice:etl", "--to", "staging"),
        ("rollback", "alice:etl", "--stage", "staging", "--to", "none"),
    ):
        result = run_lockgate(*common, *args, cwd=elsewhere, site=site, env=env)
        assert result.returncode == 0, result.stderr
    lines = _lines(work.root / "probe.jsonl")
    assert [line["hook"] for line in lines] == ["on_stage", "on_promote", "on_rollback"]
    for line in lines:
        assert line["plugin"] == "probe"
        assert line["root"] == str(work.root.resolve())
        assert line["actor"] == "carol"
        assert line["stage"] == "staging"
        assert line["protected"] is False
    assert lines[0]["out"] == "probe.jsonl"  # settings and context side by side
    # The old signatures keep working: pluggy passes only the arguments a hook takes.
    assert (tmp_path / "old.log").read_text().splitlines() == ["stage alice:etl", "alice:etl"]


def test_a_plugin_warning_lands_in_the_json_warnings_and_does_not_fail(
    probed: tuple[ProjectWorkspace, Path],
) -> None:
    work, site = probed
    assert run_lockgate("stage", "alice:etl", cwd=work.root, site=site, env=ENV).returncode == 0
    result = run_lockgate(
        "--json", "promote", "alice:etl", "--to", "staging", cwd=work.root, site=site, env=ENV
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["warnings"] == ["probe: promoted alice:etl"]
    assert "promoted alice:etl" not in result.stderr
    assert _lines(work.root / "probe.jsonl")[-1]["json"] is True


def test_a_plugin_warning_is_printed_on_stderr_unless_quiet(
    probed: tuple[ProjectWorkspace, Path],
) -> None:
    work, site = probed
    run_lockgate("stage", "alice:etl", cwd=work.root, site=site, env=ENV)
    loud = run_lockgate(
        "promote", "alice:etl", "--to", "staging", cwd=work.root, site=site, env=ENV
    )
    assert loud.returncode == 0, loud.stderr
    assert "lockgate: warning: probe: promoted alice:etl" in loud.stderr
    run_lockgate(
        "rollback", "alice:etl", "--stage", "staging", "--to", "none", cwd=work.root, site=site,
        env=ENV,
    )  # fmt: skip
    quiet = run_lockgate(
        "-q", "promote", "alice:etl", "--to", "staging", cwd=work.root, site=site, env=ENV
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" not in quiet.stderr
    assert _lines(work.root / "probe.jsonl")[-1]["verbosity"] == -1


def test_a_plugin_command_opens_the_project_given_by_dash_c_or_the_environment(
    probed: tuple[ProjectWorkspace, Path], tmp_path: Path
) -> None:
    work, site = probed
    (work.root / "lockgate.yaml").write_text("plugins:\n  probe:\n    out: custom.jsonl\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_option = run_lockgate(
        "-C", str(work.root), "--actor", "dave", "probe", cwd=elsewhere, site=site, env=ENV
    )
    assert by_option.returncode == 0, by_option.stderr
    assert json.loads(by_option.stdout) == {
        "root": str(work.root.resolve()),
        "actor": "dave",
        "plugin": "probe",
        "out": "custom.jsonl",
    }
    assert "lockgate: warning: probe: said by the command" in by_option.stderr
    by_env = run_lockgate(
        "probe", cwd=elsewhere, site=site, env={**ENV, "LOCKGATE_PROJECT": str(work.root)}
    )
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["root"] == str(work.root.resolve())
    nowhere = run_lockgate("probe", cwd=elsewhere, site=site, env=ENV)
    assert nowhere.returncode == 2
    assert "no lockgate.yaml" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


def test_run_command_runs_a_command_line_as_a_new_process_would(
    probed: tuple[ProjectWorkspace, Path],
) -> None:
    work, site = probed
    for args in (["--json", "ls"], ["stage", "nobody:etl"], ["ls", "nobody"]):
        cold = run_lockgate(*args, cwd=work.root, site=site, env=ENV)
        ran = run_lockgate("probe-run", "--", *args, cwd=work.root, site=site, env=ENV)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout) == {
            "out": cold.stdout,
            "err": cold.stderr,
            "code": cold.returncode,
        }


def test_run_command_outside_the_command_line_is_missing() -> None:
    from lockgate.operations.facade import ProjectOperations

    operations: plugin_api.Operations = ProjectOperations(project=None)  # type: ignore[arg-type]
    with pytest.raises(plugin_api.MissingCapabilityError, match="runs no command lines"):
        operations.run_command(["ls"])


def test_the_warm_protocol_names_the_socket_and_the_environment(tmp_path: Path) -> None:
    assert plugin_api.warm_socket_path(tmp_path) == str(tmp_path / ".lockgate" / "watch.sock")
    env = {"LOCKGATE_ACTOR": "a", "LOCKGATE__X__Y": "1", "HOME": "/h", "PATH": "/b"}
    assert plugin_api.warm_request_env(env) == {"LOCKGATE_ACTOR": "a", "LOCKGATE__X__Y": "1"}
    assert lockgate.__version__ == plugin_api.WARM_VERSION
    assert plugin_api.WARM_COOKIE_PREFIX.startswith(".")  # hidden: never a workspace


def test_metrics_hook_gets_its_plugin_context_and_the_configuration(
    probed: tuple[ProjectWorkspace, Path],
) -> None:
    work, site = probed
    result = run_lockgate("--json", "metrics", cwd=work.root, site=site, env=ENV)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["probe.configured"] == 1
    line = _lines(work.root / "probe.jsonl")[-1]
    assert (line["hook"], line["plugin"], line["stage"]) == ("on_metrics_collect", "probe", None)


# --------------------------------------------------------------------------- watch

# A source of its own: components are ``<root>/<workspace>/<id>/`` (no type level),
# and it can be watched. It imports only lockgate.plugin.
FLAT_SOURCE = """
import os
from pathlib import Path
from lockgate.plugin import (
    Component, ComponentRef, Discovery, FileStat, NotFoundError, ScannedFile, ScanResult,
    WatchHint, hookimpl,
)


class FlatPaths:
    def __init__(self, root, wanted):
        self.root = root
        self.wanted = wanted

    def hint(self, path, *, is_dir):
        if path == self.root:
            return WatchHint("workspace", None)
        if not path.startswith(self.root + os.sep):
            return None
        parts = path[len(self.root) + 1:].split(os.sep)
        if self.wanted is not None and parts[0] not in self.wanted:
            return None
        if len(parts) == 1:
            return WatchHint("workspace", parts[0]) if is_dir else None
        return WatchHint("component", parts[0], os.path.join(self.root, *parts[:2]))

    def workspace_of(self, path):
        if not path.startswith(self.root + os.sep):
            return None
        return path[len(self.root) + 1:].split(os.sep)[0]


class FlatSource:
    def __init__(self, root):
        self.root = root

    def discover(self, workspaces=None):
        found = []
        for ws in sorted(workspaces or os.listdir(self.root)):
            base = self.root / ws
            if base.is_dir():
                for d in sorted(base.iterdir()):
                    if d.is_dir():
                        found.append(Component(ComponentRef(ws, d.name), "scripts", d))
        return Discovery(tuple(found))

    def find(self, ref):
        for c in self.discover([ref.workspace]).components:
            if c.ref == ref:
                return c
        raise NotFoundError(f"no component {ref}")

    def scan(self, component):
        files = []
        for dirpath, _, names in os.walk(component.path):
            for name in names:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, component.path).replace(os.sep, "/")
                files.append(ScannedFile(rel, "file", FileStat.of(os.lstat(full))))
        return ScanResult(component, tuple(files))

    def remember(self, scan, digests, revision=None):
        pass

    def watch_paths(self, workspaces=None):
        return FlatPaths(str(self.root), frozenset(workspaces) if workspaces else None)


class Unwatchable(FlatSource):
    watch_paths = None


@hookimpl
def on_stage(event, context):
    context.warn(f"saw {event.component}")


@hookimpl
def register_sources(register):
    register("flat", lambda ctx: FlatSource((ctx.project_root / "flat").resolve()))
    register("unwatchable", lambda ctx: Unwatchable((ctx.project_root / "flat").resolve()))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="signals")
def test_watch_works_with_any_source_that_offers_watch_paths(tmp_path: Path, site: Path) -> None:
    from watch_helpers import Watch

    write_distribution(
        site, "flat-source", "1.0", {"flat": "flatsource"}, {"flatsource": FLAT_SOURCE}
    )
    work = ProjectWorkspace(tmp_path / "project", "workspaces:\n  source: flat\n")
    component = work.root / "flat" / "alice" / "etl"
    component.mkdir(parents=True)
    (component / "main.py").write_text("print(1)\n")
    watch = Watch(work.root, env={"PYTHONPATH": str(site)})
    try:
        ready = watch.ready()
        assert ready["root"] == str((work.root / "flat").resolve())
        first = watch.staged("alice:etl", 0)
        mark = watch.mark()
        (component / "main.py").write_text("print(2)\n")
        second = watch.staged("alice:etl", mark)
        assert second["previous_revision"] == first["revision"]
        assert second["changes"]["modified"] == 1
        # A plugin's warning about a revision comes with that revision's line.
        assert second["warnings"] == ["flat: saw alice:etl"]
    finally:
        assert watch.stop(signal.SIGTERM) == 0, watch.stderr


def test_watch_refuses_a_source_without_watch_paths_in_one_line(tmp_path: Path, site: Path) -> None:
    write_distribution(
        site, "flat-source", "1.0", {"flat": "flatsource"}, {"flatsource": FLAT_SOURCE}
    )
    work = ProjectWorkspace(tmp_path / "project", "workspaces:\n  source: unwatchable\n")
    (work.root / "flat").mkdir()
    result = run_lockgate("watch", cwd=work.root, site=site, env=ENV)
    assert result.returncode == 2
    assert "has no watch_paths()" in result.stderr
    assert "lockgate sync" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugin_api_module_imports_nothing_heavy() -> None:
    # Importing the API must not import the kernel: plugins load at every start-up.
    code = (
        "import sys, lockgate.plugin; "
        "print(sorted(m for m in sys.modules if m.startswith('lockgate.core')))"
    )
    result = run_lockgate(python_code=code, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    importlib.import_module("lockgate.plugin")


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("lockgate.core.contracts", "StateStore", "lockgate.contracts.state"),
        ("lockgate.core.contracts", "Target", "lockgate.contracts.target"),
        ("lockgate.core.models", "Issue", "lockgate.contracts.models"),
    ],
)
def test_the_old_contract_modules_still_answer_with_a_warning(
    old: str, name: str, new: str
) -> None:
    """Plugins written against the earlier documented paths keep working, and are told
    where the name lives now."""
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved: import it from"):
        found = getattr(module, name)
    assert found is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError):
        module.NoSuchName  # noqa: B018


def test_sql_filters_narrow_by_what_is_given_with_the_stores_placeholder() -> None:
    from lockgate.plugin import EventFilter, equal_clauses, sql_where

    assert equal_clauses("?", stage=None, component_id=None) == ([], [])
    assert sql_where([]) == ""
    clauses, args = equal_clauses("%s", stage="prod", component_id=None, actor="ann")
    assert (clauses, args) == (["stage = %s", "actor = %s"], ["prod", "ann"])
    assert sql_where(clauses) == " WHERE stage = %s AND actor = %s"
    query, values = EventFilter(stage="prod", since="t0", limit=5).sql("SELECT * FROM events")
    assert query == "SELECT * FROM events WHERE stage = ? AND at >= ? ORDER BY seq LIMIT 5"
    assert values == ["prod", "t0"]


def test_the_change_journal_contract() -> None:
    """``TrustsEvents`` / ``ChangeJournal``: the workspace source takes a journal; the
    watcher's journal answers per directory, only while trusted, never across a loss."""
    from lockgate.builtin_plugins.watcher.observe import _Journal
    from lockgate.builtin_plugins.workspace import WorkspaceSource

    assert issubclass(WorkspaceSource, plugin_api.TrustsEvents)
    journal: plugin_api.ChangeJournal = _Journal()
    start = journal.generation()
    assert journal.changed(start) is None  # not trusted: no cookie yet
    journal.trusted = True  # type: ignore[attr-defined]
    assert journal.changed(start) is None  # which directories have a watch is unknown
    journal.watched = lambda d: not d.startswith("/w/c/lost")  # type: ignore[attr-defined]
    test = journal.changed(start)
    assert test is not None and not test("/w/c") and not test("/w/c/lib")
    assert test("/w/c/lost")  # no watch: no event proves nothing, read it again
    journal.record("/w/c/lib/a.py", False)  # type: ignore[attr-defined]
    journal.record("/w/c/old", True)  # type: ignore[attr-defined]
    assert journal.generation() == start + 2
    test = journal.changed(start)
    assert test is not None
    assert test("/w/c/lib") and not test("/w/c/lib/sub")  # a file: its directory
    assert test("/w/c") and test("/w/c/old") and test("/w/c/old/deep/er")  # a directory
    assert not test("/w/other")
    later = journal.changed(journal.generation())
    assert later is not None and not later("/w/c/lib")  # nothing since then
    journal.lose()  # type: ignore[attr-defined]
    assert journal.changed(start) is None and journal.changed(journal.generation() - 1) is None
    assert journal.changed(journal.generation()) is not None
