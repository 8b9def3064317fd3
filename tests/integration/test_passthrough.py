"""Both eras pass through unchanged: status codes and bodies clients use for era detection, and headers."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.kit import ACCEPT_BOTH, make_config, modern_headers, modern_request, run_sidecar, start_raw_upstream

LEGACY_INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                          "clientInfo": {"name": "raw", "version": "1"}}}


async def exchange(method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.request(method, url, data=body, headers=headers) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def both(method: str, upstream: str, sidecar: str, headers: dict[str, str], body: bytes | None = None):
    return await exchange(method, upstream, headers, body), await exchange(method, sidecar, headers, body)


@pytest.mark.parametrize(("method", "headers", "body"), [
    ("GET", modern_headers("tools/list"), None),  # modern GET: 405
    ("POST", {"Content-Type": "application/json", "Accept": "application/json"}, orjson.dumps(LEGACY_INIT)),  # 406
    ("POST", modern_headers("no/such/method"), orjson.dumps(modern_request("no/such/method"))),  # 404 -32601
    ("POST", {**modern_headers("tools/list"), "MCP-Protocol-Version": "1999-01-01"},
     orjson.dumps(modern_request("tools/list"))),  # legacy-looking unsupported version
    ("POST", modern_headers("tools/list"), orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
])
async def test_era_signals_reach_the_client_as_the_upstream_sent_them(stateful_upstream: str, method: str,
                                                                      headers: dict[str, str], body: bytes | None):
    async with run_sidecar(make_config(stateful_upstream)) as sidecar:
        direct, proxied = await both(method, stateful_upstream, sidecar.url, headers, body)
    assert direct[0] >= 400
    assert proxied == direct


async def test_legacy_session_lifecycle_passes_through(stateful_upstream: str) -> None:
    headers = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}
    async with run_sidecar(make_config(stateful_upstream)) as sidecar, aiohttp.ClientSession() as http:
        async with http.post(sidecar.url, data=orjson.dumps(LEGACY_INIT), headers=headers) as response:
            session_id = response.headers["Mcp-Session-Id"]
            assert response.content_type == "text/event-stream"
            assert response.headers["X-Accel-Buffering"] == "no"
            assert b'"protocolVersion"' in await response.read()
        session = {**headers, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(sidecar.url, data=orjson.dumps(note), headers=session) as response:
            assert response.status == 202 and await response.read() == b""
        async with http.delete(sidecar.url, headers=session) as response:
            assert response.status == 200
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        async with http.post(sidecar.url, data=orjson.dumps(listing), headers=session) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == -32600


async def test_caller_credentials_and_hop_headers_never_reach_the_upstream() -> None:
    async def answer(request: web.Request, body: bytes) -> web.Response:
        return web.json_response({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}},
                                 headers={"Connection": "keep-alive", "X-Upstream": "yes"})

    headers = {**modern_headers("tools/list"), "Authorization": "Bearer secret-token", "Host": "mcp.example.com",
               "Origin": "https://x.example", "Cookie": "a=b", "Mcp-Param-Region": "eu", "X-Other": "1"}
    async with start_raw_upstream(answer) as upstream:
        config = make_config(upstream.url, server__allowed_origins=["https://x.example"])
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            async with http.post(sidecar.url, data=orjson.dumps(modern_request("tools/list")),
                                 headers=headers) as response:
                assert response.status == 200
                assert response.headers["X-Upstream"] == "yes"
        seen_headers, seen_body = upstream.seen[0]
    for forbidden in ("authorization", "origin", "cookie", "x-other"):
        assert forbidden not in seen_headers
    assert seen_headers["host"] == upstream.url.split("/")[2]
    assert seen_headers["mcp-param-region"] == "eu"
    assert seen_headers["mcp-method"] == "tools/list"
    forwarded = orjson.loads(seen_body)
    # Tracing (on by default) adds the sidecar's upstream span as the trace context, in _meta and the header alike.
    assert forwarded["params"]["_meta"].pop("traceparent") == seen_headers["traceparent"]
    assert forwarded == modern_request("tools/list")


async def test_an_sse_answer_already_whole_is_sent_at_once_and_a_live_one_as_it_comes() -> None:
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}
    final = {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}
    first, second = (b"event: message\ndata: " + orjson.dumps(item) + b"\n\n" for item in (progress, final))
    relayed_first = asyncio.Event()

    async def answer(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if request.headers["Mcp-Param-Mode"] == "live":
            await response.write(first)
            await relayed_first.wait()  # the final event follows once the client has the first
            await response.write(second)
        else:
            await response.write(first + second)
        await response.write_eof()
        return response

    framings = {}
    async with start_raw_upstream(answer) as upstream, run_sidecar(make_config(upstream.url)) as sidecar:
        async with aiohttp.ClientSession() as http, asyncio.timeout(5):
            for mode in ("live", "whole"):  # live first: its event is set once and stays set
                headers = {**modern_headers("tools/list"), "Mcp-Param-Mode": mode}
                async with http.post(sidecar.url, data=orjson.dumps(modern_request("tools/list")),
                                     headers=headers) as response:
                    assert response.content_type == "text/event-stream"
                    assert await response.content.readuntil(b"\n\n") == first
                    relayed_first.set()
                    assert await response.read() == second
                    framings[mode] = (response.headers.get("Content-Length"), response.headers.get("Transfer-Encoding"))
    assert framings == {"whole": (str(len(first + second)), None), "live": (None, "chunked")}
