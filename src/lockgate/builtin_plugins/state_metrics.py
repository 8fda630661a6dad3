"""Builtin plugin ``metrics``: what the state store knows, as metrics.

``on_metrics_collect`` reads the state store (``context.state``; nothing outside a
project) and reports, with Prometheus-style labels in the metric name (rendered as
labels by ``lockgate metrics --format prometheus``):

* ``components{status=...}`` — components by status;
* ``components_in_stage{stage=...}`` — components current in each stage;
* ``operations{action=...,outcome=...}`` — audited operations by action and outcome,
  and ``operation_success_ratio{action=...}`` (ok / all of that action);
* ``events`` — events in the audit log;
* ``outbox_pending{notifier=...}``, ``outbox_dead{notifier=...}``,
  ``outbox_failing{notifier=...}`` (pending deliveries that failed at least once) and
  ``outbox_delivered{notifier=...}`` (delivered rows not yet forgotten) — the outbox,
  when the store keeps one (``EventDeliveries``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lockgate.plugin import hookimpl, store_deliveries

__all__ = ["collect"]


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@hookimpl
def on_metrics_collect(context: Any) -> dict[str, float] | None:
    state = getattr(context, "state", None)
    return None if state is None else collect(state)


def collect(state: Any) -> dict[str, float]:
    """Every metric of the module doc, from ``state``."""
    metrics: dict[str, float] = {}
    counts = state.counts()
    for status, n in counts.by_status.items():
        metrics[f'components{{status="{_label(status)}"}}'] = n
    for stage, n in Counter(p.stage for p in state.pointers()).items():
        metrics[f'components_in_stage{{stage="{_label(stage)}"}}'] = n
    for action, outcomes in counts.operations.items():
        total = sum(outcomes.values())
        for outcome, n in outcomes.items():
            metrics[f'operations{{action="{_label(action)}",outcome="{_label(outcome)}"}}'] = n
        if total:
            metrics[f'operation_success_ratio{{action="{_label(action)}"}}'] = (
                outcomes.get("ok", 0) / total
            )
    metrics["events"] = counts.events
    outbox = store_deliveries(state)
    if outbox is not None:
        tally: Counter[tuple[str, str]] = Counter()
        for d in outbox.deliveries():
            tally[(d.notifier, d.state)] += 1
            if d.state == "pending" and d.attempts:
                tally[(d.notifier, "failing")] += 1
        for notifier in sorted({n for n, _ in tally}):
            for kind in ("pending", "dead", "failing", "delivered"):
                metrics[f'outbox_{kind}{{notifier="{_label(notifier)}"}}'] = tally[(notifier, kind)]
    return metrics
