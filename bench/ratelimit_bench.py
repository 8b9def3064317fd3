"""What rate limiting adds per call: no limiting vs the memory backend vs the Redis backend, in one run.

    python bench/ratelimit_bench.py [--calls 300] [--rounds 5] [--redis redis://127.0.0.1:6379/0]

Two measurements, each alternating the targets call by call so machine noise hits all of them alike:
1. the stage alone: the chain with a canned terminal reply (what the limiter itself costs);
2. end to end: sequential tools/call requests through three in-process sidecars in front of one stateless demo
   upstream (what a client sees).
Buckets are large enough never to refuse, so every call takes the full path. Redis keys use a unique prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.context import CallContext
from proxy.limits.buckets import BucketSpec, MemoryBuckets
from proxy.limits.redis_buckets import RedisBuckets
from proxy.pipeline import build_chain
from proxy.reply import Reply
from proxy.stages.ratelimit import RateLimitStage
from tests.kit import make_config, make_ctx, modern_headers, modern_request, run_sidecar, start_upstream

BUCKETS = [  # a global bucket and a per-client-and-tool one: two keys per call, as a real setup would have
    {"name": "global", "capacity": 10_000_000, "refill_per_second": 1_000_000},
    {"name": "per_client_tool", "capacity": 10_000_000, "refill_per_second": 1_000_000, "key": ["client", "tool"]},
]
SPECS = (BucketSpec("global", 10_000_000, 1_000_000.0),
         BucketSpec("per_client_tool", 10_000_000, 1_000_000.0, key=("client", "tool")))


async def canned(ctx: CallContext) -> Reply:
    return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": {"content": []}})


async def stage_alone(calls: int, rounds: int, redis_url: str) -> dict[str, list[float]]:
    redis_store = RedisBuckets(redis_url, prefix=f"bench:{uuid.uuid4().hex[:8]}:", timeout=1.0, fail_open=False)
    await redis_store.start()
    chains = {"none": build_chain([], canned),
              "memory": build_chain([RateLimitStage(SPECS, MemoryBuckets())], canned),
              "redis": build_chain([RateLimitStage(SPECS, redis_store)], canned)}
    samples: dict[str, list[float]] = {name: [] for name in chains}
    try:
        for _ in range(rounds * calls):
            for name, chain in chains.items():  # interleaved call by call: noise hits every target alike
                ctx = make_ctx(arguments={"a": 1, "b": 2})
                started = time.perf_counter()
                await chain(ctx)
                samples[name].append(time.perf_counter() - started)
    finally:
        await redis_store.close()
    return samples


async def end_to_end(calls: int, rounds: int, redis_url: str, upstream: str) -> dict[str, list[float]]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    configs = {
        "none": make_config(upstream),
        "memory": make_config(upstream, rate_limits__buckets=BUCKETS),
        "redis": make_config(upstream, rate_limits__buckets=BUCKETS, rate_limits__backend="redis",
                             rate_limits__redis_url=redis_url, rate_limits__key_prefix=prefix),
    }
    body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}))
    headers = modern_headers("tools/call", "add")
    samples: dict[str, list[float]] = {name: [] for name in configs}
    async with run_sidecar(configs["none"]) as plain, run_sidecar(configs["memory"]) as memory, \
            run_sidecar(configs["redis"]) as shared, aiohttp.ClientSession() as http:
        urls = {"none": plain.url, "memory": memory.url, "redis": shared.url}
        for url in urls.values():  # warm connections and the upstream
            for _ in range(20):
                await post(http, url, body, headers)
        for _ in range(rounds * calls):
            for name, url in urls.items():  # interleaved call by call: noise hits every target alike
                started = time.perf_counter()
                await post(http, url, body, headers)
                samples[name].append(time.perf_counter() - started)
    return samples


async def post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> Any:
    async with http.post(url, data=body, headers=headers) as response:
        message = orjson.loads(await response.read())
        if response.status != 200 or message["result"].get("isError"):
            raise SystemExit(f"unexpected answer {response.status}: {message}")
        return message


def report(title: str, samples: dict[str, list[float]]) -> None:
    base = statistics.median(samples["none"])
    print(f"\n{title}")
    print(f"{'backend':<8} {'calls':>6} {'p50 µs':>9} {'p90 µs':>9} {'added µs':>9} {'ratio':>6}")
    for name, values in samples.items():
        ordered = sorted(values)
        p50, p90 = statistics.median(ordered), ordered[int(len(ordered) * 0.9)]
        # Added latency: the median of the paired differences against the no-limit call made just before it.
        added = statistics.median(value - plain for value, plain in zip(values, samples["none"], strict=True))
        print(f"{name:<8} {len(values):>6} {p50 * 1e6:>9.1f} {p90 * 1e6:>9.1f} {added * 1e6:>9.1f} "
              f"{p50 / base:>6.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per target per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    report("stage alone (canned terminal reply, 2 buckets per call)",
           await stage_alone(args.calls * 3, args.rounds, args.redis))
    with start_upstream("stateless") as upstream:
        report("end to end (tools/call add through the sidecar, stateless demo upstream)",
               await end_to_end(args.calls, args.rounds, args.redis, upstream))


if __name__ == "__main__":
    asyncio.run(main())
