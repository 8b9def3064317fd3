"""One audit event per message, arguments absent by default, a disconnect still audited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from mcp import Client

from tests.kit import make_config, modern_headers, modern_request, run_sidecar, start_raw_upstream, wait_until


def events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_one_event_per_message_without_arguments(stateless_upstream: str, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    config = make_config(stateless_upstream, audit__enabled=True, audit__sink="file", audit__path=str(log))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="2026-07-28", cache=None) as client:
        await client.call_tool("echo", {"text": "top-secret-argument"})
    calls = [e for e in events(log) if e["method"] == "tools/call"]
    assert len(calls) == 1
    [call] = calls
    assert call["target"] == "echo" and call["outcome"] == "allowed" and call["upstream_status"] == 200
    assert call["latency_ms"] > 0 and len(call["decision_id"]) == 32
    assert b"top-secret-argument" not in log.read_bytes()


async def test_arguments_when_enabled(stateless_upstream: str, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    config = make_config(stateless_upstream, audit__enabled=True, audit__sink="file", audit__path=str(log),
                         audit__log_arguments=True)
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="2026-07-28", cache=None) as client:
        await client.call_tool("echo", {"text": "visible"})
    [call] = [e for e in events(log) if e["method"] == "tools/call"]
    assert call["arguments"] == {"text": "visible"}


async def test_client_disconnect_is_audited(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def stall(request: web.Request, body: bytes) -> web.Response:
        started.set()
        await asyncio.sleep(30)
        return web.json_response({})

    log = tmp_path / "audit.jsonl"
    async with start_raw_upstream(stall) as upstream:
        config = make_config(upstream.url, audit__enabled=True, audit__sink="file", audit__path=str(log))
        async with run_sidecar(config) as sidecar:
            async with aiohttp.ClientSession() as http:
                body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {}}))
                headers = modern_headers("tools/call", "add")
                request = asyncio.create_task(http.post(sidecar.url, data=body, headers=headers))
                await asyncio.wait_for(started.wait(), 5)
                request.cancel()
            await wait_until(lambda: len(events(log)) == 1)
    [event] = events(log)
    assert event["outcome"] == "cancelled" and event["error_type"] == "client_disconnected"
