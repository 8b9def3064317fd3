"""Upstream failures never hang a client and never leak internals: each gets a clear JSON-RPC error."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from aiohttp import web

from tests.kit import make_config, modern_headers, modern_request, run_sidecar, start_raw_upstream

CALL = modern_request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, request_id=77)
CALL_HEADERS = modern_headers("tools/call", "add")


async def call_through(config, body: bytes = orjson.dumps(CALL)) -> tuple[int, bytes, str]:
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with asyncio.timeout(10), http.post(sidecar.url, data=body, headers=CALL_HEADERS) as response:
            return response.status, await response.read(), response.content_type


async def test_refused_connection_is_a_502_with_the_request_id() -> None:
    status, body, _ = await call_through(make_config("http://127.0.0.1:9/mcp"))
    answer = orjson.loads(body)
    assert status == 502
    assert answer["id"] == 77
    assert answer["error"] == {"code": -31002, "message": "Upstream MCP server is unreachable"}


async def test_slow_upstream_times_out_with_a_504() -> None:
    release = asyncio.Event()

    async def stall(request: web.Request, body: bytes) -> web.Response:
        await release.wait()
        return web.json_response({})

    async with start_raw_upstream(stall) as upstream:
        config = make_config(upstream.url, upstream__tool_timeouts={"add": 0.3})
        status, body, _ = await call_through(config)
        release.set()
    answer = orjson.loads(body)
    assert status == 504
    assert answer["id"] == 77 and answer["error"]["code"] == -31004
    assert "0.3s" in answer["error"]["message"]


async def test_garbage_from_the_upstream_is_a_clear_error() -> None:
    async def garbage(request: web.Request, body: bytes) -> web.Response:
        return web.Response(body=b"<html>oops</html>", content_type="application/json")

    async with start_raw_upstream(garbage) as upstream:
        status, body, _ = await call_through(make_config(upstream.url))
    answer = orjson.loads(body)
    assert status == 502 and answer["id"] == 77 and answer["error"]["code"] == -31005


async def test_reset_mid_stream_ends_the_stream_with_an_error_for_the_request() -> None:
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}

    async def break_off(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: message\ndata: " + orjson.dumps(progress) + b"\n\n")
        request.transport.abort()  # the upstream dies mid-stream
        return response

    async with start_raw_upstream(break_off) as upstream:
        status, body, content_type = await call_through(make_config(upstream.url))
    events = [block for block in body.decode().split("\n\n") if block.strip()]
    assert status == 200 and content_type == "text/event-stream"
    assert len(events) == 2
    assert orjson.loads(events[0].split("data: ", 1)[1]) == progress
    final = orjson.loads(events[1].split("data: ", 1)[1])
    assert final["id"] == 77 and final["error"]["code"] == -31002
    assert "mid-stream" in final["error"]["message"]


async def test_client_disconnect_closes_the_upstream_stream() -> None:
    upstream_closed = asyncio.Event()

    async def endless(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b": keep-alive\n\n")
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            upstream_closed.set()
            raise

    async with start_raw_upstream(endless) as upstream, run_sidecar(make_config(upstream.url)) as sidecar:
        async with aiohttp.ClientSession() as http:
            response = await http.post(sidecar.url, data=orjson.dumps(CALL), headers=CALL_HEADERS)
            await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
            response.close()
        await asyncio.wait_for(upstream_closed.wait(), 5)
    assert upstream_closed.is_set()


async def test_notification_failure_answers_without_an_id() -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    config = make_config("http://127.0.0.1:9/mcp")
    headers = modern_headers("notifications/cancelled")
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with http.post(sidecar.url, data=orjson.dumps(note), headers=headers) as response:
            answer = await response.json()
    assert response.status == 502 and answer["id"] is None


async def test_sidecar_keeps_serving_after_failures(stateless_upstream: str) -> None:
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(sidecar.url, data=b"{", headers=CALL_HEADERS) as response:
                assert response.status == 400
        async with http.post(sidecar.url, data=orjson.dumps(CALL), headers=CALL_HEADERS) as response:
            answer = await response.json()
    assert answer["result"]["structuredContent"] == {"result": 3}
