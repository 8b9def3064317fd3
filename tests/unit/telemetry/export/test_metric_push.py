"""MetricPush: the Prometheus reader's snapshot exported over OTLP every interval and once on shutdown; a failing
export is logged and retried, never fatal. (tests/unit/telemetry/test_metrics.py checks what the snapshot holds.)"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from proxy.telemetry.export.metric_push import MetricPush
from proxy.telemetry.export.prometheus import PrometheusReader


class Exporter(MetricExporter):
    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.exports: list[tuple[MetricsData, float]] = []
        self.failures = failures
        self.shutdowns = 0
        self.exported = threading.Event()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if self.failures:
            self.failures -= 1
            raise OSError("collector unreachable")
        self.exports.append((metrics_data, timeout_millis))
        self.exported.set()
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shutdowns += 1


def counting_reader() -> PrometheusReader:
    reader = PrometheusReader()
    MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("t").create_counter("c").add(1)
    return reader


def test_the_thread_pushes_every_interval_with_the_timeout() -> None:
    exporter = Exporter()
    push = MetricPush(counting_reader(), exporter, interval_seconds=0.01, timeout_seconds=2)
    assert exporter.exported.wait(5)
    push.shutdown()
    assert exporter.exports[0][1] == 2000


def test_a_failing_export_is_retried_next_interval() -> None:
    exporter = Exporter(failures=2)
    push = MetricPush(counting_reader(), exporter, interval_seconds=0.01)
    assert exporter.exported.wait(5) and exporter.failures == 0
    push.shutdown()


def test_push_now_and_a_last_push_on_shutdown_once() -> None:
    exporter = Exporter()
    push = MetricPush(counting_reader(), exporter, interval_seconds=3600)
    push.push()
    push.shutdown()
    push.shutdown()
    assert len(exporter.exports) == 2 and exporter.shutdowns == 1


def test_nothing_to_export_before_the_reader_is_registered() -> None:
    exporter = Exporter()
    push = MetricPush(PrometheusReader(), exporter, interval_seconds=3600)  # no provider: no snapshot
    push.push()
    push.shutdown()
    assert exporter.exports == [] and exporter.shutdowns == 1
