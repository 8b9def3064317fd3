"""Server-to-client events that are not answers: subscriptions/listen (2026-07-28) and the legacy GET stream."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from mcp import Client

from tests.kit import ACCEPT_BOTH, make_config, run_sidecar


async def test_subscriptions_listen_stream_relays_list_changed(stateful_upstream: str) -> None:
    async with run_sidecar(make_config(stateful_upstream)) as sidecar:
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            async with client.listen(tools_list_changed=True) as subscription:
                assert await client.call_tool("change_tools", {}) is not None
                async with asyncio.timeout(5):
                    event = await anext(aiter(subscription))
    assert type(event).__name__ == "ToolsListChanged"


async def test_legacy_get_stream_relays_unsolicited_notifications(stateful_upstream: str) -> None:
    headers = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    async with run_sidecar(make_config(stateful_upstream)) as sidecar, aiohttp.ClientSession() as http:
        async with http.post(sidecar.url, data=orjson.dumps(init), headers=headers) as response:
            session = {**headers, "Mcp-Session-Id": response.headers["Mcp-Session-Id"],
                       "MCP-Protocol-Version": "2025-11-25"}
            await response.read()
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(sidecar.url, data=orjson.dumps(initialized), headers=session) as response:
            assert response.status == 202
        stream = await http.get(sidecar.url, headers={**session, "Accept": "text/event-stream"})
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "change_tools", "arguments": {}}}
        async with http.post(sidecar.url, data=orjson.dumps(call), headers=session) as response:
            assert b"announced" in await response.read()
        received = b""
        async with asyncio.timeout(5):
            while b"notifications/tools/list_changed" not in received:
                received += await stream.content.readany()
        stream.close()
    assert b"notifications/tools/list_changed" in received
