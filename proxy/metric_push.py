"""OTLP metric push from the Prometheus reader's own snapshots: one aggregation serves both exports.

Every SDK MetricReader keeps its own aggregation, so each measurement is validated, hashed and aggregated once
per reader. When /metrics is served anyway, the OTLP push reuses that reader's cumulative snapshot every
interval instead of adding a PeriodicExportingMetricReader (which doubled the per-call metric cost).
"""

from __future__ import annotations

import threading

import structlog
from opentelemetry.sdk.metrics.export import MetricExporter

from proxy.prometheus import PrometheusReader

log = structlog.get_logger("proxy.metrics")


class MetricPush:
    """Exports `reader`'s snapshot to `exporter` every `interval_seconds` from one daemon thread, and once more
    on shutdown so the last interval is not lost."""

    def __init__(self, reader: PrometheusReader, exporter: MetricExporter, interval_seconds: float,
                 timeout_seconds: float = 10.0) -> None:
        self.reader = reader
        self.exporter = exporter
        self.interval_seconds = interval_seconds
        self.timeout_millis = timeout_seconds * 1000
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-metric-push", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_seconds):
            self.push()

    def push(self) -> None:
        try:
            data = self.reader.snapshot()
            if data is not None:
                self.exporter.export(data, timeout_millis=self.timeout_millis)
        except Exception:  # an unreachable collector must not end the thread
            log.exception("metrics.push_failed")

    def shutdown(self) -> None:
        """Blocking (HTTP): call it off the event loop, before the MeterProvider is shut down."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._thread.join(timeout=self.timeout_millis / 1000)
        self.push()
        self.exporter.shutdown()
