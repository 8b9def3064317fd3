"""A load generator for MCP servers and the sidecar: raw JSON-RPC over aiohttp, N clients, a fixed duration.

    python -m bench.loadgen http://127.0.0.1:8080/mcp --clients 32 --duration 5 [--era legacy] [--repeat]
        [--trace-context]

Both protocol eras: `modern` (2026-07-28: stateless POSTs carrying MCP-Protocol-Version, Mcp-Method and Mcp-Name
headers and the _meta envelope) and `legacy` (2025-11-25: one initialize handshake per client, then calls on its
Mcp-Session-Id, which a DELETE ends after the run). JSON and SSE responses are both read to the final response.
Every call sends distinct arguments unless --repeat is given (then every call is the same one: what a cache hit
looks like).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN,
               "io.modelcontextprotocol/clientCapabilities": {},
               "io.modelcontextprotocol/clientInfo": {"name": "bench-loadgen", "version": "1.0"}}


@dataclass
class LoadSpec:
    url: str
    clients: int = 1
    duration: float = 5.0
    era: str = "modern"  # modern | legacy
    tool: str = "echo"
    repeat: bool = False  # the same arguments on every call (cache hits)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Authorization
    trace_context: bool = False  # a fresh sampled traceparent per call, as a traced client sends (see next_call)


@dataclass
class LoadResult:
    calls: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies_us: list[int] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return summarize(self.calls, self.errors, self.elapsed, self.latencies_us, self.error_samples)


def summarize(calls: int, errors: int, elapsed: float, latencies_us: list[int],
              error_samples: list[str] | None = None) -> dict[str, Any]:
    ordered = sorted(latencies_us)
    return {
        "calls": calls,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "calls_per_s": round(calls / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": percentile_ms(ordered, 50),
        "p90_ms": percentile_ms(ordered, 90),
        "p99_ms": percentile_ms(ordered, 99),
        "error_samples": (error_samples or [])[:3],
    }


def percentile_ms(ordered_us: list[int], pct: float) -> float | None:
    if not ordered_us:
        return None
    index = min(len(ordered_us) - 1, round(pct / 100 * (len(ordered_us) - 1)))
    return round(ordered_us[index] / 1000, 3)


class Client:
    """One simulated MCP client: its own headers (and session, in the legacy era), calls in sequence."""

    def __init__(self, spec: LoadSpec, http: aiohttp.ClientSession, number: int, nonce: str) -> None:
        self.spec = spec
        self.http = http
        self.prefix = f"{nonce}-{number}-"
        self.ids = itertools.count(1)
        self.headers = {"Content-Type": "application/json", "Accept": ACCEPT, **spec.headers}

    async def open(self) -> None:
        if self.spec.era == "modern":
            self.headers.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call",
                                 "Mcp-Name": self.spec.tool})
            return
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": LEGACY, "capabilities": {},
                           "clientInfo": {"name": "bench-loadgen", "version": "1.0"}}}
        async with self.http.post(self.spec.url, data=orjson.dumps(init), headers=self.headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"initialize answered HTTP {response.status}")
            session = response.headers.get("Mcp-Session-Id")
        self.headers["MCP-Protocol-Version"] = LEGACY
        if session:
            self.headers["Mcp-Session-Id"] = session
        note = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
        async with self.http.post(self.spec.url, data=note, headers=self.headers) as response:
            await response.read()

    async def close(self) -> None:
        """End a legacy session as a well-behaved client does, so that sessions do not pile up in the server over a
        run (its memory, and the garbage collector's work, would grow from one measurement to the next)."""
        if "Mcp-Session-Id" not in self.headers:
            return
        async with self.http.delete(self.spec.url, headers=self.headers) as response:
            await response.read()

    def next_call(self) -> tuple[int, bytes]:
        call_id = next(self.ids)
        text = "hello" if self.spec.repeat else f"{self.prefix}{call_id}"
        params: dict[str, Any] = {"name": self.spec.tool, "arguments": {"text": text}}
        if self.spec.era == "modern":
            params["_meta"] = MODERN_META
        if self.spec.trace_context:  # in the header, and in params._meta where the era has one
            traceparent = f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01"
            self.headers["traceparent"] = traceparent
            if self.spec.era == "modern":
                params["_meta"] = {**MODERN_META, "traceparent": traceparent}
        return call_id, orjson.dumps({"jsonrpc": "2.0", "id": call_id, "method": "tools/call", "params": params})

    async def call(self) -> str | None:
        """One tools/call; None when it succeeded, else a short description of what went wrong."""
        call_id, body = self.next_call()
        async with self.http.post(self.spec.url, data=body, headers=self.headers) as response:
            raw = await response.read()
            if response.status != 200:
                return f"HTTP {response.status}: {raw[:120]!r}"
            message = final_message(raw, response.content_type, call_id)
        if message is None:
            return "no final response"
        if "error" in message:
            return f"JSON-RPC error {message['error'].get('code')}"
        if message.get("result", {}).get("isError"):
            return "isError result: " + str(message["result"].get("content"))[:120]
        return None


def final_message(raw: bytes, content_type: str, call_id: int) -> dict[str, Any] | None:
    """The JSON-RPC response to call_id in a JSON body or an SSE stream."""
    if content_type != "text/event-stream":
        message = orjson.loads(raw)
        return message if isinstance(message, dict) else None
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            message = orjson.loads(line[5:])
            if isinstance(message, dict) and message.get("id") == call_id and "method" not in message:
                return message
    return None


async def run_load(spec: LoadSpec) -> LoadResult:
    """Open every client, then let them all call in a loop for spec.duration seconds."""
    connector = aiohttp.TCPConnector(limit=spec.clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as http:
        nonce = uuid.uuid4().hex[:8]
        clients = [Client(spec, http, number, nonce) for number in range(spec.clients)]
        await asyncio.gather(*(client.open() for client in clients))
        result = LoadResult()
        started = time.perf_counter()
        deadline = started + spec.duration
        await asyncio.gather(*(_drive(client, deadline, result) for client in clients))
        result.elapsed = time.perf_counter() - started
        await asyncio.gather(*(client.close() for client in clients))
    return result


async def _drive(client: Client, deadline: float, result: LoadResult) -> None:
    clock = time.perf_counter
    while (began := clock()) < deadline:
        try:
            problem = await client.call()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
        if problem is None:
            result.calls += 1
            result.latencies_us.append(int((clock() - began) * 1_000_000))
        else:
            result.errors += 1
            if len(result.error_samples) < 3:
                result.error_samples.append(problem)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--era", choices=["modern", "legacy"], default="modern")
    parser.add_argument("--tool", default="echo")
    parser.add_argument("--repeat", action="store_true", help="send the same arguments every time")
    parser.add_argument("--header", action="append", default=[], help="NAME: VALUE, sent on every request")
    parser.add_argument("--trace-context", action="store_true", help="a fresh sampled traceparent on every call")
    args = parser.parse_args(argv)
    headers = dict(item.split(":", 1) for item in args.header)
    spec = LoadSpec(args.url, args.clients, args.duration, args.era, args.tool, args.repeat,
                    {name.strip(): value.strip() for name, value in headers.items()}, args.trace_context)
    result = asyncio.run(run_load(spec))
    sys.stdout.write(orjson.dumps(result.summary(), option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
