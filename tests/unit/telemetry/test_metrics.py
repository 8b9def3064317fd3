"""Metrics without sockets: instruments, label caps, and the Prometheus text rendering."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from prometheus_client.parser import text_string_to_metric_families

from proxy.telemetry.export.metric_push import MetricPush
from proxy.telemetry.export.prometheus import PrometheusReader, prometheus_name
from proxy.telemetry.export.worker_metrics import WorkerMetrics
from proxy.telemetry.metrics import OTHER, BoundedLabels, SidecarMetrics
from tests.kit import make_ctx


def sidecar_metrics(label_limit: int = 200) -> tuple[SidecarMetrics, PrometheusReader]:
    reader = PrometheusReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    return SidecarMetrics(provider.get_meter("test"), label_limit), reader


def samples(reader: PrometheusReader) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = reader.render().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_prometheus_names_follow_the_otel_conventions() -> None:
    assert prometheus_name("mcp.server.operation.duration", "s") == "mcp_server_operation_duration_seconds"
    assert prometheus_name("mcp_sidecar.calls", "") == "mcp_sidecar_calls"
    assert prometheus_name("odd-name/x", "By") == "odd_name_x_bytes"


def test_a_finished_call_moves_duration_calls_and_in_flight() -> None:
    metrics, reader = sidecar_metrics()
    ctx = make_ctx(target="add")
    metrics.started(ctx)
    assert samples(reader)[("mcp_sidecar_in_flight", (("mcp_method_name", "tools/call"),))] == 1
    metrics.finished(ctx, None, 0.03)
    found = samples(reader)
    assert found[("mcp_sidecar_in_flight", (("mcp_method_name", "tools/call"),))] == 0
    labels = (("gen_ai_tool_name", "add"), ("mcp_method_name", "tools/call"), ("mcp_sidecar_outcome", "allowed"))
    assert found[("mcp_sidecar_calls_total", labels)] == 1
    histogram = (("gen_ai_tool_name", "add"), ("mcp_method_name", "tools/call"),
                 ("mcp_protocol_version", "2026-07-28"))
    # Buckets are cumulative: 0.03 s is above 0.02 and within 0.05 and everything after.
    assert found[("mcp_server_operation_duration_seconds_bucket", (*histogram[:1], ("le", "0.02"), *histogram[1:]))] \
        == 0
    assert found[("mcp_server_operation_duration_seconds_bucket", (*histogram[:1], ("le", "0.05"), *histogram[1:]))] \
        == 1
    assert found[("mcp_server_operation_duration_seconds_bucket", (*histogram[:1], ("le", "+Inf"), *histogram[1:]))] \
        == 1
    assert found[("mcp_server_operation_duration_seconds_sum", histogram)] == pytest.approx(0.03)


def test_denials_are_counted_by_reason() -> None:
    metrics, reader = sidecar_metrics()
    ctx = make_ctx(target="delete_file")
    ctx.record.fail("denied", "policy_denied")
    ctx.record.policy_reasons = ("destructive", "second reason")
    metrics.started(ctx)
    metrics.finished(ctx, "policy_denied", 0.001)
    found = samples(reader)
    key = ("mcp_sidecar_policy_denials_total", (("error_type", "policy_denied"), ("gen_ai_tool_name", "delete_file"),
                                                ("mcp_method_name", "tools/call"),
                                                ("mcp_sidecar_policy_reason", "destructive")))
    assert found[key] == 1


def test_named_counters_start_at_zero_and_unknown_names_fail() -> None:
    metrics, reader = sidecar_metrics()
    assert samples(reader)[("mcp_sidecar_upstream_restarts_total", ())] == 0
    metrics.count("upstream_restarts")
    metrics.count("upstream_restarts", 2)
    assert samples(reader)[("mcp_sidecar_upstream_restarts_total", ())] == 3
    with pytest.raises(KeyError):
        metrics.count("upstream_restart")


def test_client_chosen_label_values_are_capped() -> None:
    bounded = BoundedLabels(limit=2)
    assert [bounded("tool", name) for name in ("a", "b", "c", "a")] == ["a", "b", OTHER, "a"]
    assert bounded("method", "x") == "x"  # each label has its own budget
    metrics, reader = sidecar_metrics(label_limit=1)
    for tool in ("first", "second", "third"):
        ctx = make_ctx(target=tool)
        metrics.started(ctx)
        metrics.finished(ctx, None, 0.001)
    tools = {dict(labels).get("gen_ai_tool_name")
             for name, labels in samples(reader) if name == "mcp_sidecar_calls_total"}
    assert tools == {"first", OTHER}


class RecordingExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.exports: list[MetricsData] = []
        self.shut_down = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shut_down = True


def exported_calls(data: MetricsData) -> dict[tuple[tuple[str, Any], ...], float]:
    return {tuple(sorted(point.attributes.items())): point.value
            for resource in data.resource_metrics for scope in resource.scope_metrics for metric in scope.metrics
            if metric.name == "mcp_sidecar.calls" for point in metric.data.data_points}


def test_otlp_push_exports_the_prometheus_readers_snapshot_and_a_last_one_on_shutdown() -> None:
    metrics, reader = sidecar_metrics()
    exporter = RecordingExporter()
    push = MetricPush(reader, exporter, interval_seconds=3600)  # the thread never fires within the test
    ctx = make_ctx(target="add")
    metrics.started(ctx)
    metrics.finished(ctx, None, 0.01)
    push.push()
    labels = (("gen_ai.tool.name", "add"), ("mcp.method.name", "tools/call"), ("mcp_sidecar.outcome", "allowed"))
    assert exported_calls(exporter.exports[0]) == {labels: 1}
    metrics.started(ctx)
    metrics.finished(ctx, None, 0.01)
    push.shutdown()
    assert exported_calls(exporter.exports[-1]) == {labels: 2}  # cumulative, like the Prometheus text
    assert exporter.shut_down and len(exporter.exports) == 2
    assert samples(reader)[("mcp_sidecar_calls_total", tuple((k.replace(".", "_"), v) for k, v in labels))] == 2


def test_durations_aggregated_by_the_sidecar_render_as_the_sdks() -> None:
    def durations(snapshot: bool) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        reader = PrometheusReader()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        metrics = SidecarMetrics(provider.get_meter("mcp-sidecar"), snapshot=reader if snapshot else None)
        for seconds, target, error in ((0.01, "add", None), (0.03, "add", None), (400.0, "add", "tool_error"),
                                       (0.2, "echo", None)):
            ctx = make_ctx(target=target)
            metrics.started(ctx)
            metrics.upstream_finished(ctx, error, seconds / 2)
            metrics.finished(ctx, error, seconds)
        return {key: value for key, value in samples(reader).items() if "duration" in key[0]}

    ours = durations(snapshot=True)
    assert ours == durations(snapshot=False)
    bucket = ("mcp_server_operation_duration_seconds_bucket", (
        ("error_type", ""), ("gen_ai_tool_name", "add"), ("le", "0.01"), ("mcp_method_name", "tools/call"),
        ("mcp_protocol_version", "2026-07-28")))
    assert ours[bucket] == 1  # a value on a bound falls in that bound's bucket


def test_with_workers_each_scrape_renders_the_sum_of_every_worker(tmp_path) -> None:
    def worker(pid: int) -> tuple[SidecarMetrics, PrometheusReader]:
        reader = PrometheusReader(WorkerMetrics(tmp_path, pid, alive=lambda _: True))
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        return SidecarMetrics(provider.get_meter("test"), 200), reader

    (first, first_reader), (second, second_reader) = worker(1), worker(2)
    for metrics, calls in ((first, 2), (second, 3)):
        for _ in range(calls):
            ctx = make_ctx(target="add")
            metrics.started(ctx)
            metrics.finished(ctx, None, 0.01)
    second_reader.publish()  # as its publisher thread does; the first publishes when it answers the scrape
    labels = (("gen_ai_tool_name", "add"), ("mcp_method_name", "tools/call"), ("mcp_sidecar_outcome", "allowed"))
    assert samples(first_reader)[("mcp_sidecar_calls_total", labels)] == 5
    assert samples(second_reader)[("mcp_sidecar_calls_total", labels)] == 5
    assert samples(first_reader)[("mcp_sidecar_in_flight", (("mcp_method_name", "tools/call"),))] == 0


def test_a_scrape_still_answers_when_this_worker_cannot_publish(tmp_path) -> None:
    gone = tmp_path / "removed"  # the shared directory vanished (a cleaned /tmp, say)
    reader = PrometheusReader(WorkerMetrics(gone, 1, alive=lambda _: True))
    MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    assert reader.render() == b""  # nothing to sum, and no 500


def test_an_earlier_snapshot_never_overwrites_a_later_one(tmp_path) -> None:
    """The publisher thread collected, then its write stalled (a slow disk); a scrape publishes meanwhile. The
    scrape's later snapshot must be what the file holds in the end, or the count would fall."""
    shared = WorkerMetrics(tmp_path, 1, alive=lambda _: True)
    reader = PrometheusReader(shared)
    counter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("test").create_counter("calls")
    collected, release = threading.Event(), threading.Event()
    write = shared.publish

    def stalled_first_write(families) -> None:
        if not collected.is_set():
            collected.set()
            release.wait(5)
        write(families)

    shared.publish = stalled_first_write
    counter.add(1)
    stalled = threading.Thread(target=reader.publish)
    stalled.start()
    assert collected.wait(5)
    counter.add(1)
    scrape = threading.Thread(target=reader.publish)
    scrape.start()
    scrape.join(0.2)  # without ordering it would be done by now, its snapshot then overwritten by the stalled one
    release.set()
    stalled.join(5)
    scrape.join(5)
    calls = [sample.value for family in shared.merged() for sample in family.samples if sample.name == "calls_total"]
    assert calls == [2]
