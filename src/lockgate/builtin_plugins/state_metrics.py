"""Builtin plugin ``metrics``: what the state store knows, as metrics.

``on_metrics_collect`` reads the state store (``context.state``; nothing outside a
project) and reports, with Prometheus-style labels in the metric name (rendered as
labels by ``lockgate metrics --format prometheus``):

* ``components{status=...}`` — components by status;
* ``components_in_stage{stage=...}`` — components current in each stage;
* ``operations{action=...,outcome=...}`` — audited operations by action and outcome,
  and ``operation_success_ratio{action=...}`` (ok / all of that action);
* ``operation_duration_seconds_bucket{action=...,le=...}``, ``..._sum`` and
  ``..._count`` — a histogram of how long stage, validate, promote and rollback took
  (from the operation's start to its commit), read from the ``duration_ms`` their audit
  events carry: recorded by whichever process ran them, kept by the state store, so
  every process reports the same figures (events recorded before durations were
  recorded carry none and are not counted);
* ``events`` — events in the audit log;
* ``outbox_pending{notifier=...}``, ``outbox_dead{notifier=...}``,
  ``outbox_failing{notifier=...}`` (pending deliveries that failed at least once),
  ``outbox_delivered{notifier=...}`` (delivered rows not yet forgotten) and
  ``outbox_delivery_failures{notifier=...}`` (failed attempts of the rows kept) — the
  outbox, when the store keeps one (``EventDeliveries``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lockgate.plugin import EventFilter, hookimpl, store_deliveries

__all__ = ["BUCKETS", "TIMED", "collect"]

TIMED = ("stage", "validate", "promote", "rollback")
"""The actions whose events carry ``duration_ms``."""
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""The histogram's upper bounds in seconds (``+Inf`` follows)."""


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
    metrics.update(durations(state))
    metrics["events"] = counts.events
    outbox = store_deliveries(state)
    if outbox is not None:
        tally: Counter[tuple[str, str]] = Counter()
        for d in outbox.deliveries():
            tally[(d.notifier, d.state)] += 1
            if d.state == "pending" and d.attempts:
                tally[(d.notifier, "failing")] += 1
            # every attempt failed but a delivered row's last one
            tally[(d.notifier, "delivery_failures")] += d.attempts - (d.state == "delivered")
        for notifier in sorted({n for n, _ in tally}):
            for kind in ("pending", "dead", "failing", "delivered", "delivery_failures"):
                metrics[f'outbox_{kind}{{notifier="{_label(notifier)}"}}'] = tally[(notifier, kind)]
    return metrics


def durations(state: Any) -> dict[str, float]:
    """The ``operation_duration_seconds`` histogram (cumulative buckets, sum, count) per
    timed action, from the ``duration_ms`` of its audit events."""
    metrics: dict[str, float] = {}
    for action in TIMED:
        seconds = [
            float(e.details["duration_ms"]) / 1000
            for e in state.events(EventFilter(action=action))
            if isinstance(e.details, dict)
            and isinstance(e.details.get("duration_ms"), (int, float))
        ]
        if not seconds:
            continue
        label = f'action="{action}"'
        for bound in BUCKETS:
            within = sum(s <= bound for s in seconds)
            metrics[f'operation_duration_seconds_bucket{{{label},le="{bound}"}}'] = within
        metrics[f'operation_duration_seconds_bucket{{{label},le="+Inf"}}'] = len(seconds)
        metrics[f"operation_duration_seconds_sum{{{label}}}"] = sum(seconds)
        metrics[f"operation_duration_seconds_count{{{label}}}"] = len(seconds)
    return metrics
