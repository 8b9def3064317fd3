"""The console's figures: a summary of the audit ring's last minutes, and totals read off the sidecar's own
Prometheus text. No HTTP here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

WINDOW_SECONDS = 300
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|\+Inf|-Inf)\s*$")


def recent_summary(recent: Iterable[dict[str, Any]], now: float, window: float = WINDOW_SECONDS) -> dict[str, Any]:
    """Calls of the last `window` seconds: per minute, error rate, denials, limited, cache hit ratio, latency."""
    events = [event for event in recent if (event.get("time") or 0) >= now - window]
    calls = [event for event in events if event.get("method") == "tools/call"]
    outcomes = [event.get("outcome") for event in events]
    latencies = sorted(float(event["latency_ms"]) for event in events if event.get("latency_ms") is not None)
    cached = [event.get("cache") for event in events if event.get("cache") in ("hit", "miss", "stored")]
    revision = next((event.get("policy_revision") for event in events if event.get("policy_revision")), None)
    return {
        "window_seconds": window,
        "messages": len(events),
        "tool_calls": len(calls),
        "per_minute": round(len(events) / (window / 60), 2),
        "error_rate": round(sum(1 for o in outcomes if o in ("upstream_error", "rejected")) / len(events), 3)
        if events else 0.0,
        "denied": outcomes.count("denied"),
        "limited": outcomes.count("limited"),
        "cache_hit_ratio": round(cached.count("hit") / len(cached), 3) if cached else None,
        "latency_ms": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95),
                       "p99": _percentile(latencies, 0.99)},
        "policy_revision": revision,
    }


def _percentile(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def metric_totals(text: bytes) -> dict[str, float]:
    """Each counter family of the sidecar's own metrics summed over its labels (`_total` and `_count` series)."""
    totals: dict[str, float] = {}
    for line in text.decode(errors="replace").splitlines():
        match = _SAMPLE.match(line)
        if match is None or not match.group(1).endswith(("_total", "_count")):
            continue
        try:
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(3))
        except ValueError:
            continue
    return totals
