"""``GET /metrics``: the server's own counters and the metrics plugins report, in
Prometheus' text format (prometheus-client).

The server counts requests (by method, route and status) and their durations, and failed
authentications. At each scrape, ``on_metrics_collect`` is called as ``lockgate
metrics`` calls it; every numeric value a plugin reports becomes one sample of the gauge
``lockgate_plugin_metric{name="<metric>"}`` (names are free text there, so they go in a
label rather than in the metric name).

With ``lockgate serve --workers N`` a scrape is answered by one of the N processes, yet
sees the whole server: each process writes its counters and histograms to files of its
own in a directory the supervisor made (prometheus-client's multiprocess mode), and a
scrape adds up every file, those of processes that ended (a replaced worker) included, so
counters never go backwards. Plugin metrics are asked once, by the process answering.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from lockgate.core.context import MetricsContext
from lockgate.core.project import Project

__all__ = ["ServerMetrics"]


class _PluginMetrics:
    """A collector that asks the metrics plugins at scrape time."""

    def __init__(self, open_project: Callable[[], Project]) -> None:
        self.open_project = open_project

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "lockgate_plugin_metric",
            "A metric a plugin reports (on_metrics_collect)",
            labels=["name"],
        )
        project = self.open_project()
        try:
            found = project.hooks.on_metrics_collect(
                MetricsContext(project_root=project.root, config=project.resolved())
            )
        finally:
            project.close()
        for name, value in sorted(found.items()):
            if isinstance(value, int | float) and not isinstance(value, bool):
                family.add_metric([name], float(value))
        yield family


class ServerMetrics:
    """The server's registry (its own, so two servers in one process never mix);
    ``shared``: the directory the processes of one server count in."""

    def __init__(self, open_project: Callable[[], Project], shared: Path | None = None) -> None:
        self.shared = shared
        if shared is not None:
            _count_in_files(shared)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lockgate_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "lockgate_http_request_seconds",
            "Time to answer a request",
            ["route"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "lockgate_auth_failures",
            "Requests refused for their token (401)",
            registry=self.registry,
        )
        self.plugins = _PluginMetrics(open_project)
        self.registry.register(self.plugins)

    def render(self) -> bytes:
        """The text exposition of every metric (of every process, when ``shared``)."""
        if self.shared is None:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.shared))  # type: ignore[no-untyped-call]
        registry.register(self.plugins)
        return generate_latest(registry)


def _count_in_files(directory: Path) -> None:
    """Make this process's metrics count in files under ``directory`` from now on (to be
    called before any metric is made: the supervisor's workers do, at start)."""
    from prometheus_client import values

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(directory):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
