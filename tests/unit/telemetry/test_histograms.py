"""DurationHistogram: explicit buckets (a value on a bound falls in it), count, sum, min, max per label set,
cumulative, read as an SDK Histogram metric."""

from __future__ import annotations

import threading

from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram

from proxy.telemetry.histograms import DurationHistogram


def histogram() -> DurationHistogram:
    return DurationHistogram("mcp.server.operation.duration", "s", "MCP messages", (0.1, 1, 10))


def points(metric_histogram: DurationHistogram) -> dict[tuple, dict]:
    data = metric_histogram.metric().data
    assert isinstance(data, Histogram)
    return {tuple(sorted(point.attributes.items())): {"count": point.count, "sum": point.sum, "min": point.min,
                                                       "max": point.max, "buckets": list(point.bucket_counts)}
            for point in data.data_points}


def test_values_fall_in_their_buckets_bounds_inclusive() -> None:
    durations = histogram()
    for value in (0.05, 0.1, 0.5, 1, 10, 11):
        durations.record(value, {"m": "a"})
    point = points(durations)[(("m", "a"),)]
    assert point["buckets"] == [2, 2, 1, 1]  # (..0.1], (0.1..1], (1..10], (10..)
    assert (point["count"], point["min"], point["max"]) == (6, 0.05, 11)
    assert abs(point["sum"] - 22.65) < 1e-9


def test_each_label_set_is_its_own_point() -> None:
    durations = histogram()
    durations.record(0.2, {"m": "a"})
    durations.record(3, {"m": "b", "error.type": "x"})
    found = points(durations)
    assert set(found) == {(("m", "a"),), (("error.type", "x"), ("m", "b"))}
    assert found[(("error.type", "x"), ("m", "b"))]["buckets"] == [0, 0, 1, 0]


def test_the_metric_is_cumulative_from_creation_with_its_names() -> None:
    durations = histogram()
    durations.record(0.2, {})
    first = durations.metric()
    durations.record(0.3, {})
    second = durations.metric()
    assert (second.name, second.unit, second.description) == ("mcp.server.operation.duration", "s", "MCP messages")
    assert second.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    [before], [after] = first.data.data_points, second.data.data_points
    assert (before.count, after.count) == (1, 2)
    assert before.start_time_unix_nano == after.start_time_unix_nano == durations.started
    assert after.time_unix_nano >= before.time_unix_nano and after.explicit_bounds == (0.1, 1.0, 10.0)


def test_a_snapshot_is_not_changed_by_later_records() -> None:
    durations = histogram()
    durations.record(0.2, {})
    snapshot = durations.metric()
    durations.record(0.2, {})
    assert list(snapshot.data.data_points[0].bucket_counts) == [0, 1, 0, 0]


def test_no_records_no_points() -> None:
    assert list(histogram().metric().data.data_points) == []


def test_records_from_several_threads_all_count() -> None:
    durations = histogram()

    def record() -> None:
        for _ in range(2000):
            durations.record(0.5, {"m": "a"})

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert points(durations)[(("m", "a"),)]["count"] == 8000


def test_the_same_attributes_in_another_order_are_one_point() -> None:
    durations = histogram()
    durations.record(0.2, {"mcp.method.name": "tools/call", "gen_ai.tool.name": "add"})
    durations.record(0.3, {"gen_ai.tool.name": "add", "mcp.method.name": "tools/call"})
    assert [point.count for point in durations.metric().data.data_points] == [2]
