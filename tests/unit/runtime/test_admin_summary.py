"""The console's figures: the audit ring's summary and totals read off the sidecar's Prometheus text."""

from __future__ import annotations

from proxy.audit import AuditRing
from proxy.runtime.admin.summary import metric_totals, recent_summary


def event(**fields) -> dict:
    return {"time": 1000.0, "method": "tools/call", "target": "add", "principal": "alice", "outcome": "allowed",
            "latency_ms": 10.0, "cache": None, **fields}


def test_ring_is_bounded_and_filters_newest_first() -> None:
    ring = AuditRing(3)
    for n in range(5):
        ring.append(event(request_id=n, principal="bob" if n % 2 else "alice"))
    assert [e["request_id"] for e in ring.query({})] == [4, 3, 2]
    assert [e["request_id"] for e in ring.query({"principal": "alice", "tool": None})] == [4, 2]
    assert ring.query({"tool": "other"}) == [] and len(ring.query({}, limit=1)) == 1


def test_recent_summary_counts_the_window_only() -> None:
    ring = AuditRing(100)
    ring.append(event(time=100.0, outcome="denied"))  # outside the window
    for latency, outcome, cache in [(10, "allowed", "hit"), (20, "denied", None), (30, "limited", None),
                                    (40, "upstream_error", "miss")]:
        ring.append(event(latency_ms=latency, outcome=outcome, cache=cache, policy_revision="r7"))
    summary = recent_summary(ring.query({}, 100), now=1010.0, window=60)
    assert summary["messages"] == 4 and summary["per_minute"] == 4
    assert summary["denied"] == 1 and summary["limited"] == 1 and summary["error_rate"] == 0.25
    assert summary["cache_hit_ratio"] == 0.5 and summary["policy_revision"] == "r7"
    assert summary["latency_ms"] == {"p50": 30.0, "p95": 40.0, "p99": 40.0}
    assert recent_summary([], now=0)["latency_ms"]["p50"] is None


def test_metric_totals_sum_counter_series() -> None:
    text = b"""# HELP mcp_sidecar_upstream_restarts_total x
mcp_sidecar_upstream_restarts_total 2.0
mcp_sidecar_denials_total{reason="policy"} 3.0
mcp_sidecar_denials_total{reason="limit"} 1.0
mcp_server_operation_duration_seconds_count{method="tools/call"} 5
mcp_server_operation_duration_seconds_bucket{le="0.1"} 5
"""
    assert metric_totals(text) == {"mcp_sidecar_upstream_restarts_total": 2.0, "mcp_sidecar_denials_total": 4.0,
                                   "mcp_server_operation_duration_seconds_count": 5.0}
