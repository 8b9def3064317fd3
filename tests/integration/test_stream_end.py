"""A request's SSE answer ends with its final response: the client does not wait for the upstream's end of stream,
and the upstream connection is still reused once that end arrives (or closed if it does not come)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from aiohttp import web

from proxy.net import http_response
from tests.integration.test_approval import with_policy
from tests.integration.test_stream_keepalive import approve_first
from tests.kit import make_config, modern_headers, modern_request, run_sidecar, start_raw_upstream

CALL_HEADERS = modern_headers("tools/call", "add")
PROGRESS = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}


class HoldingUpstream:
    """Answers each call as an SSE stream (a progress event, then the response) and ends the stream only when the
    test says so; records the client port of each call's connection."""

    def __init__(self) -> None:
        self.end = asyncio.Event()
        self.ports: list[int] = []

    async def __call__(self, request: web.Request, body: bytes) -> web.StreamResponse:
        assert request.transport is not None
        self.ports.append(request.transport.get_extra_info("peername")[1])
        call_id = orjson.loads(body)["id"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: message\ndata: " + orjson.dumps(PROGRESS) + b"\n\n")
        answer = {"jsonrpc": "2.0", "id": call_id, "result": {"content": [{"type": "text", "text": "3"}]}}
        await response.write(b"event: message\ndata: " + orjson.dumps(answer) + b"\n\n")
        await self.end.wait()
        self.end.clear()
        return response


async def call(http: aiohttp.ClientSession, url: str, call_id: int) -> list[dict]:
    body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {}}, request_id=call_id))
    async with asyncio.timeout(5), http.post(url, data=body, headers=CALL_HEADERS) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        raw = await response.read()  # the whole stream: it must end without the upstream's end
    return [orjson.loads(line[5:]) for line in raw.split(b"\n") if line.startswith(b"data:")]


async def test_the_client_s_stream_ends_with_the_final_response_and_the_connection_is_reused() -> None:
    upstream_handler = HoldingUpstream()
    async with start_raw_upstream(upstream_handler) as upstream, run_sidecar(make_config(upstream.url)) as sidecar, \
            aiohttp.ClientSession() as http:
        first = await call(http, sidecar.url, 1)  # while the upstream still holds its stream open
        upstream_handler.end.set()  # now its end comes: the connection goes back to the pool
        pool = sidecar.app.deps.upstream._pool
        async with asyncio.timeout(5):
            while not pool._idle:
                await asyncio.sleep(0.01)
        second = await call(http, sidecar.url, 2)
        upstream_handler.end.set()
    assert first == [PROGRESS, {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "3"}]}}]
    assert second[-1]["id"] == 2
    assert upstream_handler.ports[0] == upstream_handler.ports[1]


async def test_an_upstream_stream_that_never_ends_costs_its_connection_after_the_drain_bound(monkeypatch) -> None:
    monkeypatch.setattr(http_response, "DRAIN_SECONDS", 0.2)
    upstream_handler = HoldingUpstream()
    async with start_raw_upstream(upstream_handler) as upstream, run_sidecar(make_config(upstream.url)) as sidecar, \
            aiohttp.ClientSession() as http:
        first = await call(http, sidecar.url, 1)
        pool = sidecar.app.deps.upstream._pool
        async with asyncio.timeout(5):  # the end never comes: the connection is closed, not reused
            while pool._open:
                await asyncio.sleep(0.01)
        second = await call(http, sidecar.url, 2)
        upstream_handler.end.set()
    assert first[-1]["id"] == 1 and second[-1]["id"] == 2
    assert upstream_handler.ports[0] != upstream_handler.ports[1]


async def test_an_approved_call_s_stream_also_ends_early_and_keeps_its_connection(monkeypatch) -> None:
    with_policy(monkeypatch, "add")
    upstream_handler = HoldingUpstream()
    async with start_raw_upstream(upstream_handler) as upstream, run_sidecar(make_config(upstream.url)) as sidecar, \
            aiohttp.ClientSession() as http:
        answer = asyncio.create_task(call(http, sidecar.url, 1))
        await approve_first(http, sidecar.admin_url)
        events = await answer  # while the upstream still holds its stream open
        upstream_handler.end.set()
        pool = sidecar.app.deps.upstream._pool
        async with asyncio.timeout(5):
            while not pool._idle:
                await asyncio.sleep(0.01)
    assert events[-1]["id"] == 1 and "result" in events[-1]


async def test_a_legacy_sse_client_s_answer_does_not_hold_the_upstream_stream(monkeypatch) -> None:
    """The 2024-11-05 transport (GET /sse, POST /messages/) puts the answer on the client's stream and stops reading the
    upstream's: a stream whose end never comes costs its connection after the drain bound, not until it idles out."""
    monkeypatch.setattr(http_response, "DRAIN_SECONDS", 0.2)
    upstream_handler = HoldingUpstream()
    async with start_raw_upstream(upstream_handler) as upstream, run_sidecar(make_config(upstream.url)) as sidecar, \
            aiohttp.ClientSession() as http, asyncio.timeout(5):
        stream = await http.get(f"http://{sidecar.config.server.listen}/sse")
        endpoint = (await stream.content.readuntil(b"\n\n")).decode().split("data: ")[1].strip()
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "add", "arguments": {}}}
        async with http.post(f"http://{sidecar.config.server.listen}{endpoint}", json=body) as accepted:
            assert accepted.status == 202
        events = [await stream.content.readuntil(b"\n\n") for _ in range(2)]
        pool = sidecar.app.deps.upstream._pool
        while pool._open:  # the upstream's end never comes: closed after the drain bound
            await asyncio.sleep(0.01)
        stream.close()
        upstream_handler.end.set()
    assert b'"progress"' in events[0] and b'"id":7,"result"' in events[1]
