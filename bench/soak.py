"""The soak run: one full-pipeline sidecar in front of the raw upstream at 32 clients, RSS sampled as it goes.

Run by hand (`python -m bench.run --soak 300`), not in CI. Flat means the last RSS sample is within 10% of the
first one (taken after the first interval of load, once the process is warm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.matrix import UPSTREAM_ARGS, Run, Settings
from bench.procs import Proc, free_port

INTERVAL_SECONDS = 10.0
CLIENTS = 32


async def soak(seconds: float, work: Path, profile: str = "full") -> dict[str, Any]:
    settings = Settings(groups=[], clients=[CLIENTS], seconds=INTERVAL_SECONDS, rounds=1, warmup_seconds=0,
                        quick=False)
    run = Run(settings, work)
    run.start_helpers()
    port = free_port()
    upstream = Proc("raw", [*UPSTREAM_ARGS["raw"], str(port)], port, run.load_cpus).start(work)
    samples: list[dict[str, Any]] = []
    try:
        upstream.wait_ready()
        group = {"name": "soak", "targets": [profile]}
        (target,) = run.start_targets(group, f"http://127.0.0.1:{port}/mcp")
        assert target.proc is not None
        elapsed = 0.0
        while elapsed < seconds:
            await run.measure(target, upstream, "modern", CLIENTS)
            elapsed += INTERVAL_SECONDS
            samples.append({"seconds": elapsed, **target.tallies[CLIENTS].rounds[-1], **target.proc.memory_mb()})
        target.proc.stop()
    finally:
        upstream.stop()
        run.stop_helpers()
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    return {"profile": profile, "parts": run.profiles.get(profile), "clients": CLIENTS, "seconds": seconds,
            "errors": target.tallies[CLIENTS].errors, "samples": samples,
            "rss_growth_pct": round((last - first) / first * 100, 1),
            "peak_rss_mb": max(sample["peak_rss_mb"] for sample in samples)}
