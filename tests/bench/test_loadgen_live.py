"""The load generator behaves as an MCP client of its era (no timing assertions)."""

from __future__ import annotations

import itertools

import orjson
from aiohttp import web

from bench.loadgen import LoadSpec, run_load
from tests.kit import start_raw_upstream


async def test_legacy_clients_end_their_sessions_after_the_run() -> None:
    numbers = itertools.count(1)
    ended: list[str] = []

    async def legacy_server(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.method == "DELETE":
            ended.append(request.headers["Mcp-Session-Id"])
            return web.Response(status=200)
        message = orjson.loads(body)
        if message.get("method") == "initialize":
            return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": {}},
                                     headers={"Mcp-Session-Id": f"session-{next(numbers)}"})
        if "id" not in message:
            return web.Response(status=202)
        return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": {"content": []}})

    async with start_raw_upstream(legacy_server) as upstream:
        result = await run_load(LoadSpec(upstream.url, clients=2, duration=0.2, era="legacy"))
    assert result.calls > 0 and result.errors == 0
    assert sorted(ended) == ["session-1", "session-2"]
