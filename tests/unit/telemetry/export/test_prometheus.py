"""The Prometheus reader: OTel metrics as Prometheus text (names, units, counters, gauges, cumulative buckets),
a private registry per reader, and metrics the sidecar aggregates itself included in every snapshot."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, Metric, Sum
from prometheus_client.parser import text_string_to_metric_families

from proxy.telemetry.export.prometheus import CONTENT_TYPE, PrometheusReader, prometheus_name, to_family
from proxy.telemetry.histograms import DurationHistogram


def reader_and_meter() -> tuple[PrometheusReader, object]:
    reader = PrometheusReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    return reader, provider.get_meter("test-scope")


def samples(reader: PrometheusReader) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = reader.render().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_names_lose_dots_and_gain_their_unit_once() -> None:
    assert prometheus_name("mcp.server.operation.duration", "s") == "mcp_server_operation_duration_seconds"
    assert prometheus_name("queue.wait_seconds", "s") == "queue_wait_seconds"
    assert prometheus_name("payload", "By") == "payload_bytes"
    assert prometheus_name("latency", "ms") == "latency_milliseconds"
    assert prometheus_name("mcp_sidecar.calls", None) == "mcp_sidecar_calls"
    assert prometheus_name("odd-name/with spaces", "1") == "odd_name_with_spaces"


def test_counters_gauges_and_labels() -> None:
    reader, meter = reader_and_meter()
    calls = meter.create_counter("mcp_sidecar.calls")  # type: ignore[attr-defined]
    calls.add(2, {"mcp.method.name": "tools/call"})
    calls.add(1, {"mcp.method.name": "ping", "error.type": "x"})
    meter.create_up_down_counter("in.flight").add(-1)  # type: ignore[attr-defined]
    found = samples(reader)
    assert found[("mcp_sidecar_calls_total", (("error_type", ""), ("mcp_method_name", "tools/call")))] == 2
    assert found[("mcp_sidecar_calls_total", (("error_type", "x"), ("mcp_method_name", "ping")))] == 1
    assert found[("in_flight", ())] == -1  # a non-monotonic sum is a gauge


def test_histograms_have_cumulative_buckets_ending_at_inf() -> None:
    reader, meter = reader_and_meter()
    histogram = meter.create_histogram("op.duration", unit="s",  # type: ignore[attr-defined]
                                       explicit_bucket_boundaries_advisory=[0.1, 1])
    for value in (0.05, 0.5, 0.7, 5):
        histogram.record(value)
    found = samples(reader)
    buckets = {labels[0][1]: value for (name, labels), value in found.items()
               if name == "op_duration_seconds_bucket"}
    assert buckets == {"0.1": 1, "1.0": 3, "+Inf": 4}
    assert found[("op_duration_seconds_count", ())] == 4 and found[("op_duration_seconds_sum", ())] == 6.25


def test_included_metrics_join_their_scope_or_a_new_one() -> None:
    reader, meter = reader_and_meter()
    meter.create_counter("c").add(1)  # type: ignore[attr-defined]
    own = DurationHistogram("own.duration", "s", "aggregated by the sidecar", (1,))
    other = DurationHistogram("other.duration", "s", "in another scope", (1,))
    own.record(0.5, {"k": "v"})
    other.record(2, {})
    reader.include("test-scope", own.metric)
    reader.include("elsewhere", other.metric)
    data = reader.snapshot()
    assert data is not None
    scopes = {scope.scope.name: [metric.name for metric in scope.metrics]
              for scope in data.resource_metrics[0].scope_metrics}
    assert scopes == {"test-scope": ["c", "own.duration"], "elsewhere": ["other.duration"]}
    found = samples(reader)
    assert found[("own_duration_seconds_count", (("k", "v"),))] == 1
    assert found[("other_duration_seconds_bucket", (("le", "+Inf"),))] == 1


def test_each_reader_has_its_own_registry() -> None:
    first, first_meter = reader_and_meter()
    second, _ = reader_and_meter()
    first_meter.create_counter("only.here").add(1)  # type: ignore[attr-defined]
    assert ("only_here_total", ()) in samples(first)
    assert ("only_here_total", ()) not in samples(second)


def test_an_empty_reader_renders_empty_text() -> None:
    reader = PrometheusReader()
    assert reader.render() == b"" and reader.snapshot() is None


def test_shutdown_forgets_the_last_snapshot() -> None:
    reader, meter = reader_and_meter()
    meter.create_counter("c").add(1)  # type: ignore[attr-defined]
    assert reader.snapshot() is not None
    reader.shutdown()
    assert reader._data is None


def test_unsupported_data_has_no_family() -> None:
    class Exponential:
        data_points = ()

    metric = Metric(name="x", description="", unit="", data=Exponential())  # type: ignore[arg-type]
    assert to_family(metric) is None
    counter = Metric(name="c", description="", unit="", data=Sum(data_points=[], is_monotonic=True,
                     aggregation_temporality=AggregationTemporality.CUMULATIVE))
    family = to_family(counter)
    assert family is not None and family.type == "counter"


def test_the_exposition_content_type() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
