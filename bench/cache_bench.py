"""Cache hit latency against the same call served by the upstream, measured in one run.

    python bench/cache_bench.py [--requests 1000] [--backend memory|redis] [--redis-url redis://127.0.0.1:6379/0]

Starts the demo MCP server (stateless JSON) and the sidecar (`python -m proxy serve`) as child processes, then sends
sequential 2026-07-28 `tools/call lookup` requests from one aiohttp client:
- direct: straight to the upstream (reference),
- upstream-served: through the sidecar with a fresh key each time (a miss: the upstream answers, then it is stored),
- hit: through the sidecar with one key already cached.
Prints a table (milliseconds) and the hit/upstream-served ratio. Sequential on purpose: this measures latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "lookup"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port}")


@contextmanager
def child(args: list[str], port: int) -> Iterator[None]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def sidecar_config(upstream: str, args: argparse.Namespace, config_dir: str) -> tuple[str, int]:
    port = free_port()
    cache: dict[str, object] = {"enabled": True, "backend": args.backend, "tools": {"lookup": {"ttl_seconds": 120}}}
    if args.backend == "redis":
        cache.update(redis_url=args.redis_url, namespace=args.namespace, max_ttl_seconds=120)
    config = {"server": {"listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{free_port()}"},
              "upstream": {"url": upstream}, "audit": {"enabled": False}, "logging": {"level": "warning"},
              "cache": cache}
    path = Path(config_dir) / "sidecar.json"
    path.write_text(json.dumps(config))
    return str(path), port


async def remove_namespace(redis_url: str, namespace: str) -> None:
    """Delete this run's keys from a shared Redis (its own namespace only; never a flush)."""
    import redis.asyncio as redis

    client = redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def timed_calls(http: aiohttp.ClientSession, url: str, count: int, key: Callable[[int], str]) -> list[float]:
    """Latency of `count` sequential calls in milliseconds; every answer is checked."""
    latencies = []
    for index in range(count):
        body = orjson.dumps({"jsonrpc": "2.0", "id": index, "method": "tools/call",
                             "params": {"name": "lookup", "arguments": {"key": key(index)}, "_meta": META}})
        started = time.perf_counter()
        async with http.post(url, data=body, headers=HEADERS) as response:
            payload = await response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        message = orjson.loads(payload)
        if response.status != 200 or message.get("id") != index or "result" not in message:
            raise RuntimeError(f"unexpected answer: {response.status} {payload[:200]!r}")
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"p50": statistics.median(ordered), "p95": ordered[int(len(ordered) * 0.95) - 1],
            "mean": statistics.fmean(ordered)}


async def measure(upstream: str, sidecar: str, count: int) -> dict[str, dict[str, float]]:
    run = uuid.uuid4().hex
    async with aiohttp.ClientSession() as http:
        await timed_calls(http, upstream, 50, lambda i: f"warm-{run}-{i}")  # connections and code paths warm
        await timed_calls(http, sidecar, 50, lambda i: f"warm-{run}-{i}")
        await timed_calls(http, sidecar, 1, lambda i: f"hot-{run}")  # the entry the hits will read
        return {
            "direct to upstream": summary(await timed_calls(http, upstream, count, lambda i: f"d-{run}-{i}")),
            "sidecar, upstream-served (miss)": summary(await timed_calls(http, sidecar, count,
                                                                         lambda i: f"m-{run}-{i}")),
            "sidecar, cache hit": summary(await timed_calls(http, sidecar, count, lambda i: f"hot-{run}")),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    args.namespace = f"cache-bench-{uuid.uuid4().hex}"
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/mcp"
    demo = [sys.executable, "-m", "proxy.runtime.demo", "http", "--port", str(upstream_port), "--stateless-json"]
    with tempfile.TemporaryDirectory() as config_dir, child(demo, upstream_port):
        config_path, sidecar_port = sidecar_config(upstream, args, config_dir)
        serve = [sys.executable, "-m", "proxy", "serve", "--config", config_path]
        with child(serve, sidecar_port):
            results = asyncio.run(measure(upstream, f"http://127.0.0.1:{sidecar_port}/mcp", args.requests))
    if args.backend == "redis":
        asyncio.run(remove_namespace(args.redis_url, args.namespace))
    print(f"cache benchmark: {args.requests} sequential tools/call lookup per row, backend {args.backend}")
    print(f"{'path':34} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, row in results.items():
        print(f"{name:34} {row['p50']:8.3f} {row['p95']:8.3f} {row['mean']:8.3f}")
    miss, hit = results["sidecar, upstream-served (miss)"], results["sidecar, cache hit"]
    print(f"hit / upstream-served: p50 {hit['p50'] / miss['p50']:.3f}, mean {hit['mean'] / miss['mean']:.3f} "
          f"(hits are {miss['p50'] / hit['p50']:.1f}x faster at p50)")


if __name__ == "__main__":
    main()
