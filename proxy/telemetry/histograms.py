"""Explicit-bucket histograms aggregated in plain dicts on the event loop, read as SDK Histogram metrics.

An SDK histogram record builds a Measurement, validates and hashes its attributes and aggregates under a lock, once
per metric reader: ~15-20 us here, two per call (server and upstream durations). When the Prometheus reader's
snapshot is the only consumer of metrics (the default: /metrics, and the OTLP push of the same snapshot), the
sidecar aggregates these two itself, the same way (bucket by bisect_left on the bounds, count, sum, min, max;
cumulative from the start), and the reader adds them to its snapshot (see PrometheusReader.include).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, HistogramDataPoint, Metric

Labels = tuple[tuple[str, Any], ...]


class DurationHistogram:
    """One cumulative histogram; `record()` takes the SDK instrument's arguments."""

    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(float(bound) for bound in bounds)
        self.started = time.time_ns()
        self._points: dict[Labels, list[Any]] = {}  # sorted labels -> [count, sum, min, max, bucket counts]
        self._by_order: dict[Labels, list[Any]] = {}  # labels in the order given -> the same point (no sort a call)
        self._lock = threading.Lock()  # records on the loop, snapshots from the OTLP push thread too

    def record(self, value: float, attributes: Mapping[str, Any]) -> None:
        labels = tuple(attributes.items())
        with self._lock:
            point = self._by_order.get(labels)
            if point is None:
                point = self._by_order[labels] = self._point(labels, value)
            point[0] += 1
            point[1] += value
            if value < point[2]:
                point[2] = value
            if value > point[3]:
                point[3] = value
            point[4][bisect_left(self.bounds, value)] += 1

    def _point(self, labels: Labels, value: float) -> list[Any]:
        canonical = tuple(sorted(labels))
        point = self._points.get(canonical)
        if point is None:
            point = self._points[canonical] = [0, 0.0, value, value, [0] * (len(self.bounds) + 1)]
        return point

    def metric(self) -> Metric:
        now = time.time_ns()
        with self._lock:
            points = [(labels, count, total, low, high, list(buckets))
                      for labels, (count, total, low, high, buckets) in self._points.items()]
        data_points = [HistogramDataPoint(
            attributes=dict(labels), start_time_unix_nano=self.started, time_unix_nano=now, count=count, sum=total,
            bucket_counts=buckets, explicit_bounds=self.bounds, min=low, max=high)
            for labels, count, total, low, high, buckets in points]
        data = Histogram(data_points=data_points, aggregation_temporality=AggregationTemporality.CUMULATIVE)
        return Metric(name=self.name, description=self.description, unit=self.unit, data=data)
