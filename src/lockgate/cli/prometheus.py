"""Metrics in the Prometheus text exposition format, through ``prometheus_client``.

A metric ``<plugin>.<name>`` (what ``on_metrics_collect`` returns, attributed) becomes
the gauge ``lockgate_<plugin>_<name>``, every character Prometheus does not allow in a
name replaced by ``_``; labels written in the name, Prometheus style
(``components{status="staged"}``), become the gauge's labels. Every gauge also carries
the label ``plugin``.

A histogram is reported as Prometheus writes one: ``<name>_bucket`` samples with an
``le`` label (cumulative counts), ``<name>_sum`` and ``<name>_count``. When all three
are present they become one ``HistogramMetricFamily`` ``lockgate_<plugin>_<name>``
(the builtin ``metrics`` plugin reports ``operation_duration_seconds`` so); otherwise
each stays a gauge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["families", "render", "write_textfile"]

_NAME = re.compile(r"^(?P<name>[^{]+)(?:\{(?P<labels>.*)\})?$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def _split(key: str) -> tuple[str, str, dict[str, str]]:
    plugin, _, rest = key.partition(".")
    found = _NAME.match(rest) or _NAME.match(key)
    name = found["name"] if found else rest
    labels: dict[str, str] = {"plugin": plugin}
    if found and found["labels"]:
        for label, value in _LABEL.findall(found["labels"]):
            labels[label] = value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    family = "lockgate_" + re.sub(r"[^a-zA-Z0-9_]", "_", f"{plugin}_{name}")
    return family, name, labels


def families(metrics: Mapping[str, float]) -> Iterator[Any]:
    """One ``HistogramMetricFamily`` per histogram reported (see the module doc), one
    ``GaugeMetricFamily`` per other metric name; their samples by label."""
    from prometheus_client.core import GaugeMetricFamily

    grouped: dict[str, list[tuple[dict[str, str], float]]] = {}
    for key, value in sorted(metrics.items()):
        family, _, labels = _split(key)
        grouped.setdefault(family, []).append((labels, float(value)))
    for base in _histograms(grouped):
        yield _histogram(base, *(grouped.pop(f"{base}_{part}") for part in _PARTS))
    for family, samples in grouped.items():
        names = sorted({label for labels, _ in samples for label in labels})
        gauge = GaugeMetricFamily(family, f"lockgate metric {family}", labels=names)
        for labels, value in samples:
            gauge.add_metric([labels.get(n, "") for n in names], value)
        yield gauge


_PARTS = ("bucket", "sum", "count")


def _histograms(grouped: Mapping[str, list[tuple[dict[str, str], float]]]) -> list[str]:
    """The families that are histograms: ``_bucket`` (every sample with ``le``), ``_sum``
    and ``_count`` all there."""
    return [
        family[: -len("_bucket")]
        for family, samples in grouped.items()
        if family.endswith("_bucket")
        and all("le" in labels for labels, _ in samples)
        and all(f"{family[: -len('_bucket')]}_{part}" in grouped for part in _PARTS[1:])
    ]


def _histogram(
    family: str,
    buckets: list[tuple[dict[str, str], float]],
    sums: list[tuple[dict[str, str], float]],
    counts: list[tuple[dict[str, str], float]],
) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in labels.items() if k != "le"))

    names = sorted({label for labels, _ in sums for label in labels})
    found = HistogramMetricFamily(family, f"lockgate histogram {family}", labels=names)
    sum_of = {key(labels): value for labels, value in sums}
    for labels, _ in counts:
        mine = [(b["le"], v) for b, v in buckets if key(b) == key(labels)]
        mine.sort(key=lambda item: float(item[0]))  # float("+Inf") sorts last
        found.add_metric([labels.get(n, "") for n in names], mine, sum_of.get(key(labels), 0.0))
    return found


def _registry(metrics: Mapping[str, float]) -> Any:
    from prometheus_client import CollectorRegistry

    class Collector:
        def collect(self) -> Iterator[Any]:
            return families(metrics)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return registry


def render(metrics: Mapping[str, float]) -> str:
    """The text exposition of ``metrics``."""
    from prometheus_client import generate_latest

    return generate_latest(_registry(metrics)).decode()


def write_textfile(path: Path, metrics: Mapping[str, float]) -> None:
    """Write the exposition to ``path`` atomically (a temporary file renamed over it), as
    node_exporter's textfile collector needs."""
    from prometheus_client import write_to_textfile

    write_to_textfile(str(path), _registry(metrics))
