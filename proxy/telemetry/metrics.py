"""The sidecar's metrics: MCP semconv durations, calls by method/tool/outcome, in-flight, and named counters.

Instruments come from a Meter handed in (a real SDK meter, or a no-op one when telemetry is off), so other
components can always call `deps.metrics.count("policy_reload_failures")` without checking anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from proxy.context import CallContext
from proxy.telemetry import semconv
from proxy.telemetry.export.prometheus import PrometheusReader
from proxy.telemetry.histograms import DurationHistogram

# Semconv histogram buckets for mcp.*.operation.duration, in seconds.
DURATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
OTHER = "_OTHER"

# Counters other components increment by name: name -> (instrument name, description).
NAMED_COUNTERS = {
    "upstream_restarts": ("mcp_sidecar.upstream.restarts", "Times the upstream MCP server was (re)started"),
    "policy_reload_failures": ("mcp_sidecar.policy.reload_failures", "Policy reloads that failed (old kept)"),
    "policy_shadow_disagreements": ("mcp_sidecar.policy.shadow_disagreements",
                                    "Decisions where the shadow policy disagreed with the active one"),
    "audit_failures": ("mcp_sidecar.audit.failures", "Audit events that could not be written"),
    "tool_drifts": ("mcp_sidecar.tools.drifts", "Tools seen to differ from the reviewed tools lock, by status"),
    "telemetry_failures": ("mcp_sidecar.telemetry.failures", "Spans or metrics the sidecar failed to record"),
    "listener_refused_connections": ("mcp_sidecar.listener.refused_connections",
                                     "Client connections answered 503 and closed: server.max_connections reached"),
    "listener_request_timeouts": ("mcp_sidecar.listener.request_timeouts",
                                  "Client connections closed with 408: a request's head or body (label phase) did "
                                  "not arrive within its deadline, or (phase start) no first request began"),
    "rate_limit_fail_open": ("mcp_sidecar.rate_limit.fail_open",
                             "Calls let through unlimited because the rate-limit store was unavailable"),
    "approval_timeouts": ("mcp_sidecar.approval.timeouts", "Calls denied because no approver answered in time"),
    "webhook_failures": ("mcp_sidecar.webhook.failures", "Approval notifications not delivered after every attempt"),
    "webhook_drops": ("mcp_sidecar.webhook.drops", "Approval notifications dropped because the queue was full"),
    "recent_calls_failures": ("mcp_sidecar.recent_calls.failures",
                              "Audit events not written to the shared recent-calls stream"),
}


def _duration(meter: Meter, snapshot: PrometheusReader | None, name: str,
              description: str) -> Histogram | DurationHistogram:
    if snapshot is None:
        return meter.create_histogram(name, unit="s", description=description,
                                      explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
    histogram = DurationHistogram(name, "s", description, DURATION_BUCKETS)
    snapshot.include(meter.name, histogram.metric)
    return histogram


class BoundedLabels:
    """Caps the distinct values of client-chosen labels (tool and method names) so an attacker cannot
    explode the metric cardinality; values past the limit are reported as `_OTHER`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}

    def __call__(self, label: str, value: str) -> str:
        seen = self._seen.get(label)
        if seen is None:
            seen = self._seen[label] = set()
        if value in seen:
            return value
        if len(seen) >= self.limit:
            return OTHER
        seen.add(value)
        return value


class SidecarMetrics:
    """`snapshot` (when every metric consumer reads that reader's snapshots) takes the two duration histograms,
    aggregated by the sidecar (histograms.py) instead of SDK instruments; the exported series are the same."""

    def __init__(self, meter: Meter, label_limit: int = 200, snapshot: PrometheusReader | None = None) -> None:
        self._bounded = BoundedLabels(label_limit)
        self.operation_duration = _duration(meter, snapshot, "mcp.server.operation.duration",
                                            "MCP messages handled by the sidecar")
        self.upstream_duration = _duration(meter, snapshot, "mcp.client.operation.duration",
                                           "Calls the sidecar made to the upstream")
        # Calls: counted in a plain dict on the hot path (one tuple key per call) and handed to the SDK as an
        # observable counter when metrics are collected. A synchronous counter costs an SDK measurement per call
        # (attribute validation, hashing, a lock), once per metric reader; the exported series is the same.
        self._calls: Counter[tuple[tuple[str, Any], ...]] = Counter()
        meter.create_observable_counter(
            "mcp_sidecar.calls", callbacks=[self._observe_calls],
            description="MCP messages by method, tool, outcome and error type")
        self.denials = meter.create_counter(
            "mcp_sidecar.policy.denials", description="Calls denied by policy, by first reason")
        # In flight: plain integers on the hot path, read by the SDK only when metrics are collected.
        self._in_flight: Counter[str] = Counter()
        meter.create_observable_up_down_counter(
            "mcp_sidecar.in_flight", callbacks=[self._observe_in_flight], description="MCP messages being handled now")
        self._named = {name: meter.create_counter(instrument, description=description)
                       for name, (instrument, description) in NAMED_COUNTERS.items()}
        for counter in self._named.values():
            counter.add(0)  # exported as 0 from the start, so `increase(...)` and alerts see the series

    def count(self, name: str, amount: int = 1, **attributes: str) -> None:
        """Increment one of NAMED_COUNTERS (a KeyError for an unknown name: typos fail loudly)."""
        self._named[name].add(amount, attributes or None)

    def started(self, ctx: CallContext) -> None:
        self._in_flight[self._method(ctx)] += 1

    def finished(self, ctx: CallContext, error_type: str | None, seconds: float) -> None:
        """One handled message: in-flight down, its duration, and the calls counter."""
        method = self._method(ctx)
        self._in_flight[method] -= 1
        labels = self._target_labels(ctx, method)
        if error_type is not None:
            labels[semconv.ERROR_TYPE] = error_type
        self.operation_duration.record(seconds, {**labels, semconv.MCP_PROTOCOL_VERSION: ctx.protocol_version})
        record = ctx.record
        calls = (*labels.items(), (semconv.OUTCOME, record.outcome))
        if record.cache_status is not None:
            calls += ((semconv.CACHE_STATUS, record.cache_status),)
        self._calls[calls] += 1
        if record.outcome == "denied" and record.policy_reasons:
            reason = self._bounded(semconv.POLICY_DENIAL_REASON, record.policy_reasons[0])
            self.denials.add(1, {**labels, semconv.POLICY_DENIAL_REASON: reason})

    def upstream_finished(self, ctx: CallContext, error_type: str | None, seconds: float) -> None:
        labels = self._target_labels(ctx, self._method(ctx))
        if error_type is not None:
            labels[semconv.ERROR_TYPE] = error_type
        self.upstream_duration.record(seconds, labels)

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, dict(labels)) for labels, count in list(self._calls.items())]

    def _observe_in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        counts = list(self._in_flight.items())  # one C-level copy: the event loop may add a method meanwhile
        return [Observation(count, {semconv.MCP_METHOD_NAME: method}) for method, count in counts]

    def _method(self, ctx: CallContext) -> str:
        return self._bounded(semconv.MCP_METHOD_NAME, ctx.method or ctx.kind.value)

    def _target_labels(self, ctx: CallContext, method: str) -> dict[str, Any]:
        labels: dict[str, Any] = {semconv.MCP_METHOD_NAME: method}
        named = semconv.target_attribute(ctx.method)
        if named and ctx.target:
            labels[named] = self._bounded(named, ctx.target)
        return labels
