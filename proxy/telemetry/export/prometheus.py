"""Prometheus text exposition of the OTel metrics, through a MetricReader the sidecar owns.

opentelemetry-exporter-prometheus registers its collector in prometheus_client's process-global REGISTRY (two
sidecars in one process would be exported twice) and pins the SDK to its beta's exact minor. This reader keeps a
private CollectorRegistry instead and lets prometheus_client do the text format (escaping, `_total`, buckets).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import structlog
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    Metric,
    MetricReader,
    MetricsData,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.core import Metric as Family

from proxy.telemetry.export.worker_metrics import WorkerMetrics

log = structlog.get_logger("proxy.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


class PrometheusReader(MetricReader):
    """A pull reader: each scrape collects the current cumulative state and renders it. With `shared` (several
    workers), a scrape publishes this worker's state and renders the sum over every worker's."""

    def __init__(self, shared: WorkerMetrics | None = None) -> None:
        super().__init__()
        self.shared = shared
        self._data: MetricsData | None = None
        self._included: list[tuple[str, Callable[[], Metric]]] = []
        self._collecting = threading.Lock()  # scrapes (event loop) and the OTLP push thread both collect
        self._collector = _Collector(self)
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)

    def render(self) -> bytes:
        if self.shared is None:
            return generate_latest(self._registry)
        try:
            self.publish()
        except OSError as error:  # the other workers' shares still answer; ours is as fresh as its last publish
            log.warning("metrics.publish_failed", error=str(error))
        return generate_latest(_Families(self.shared.merged()))  # type: ignore[arg-type]

    def publish(self) -> None:
        """This worker's families into the shared directory (only with `shared`), collected and written in turn."""
        assert self.shared is not None
        with self.shared.publishing:
            self.shared.publish(list(self._collector.collect()))

    def snapshot(self) -> MetricsData | None:
        with self._collecting:
            self.collect()
            return self._data

    def include(self, scope_name: str, produce: Callable[[], Metric]) -> None:
        """Adds a metric the sidecar aggregates itself (see histograms.py) to every snapshot, in `scope_name`."""
        self._included.append((scope_name, produce))

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        self._data = _with_included(metrics_data, self._included) if self._included else metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._data = None


def _with_included(data: MetricsData, included: list[tuple[str, Callable[[], Metric]]]) -> MetricsData:
    """`data` with the included metrics appended to their scope (in the first resource, the provider's own)."""
    if not data.resource_metrics:
        return data
    first, *others = data.resource_metrics
    scopes = list(first.scope_metrics)
    for scope_name, produce in included:
        index = next((n for n, scope in enumerate(scopes) if scope.scope.name == scope_name), None)
        if index is None:
            scopes.append(ScopeMetrics(InstrumentationScope(scope_name), [produce()], ""))
        else:
            scopes[index] = replace(scopes[index], metrics=[*scopes[index].metrics, produce()])
    return MetricsData([replace(first, scope_metrics=scopes), *others])


class _Families:
    """What generate_latest needs of a registry: families to collect."""

    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def collect(self) -> list[Family]:
        return self._families


class _Collector:
    def __init__(self, reader: PrometheusReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[Family]:
        data = self._reader.snapshot()
        if data is None:
            return
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    family = to_family(metric)
                    if family is not None:
                        yield family


def prometheus_name(name: str, unit: str | None) -> str:
    """`mcp.server.operation.duration` + `s` -> `mcp_server_operation_duration_seconds`."""
    base = _INVALID.sub("_", name)
    suffix = _UNIT_SUFFIX.get(unit or "")
    return f"{base}_{suffix}" if suffix and not base.endswith(suffix) else base


def to_family(metric: Metric) -> Family | None:
    name = prometheus_name(metric.name, metric.unit)
    points = list(metric.data.data_points)
    labels = sorted({_INVALID.sub("_", key) for point in points for key in (point.attributes or {})})

    def values(point: Any) -> list[str]:
        attributes = {_INVALID.sub("_", key): str(value) for key, value in (point.attributes or {}).items()}
        return [attributes.get(label, "") for label in labels]

    data = metric.data
    description = metric.description or metric.name
    if isinstance(data, Sum) and data.is_monotonic:
        family: Family = CounterMetricFamily(name.removesuffix("_total"), description, labels=labels)
        for point in points:
            family.add_metric(values(point), point.value)
    elif isinstance(data, Sum | Gauge):
        family = GaugeMetricFamily(name, description, labels=labels)
        for point in points:
            family.add_metric(values(point), point.value)
    elif isinstance(data, Histogram):
        family = HistogramMetricFamily(name, description, labels=labels)
        for point in points:
            family.add_metric(values(point), _cumulative(point.explicit_bounds, point.bucket_counts), point.sum)
    else:
        return None
    return family


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """OTel bucket counts are per bucket; Prometheus `le` buckets are cumulative and end at +Inf."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(bounds, counts, strict=False):
        running += count
        buckets.append((_bound(bound), running))
    buckets.append(("+Inf", running + (counts[-1] if len(counts) > len(bounds) else 0)))
    return buckets


def _bound(value: float) -> str:
    return repr(float(value))
