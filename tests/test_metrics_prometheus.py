"""``lockgate metrics --format prometheus``: the state store's metrics (builtin plugin
``metrics``) and every plugin's, in the text exposition format written by
``prometheus_client`` and read back by its parser."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from conftest import ENV, ProjectWorkspace
from events_receiver import SECRET
from lockgate.testing import run_cli

ENVIRON = {**ENV, "HOOK_SECRET": SECRET}
CONFIG = """
events:
  notifiers:
    - kind: webhook
      name: down
      options: {url: "http://127.0.0.1:9/hook", secret_env: HOOK_SECRET}
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "plugin"))
            found[(sample.name, labels)] = sample.value
    return found


def test_the_prometheus_format_parses_and_covers_state_operations_and_the_outbox(
    tmp_path: Path,
) -> None:
    ws = ProjectWorkspace(tmp_path / "p", CONFIG)
    ws.write("alice:app", {"run.py": "print(1)\n"})
    ws.write("alice:bad", {"run.py": "def broken(:\n"})
    for args in (("stage", "alice:app"), ("stage", "alice:bad"), ("promote", "alice:app"),
                 ("promote", "alice:bad")):  # fmt: skip
        run_cli(*args, project=ws.root, env=ENVIRON)
    result = run_cli("metrics", "--format", "prometheus", project=ws.root, env=ENVIRON)
    assert result.exit_code == 0, result.stderr
    got = samples(result.stdout)
    assert got[("lockgate_metrics_components", (("status", "promoted"),))] == 1
    assert got[("lockgate_metrics_components", (("status", "staged"),))] == 1
    assert got[("lockgate_metrics_components_in_stage", (("stage", "staging"),))] == 1
    assert got[("lockgate_metrics_operations", (("action", "promote"), ("outcome", "ok")))] == 1
    refused = (("action", "promote"), ("outcome", "refused"))
    assert got[("lockgate_metrics_operations", refused)] == 1
    ratio = got[("lockgate_metrics_operation_success_ratio", (("action", "promote"),))]
    assert ratio == 0.5
    assert got[("lockgate_metrics_events", ())] >= 6
    assert got[("lockgate_metrics_outbox_pending", (("notifier", "down"),))] >= 6
    assert got[("lockgate_metrics_outbox_failing", (("notifier", "down"),))] >= 1
    assert got[("lockgate_metrics_outbox_dead", (("notifier", "down"),))] == 0
    assert got[("lockgate_metrics_outbox_delivery_failures", (("notifier", "down"),))] >= 1
    promoted = got[("lockgate_metrics_operation_duration_seconds_count", (("action", "promote"),))]
    assert promoted == 1  # the refused promotion took no time to record
    assert got[("lockgate_metrics_operation_duration_seconds_count", (("action", "stage"),))] == 2
    assert got[("lockgate_kernel_plugins_failed", ())] == 0
    assert SECRET not in result.stdout


def test_the_textfile_is_written_whole(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    out = tmp_path / "textfile" / "lockgate.prom"
    out.parent.mkdir()
    result = run_cli("metrics", "--textfile", str(out), project=ws.root, env=ENV)
    assert result.exit_code == 0, result.stderr and result.stdout == ""
    assert samples(out.read_text())[("lockgate_metrics_events", ())] == 0
    assert [p.name for p in out.parent.iterdir()] == ["lockgate.prom"]


def test_durations_of_stage_validate_and_promote_are_histograms_read_from_the_log(
    tmp_path: Path,
) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    ws.write("alice:app", {"run.py": "print(1)\n"})
    for args in (("stage", "alice:app"), ("validate", "alice:app"), ("promote", "alice:app")):
        assert run_cli(*args, project=ws.root, env=ENV).exit_code == 0
    ws.write("alice:app", {"run.py": "print(2)\n"})
    assert run_cli("stage", "alice:app", project=ws.root, env=ENV).exit_code == 0
    # Another process reads what the commands recorded.
    result = run_cli("metrics", "--format", "prometheus", project=ws.root, env=ENV)
    assert result.exit_code == 0, result.stderr
    histograms = {
        f.name: f for f in text_string_to_metric_families(result.stdout) if f.type == "histogram"
    }
    family = histograms["lockgate_metrics_operation_duration_seconds"]
    counts = {s.labels["action"]: s.value for s in family.samples if s.name.endswith("_count")}
    assert counts["stage"] == 2 and counts["promote"] == 1
    assert counts["validate"] >= 1  # the command's and the promotion gate's
    for action in ("stage", "validate", "promote"):
        buckets = [
            (float(s.labels["le"]), s.value)
            for s in family.samples
            if s.name.endswith("_bucket") and s.labels["action"] == action
        ]
        assert buckets[-1] == (float("inf"), counts[action])
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
        total = [s.value for s in family.samples if s.name.endswith("_sum")
                 and s.labels["action"] == action]  # fmt: skip
        assert total[0] > 0
    as_json = json.loads(run_cli("metrics", "--json", project=ws.root, env=ENV).stdout)
    assert as_json['metrics.operation_duration_seconds_count{action="promote"}'] == 1
