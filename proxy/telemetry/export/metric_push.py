"""OTLP metric push from the Prometheus reader's own snapshots: one aggregation serves both exports.

Every SDK MetricReader keeps its own aggregation, so each measurement is validated, hashed and aggregated once
per reader. When /metrics is served anyway, the OTLP push reuses that reader's cumulative snapshot every
interval instead of adding a PeriodicExportingMetricReader (which doubled the per-call metric cost).
"""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import MetricExporter

from proxy.telemetry.export.prometheus import PrometheusReader
from proxy.telemetry.periodic import PeriodicThread


class MetricPush:
    """Exports `reader`'s snapshot to `exporter` every `interval_seconds` from one daemon thread, and once more
    on shutdown so the last interval is not lost."""

    def __init__(self, reader: PrometheusReader, exporter: MetricExporter, interval_seconds: float,
                 timeout_seconds: float = 10.0) -> None:
        self.reader = reader
        self.exporter = exporter
        self.timeout_millis = timeout_seconds * 1000
        self._thread = PeriodicThread(self._push, interval_seconds, "otlp-metric-push", "metrics.push_failed")

    def push(self) -> None:
        self._thread.run_once()

    def _push(self) -> None:
        data = self.reader.snapshot()
        if data is not None:
            self.exporter.export(data, timeout_millis=self.timeout_millis)

    def shutdown(self) -> None:
        """Blocking (HTTP): call it off the event loop, before the MeterProvider is shut down."""
        if self._thread.stop(self.timeout_millis / 1000):
            self.exporter.shutdown()
