"""Event streams that stay silent get SSE keepalive comments (server.stream_keepalive_seconds), so an idle timeout
between client and sidecar cannot cut them: approval waits, legacy /sse streams, relayed GET streams."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from mcp import Client

from proxy import mcp
from tests.integration.test_approval import pending, with_policy
from tests.integration.test_legacy_sse import sidecar_sse_url
from tests.integration.test_stdio_upstream import stdio_config
from tests.kit import ACCEPT_BOTH, make_config, modern_headers, modern_request, run_sidecar, wait_until

KEEPALIVE = b": keepalive\n\n"
FAST = 0.2  # keepalive interval in these tests


async def read_until(stream: aiohttp.StreamReader, marker: bytes, timeout: float = 5.0) -> bytes:
    """What the stream carries up to and including the first `marker`."""
    seen = b""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            seen += await stream.readany()
    return seen


async def approve_first(http: aiohttp.ClientSession, admin_url: str) -> None:
    async with asyncio.timeout(5):
        while not (waiting := await pending(http, admin_url)):
            await asyncio.sleep(0.02)
    async with http.post(f"{admin_url}/approvals/{waiting[0]['id']}/approve") as response:
        assert response.status == 200


async def test_a_call_waiting_for_approval_streams_keepalives_then_the_answer(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    config = make_config(stateless_upstream, server__stream_keepalive_seconds=FAST)
    call = modern_request("tools/call", {"name": "delete_file", "arguments": {"path": "/tmp/k"}}, request_id=7)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with http.post(sidecar.url, data=orjson.dumps(call),
                             headers=modern_headers("tools/call", "delete_file")) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            waited = await read_until(response.content, KEEPALIVE * 2)  # the head and two keepalives, undecided
            assert waited == KEEPALIVE * 2
            await approve_first(http, sidecar.admin_url)
            rest = await asyncio.wait_for(response.content.read(), 5)
    data = [line[5:] for line in rest.split(b"\n") if line.startswith(b"data:")]
    assert len(data) == 1
    answer = orjson.loads(data[0])
    assert answer["id"] == 7 and answer["result"]["content"][0]["text"] == "deleted /tmp/k"


async def test_an_sdk_client_gets_its_result_through_the_keepalives(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    config = make_config(stateless_upstream, server__stream_keepalive_seconds=FAST / 2)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        heartbeat = sidecar.app.heartbeat
        async with Client(sidecar.url, cache=None) as client:
            call = asyncio.create_task(client.call_tool("delete_file", {"path": "/tmp/s"}))
            await wait_until(lambda: heartbeat.sent >= 3)
            await approve_first(http, sidecar.admin_url)
            result = await asyncio.wait_for(call, 5)
    assert result.is_error is False and result.content[0].text == "deleted /tmp/s"


async def test_a_client_leaving_during_the_wait_withdraws_its_approval(stateless_upstream, monkeypatch) -> None:
    with_policy(monkeypatch, "delete_file")
    call = modern_request("tools/call", {"name": "delete_file", "arguments": {"path": "/tmp/g"}})
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        response = await http.post(sidecar.url, data=orjson.dumps(call),
                                   headers=modern_headers("tools/call", "delete_file"))
        await wait_until(lambda: len(sidecar.app.deps.approvals.pending()) == 1)
        response.close()  # the client goes away before anyone decides
        await wait_until(lambda: sidecar.app.deps.approvals.pending() == [])


async def test_an_idle_legacy_sse_stream_gets_keepalives() -> None:
    async with run_sidecar(stdio_config(server__stream_keepalive_seconds=FAST)) as sidecar:
        async with aiohttp.ClientSession() as http, http.get(sidecar_sse_url(sidecar)) as stream:
            seen = await read_until(stream.content, KEEPALIVE * 2)
    assert seen.startswith(b"event: endpoint") and seen.endswith(b"\n\n" + KEEPALIVE * 2)


async def test_no_keepalives_when_turned_off() -> None:
    async with run_sidecar(stdio_config(server__stream_keepalive_seconds=0)) as sidecar:
        async with aiohttp.ClientSession() as http, http.get(sidecar_sse_url(sidecar)) as stream:
            endpoint = await read_until(stream.content, b"\n\n")
            quiet = asyncio.create_task(stream.content.readany())
            done, _ = await asyncio.wait({quiet}, timeout=FAST * 3)  # three intervals of the fast setting
            quiet.cancel()
    assert endpoint.startswith(b"event: endpoint") and not done
    assert sidecar.app.heartbeat.sent == 0


async def test_a_relayed_get_stream_gets_keepalives_while_the_upstream_is_silent(stateful_upstream) -> None:
    config = make_config(stateful_upstream, server__stream_keepalive_seconds=FAST)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "keepalive", "version": "1"}}}
    headers = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with http.post(sidecar.url, data=orjson.dumps(initialize), headers=headers) as response:
            assert response.status == 200
            session = response.headers[mcp.HEADER_SESSION_ID]
        headers = {**headers, mcp.HEADER_SESSION_ID: session, mcp.HEADER_PROTOCOL_VERSION: "2025-11-25"}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(sidecar.url, data=orjson.dumps(note), headers=headers) as response:
            assert response.status == 202
        get_headers = {**headers, "Accept": "text/event-stream"}
        async with http.get(sidecar.url, headers=get_headers) as stream:
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            seen = await read_until(stream.content, KEEPALIVE * 2)
        async with http.delete(sidecar.url, headers=headers):
            pass
    assert seen.endswith(KEEPALIVE * 2)
