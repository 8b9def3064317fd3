"""Workers' metrics merged through a shared directory: summed, never going down, gauges of the dead dropped."""

from __future__ import annotations

import threading
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from proxy.telemetry.export.worker_metrics import WorkerMetrics, clear


def families(calls: float, in_flight: float, durations: tuple[int, int]) -> list:
    counter = CounterMetricFamily("mcp_sidecar_calls", "calls", labels=["outcome"])
    counter.add_metric(["allowed"], calls)
    gauge = GaugeMetricFamily("mcp_sidecar_in_flight", "in flight", labels=["method"])
    gauge.add_metric(["tools/call"], in_flight)
    histogram = HistogramMetricFamily("mcp_server_operation_duration_seconds", "duration", labels=[])
    fast, total = durations
    histogram.add_metric([], [("0.1", fast), ("+Inf", total)], sum_value=total * 0.05)
    return [counter, gauge, histogram]


def samples(merged: list) -> dict[tuple[str, tuple], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in merged for sample in family.samples}


def test_a_scrape_sums_every_worker(tmp_path: Path) -> None:
    alive = {1: True, 2: True}
    one, two = (WorkerMetrics(tmp_path, pid, alive.__getitem__) for pid in (1, 2))
    one.publish(families(calls=3, in_flight=1, durations=(2, 3)))
    two.publish(families(calls=4, in_flight=2, durations=(4, 4)))

    merged = samples(one.merged())
    assert merged[("mcp_sidecar_calls_total", (("outcome", "allowed"),))] == 7
    assert merged[("mcp_sidecar_in_flight", (("method", "tools/call"),))] == 3
    assert merged[("mcp_server_operation_duration_seconds_bucket", (("le", "0.1"),))] == 6
    assert merged[("mcp_server_operation_duration_seconds_count", ())] == 7
    assert samples(two.merged()) == merged  # whichever worker the scrape reaches
    text = generate_latest(_Registry(one.merged())).decode()
    assert 'mcp_sidecar_calls_total{outcome="allowed"} 7.0' in text


def test_a_dead_worker_keeps_its_counts_but_not_its_gauges(tmp_path: Path) -> None:
    alive = {1: True, 2: True}
    one, two = (WorkerMetrics(tmp_path, pid, alive.__getitem__) for pid in (1, 2))
    one.publish(families(calls=3, in_flight=1, durations=(2, 3)))
    two.publish(families(calls=4, in_flight=2, durations=(4, 4)))
    alive[2] = False

    merged = samples(one.merged())
    assert merged[("mcp_sidecar_calls_total", (("outcome", "allowed"),))] == 7  # no drop: rate() sees no reset
    assert merged[("mcp_server_operation_duration_seconds_count", ())] == 7
    assert merged[("mcp_sidecar_in_flight", (("method", "tools/call"),))] == 1


def test_a_worker_s_own_file_counts_even_if_its_pid_looks_dead(tmp_path: Path) -> None:
    me = WorkerMetrics(tmp_path, 1, lambda pid: False)
    me.publish(families(calls=1, in_flight=5, durations=(1, 1)))
    assert samples(me.merged())[("mcp_sidecar_in_flight", (("method", "tools/call"),))] == 5


def test_unreadable_and_foreign_files_are_skipped(tmp_path: Path) -> None:
    me = WorkerMetrics(tmp_path, 1, lambda pid: True)
    me.publish(families(calls=2, in_flight=0, durations=(1, 1)))
    (tmp_path / "worker-2-0a0b.json").write_bytes(b'[{"name": "trunc')  # not written by publish: never whole
    (tmp_path / "worker-x-0a0b.json").write_bytes(b"[]")
    (tmp_path / "worker-3.json").write_bytes(b"[]")
    assert samples(me.merged())[("mcp_sidecar_calls_total", (("outcome", "allowed"),))] == 2
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary file left


def test_clear_forgets_an_earlier_run(tmp_path: Path) -> None:
    WorkerMetrics(tmp_path, 7, lambda pid: True).publish(families(calls=9, in_flight=0, durations=(1, 1)))
    (tmp_path / "unrelated.txt").write_text("kept")
    clear(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["unrelated.txt"]
    assert WorkerMetrics(tmp_path, 1, lambda pid: True).merged() == []


def test_publishes_racing_in_one_worker_never_tear_its_file(tmp_path: Path) -> None:
    """The publisher thread and scrapes publish at once: each publish succeeds and every read finds a whole file.
    (Their order is the caller's to keep: PrometheusReader.publish holds `publishing`; see test_metrics.)"""
    me = WorkerMetrics(tmp_path, 1, lambda pid: True)
    counter = iter(range(1, 100_000))
    key = ("mcp_sidecar_calls_total", (("outcome", "allowed"),))
    stop, seen, problems = threading.Event(), [], []

    def publisher() -> None:
        while not stop.is_set():
            try:
                me.publish(families(calls=next(counter), in_flight=0, durations=(1, 1)))
            except Exception as error:
                problems.append(error)

    def scraper() -> None:
        while not stop.is_set():
            try:
                seen.append(samples(me.merged()).get(key, 0))
            except Exception as error:
                problems.append(error)

    threads = [threading.Thread(target=publisher) for _ in range(3)] + [threading.Thread(target=scraper)]
    for thread in threads:
        thread.start()
    stop.wait(0.5)
    stop.set()
    for thread in threads:
        thread.join(5)
    assert problems == []
    since_first = seen[next(index for index, value in enumerate(seen) if value):]
    assert len(since_first) > 10 and all(since_first)  # once there, the file is always whole


def test_a_worker_that_reuses_a_dead_worker_s_pid_keeps_its_counts_apart(tmp_path: Path) -> None:
    earlier = WorkerMetrics(tmp_path, 1, lambda pid: True)
    earlier.publish(families(calls=5, in_flight=2, durations=(1, 1)))
    later = WorkerMetrics(tmp_path, 1, lambda pid: True)  # the same pid, a new worker
    later.publish(families(calls=1, in_flight=1, durations=(1, 1)))
    merged = samples(later.merged())
    assert merged[("mcp_sidecar_calls_total", (("outcome", "allowed"),))] == 6  # the earlier counts stay
    assert merged[("mcp_sidecar_in_flight", (("method", "tools/call"),))] == 1  # its gauges died with it


class _Registry:
    def __init__(self, merged: list) -> None:
        self.merged = merged

    def collect(self) -> list:
        return self.merged
