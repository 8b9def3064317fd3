"""A minimal MCP upstream on raw aiohttp: canned JSON-RPC answers, so a benchmark sees the sidecar's own cost.

    python -m bench.upstream_raw --port 9100 [--sse]

It answers initialize (minting a session id), server/discover, tools/list and tools/call (an `echo` tool whose
result carries the call's own text, so distinct arguments give distinct results), and 202 to notifications.
With --sse every request is answered as a one-event text/event-stream instead of application/json.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import orjson
from aiohttp import web

SERVER_INFO = {"name": "bench-raw-upstream", "version": "1.0"}
ECHO_TOOL = {
    "name": "echo",
    "description": "Return the text unchanged.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
}
CANNED: dict[str, dict[str, Any]] = {
    "initialize": {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": SERVER_INFO},
    "server/discover": {"supportedVersions": ["2026-07-28", "2025-11-25"], "capabilities": {"tools": {}},
                        "ttlMs": 0, "cacheScope": "public", "resultType": "complete",
                        "_meta": {"io.modelcontextprotocol/serverInfo": SERVER_INFO}},
    "tools/list": {"tools": [ECHO_TOOL], "ttlMs": 0, "cacheScope": "public", "resultType": "complete"},
}


def answer(message: dict[str, Any]) -> dict[str, Any]:
    method = message.get("method")
    if method == "tools/call":
        params = message.get("params") or {}
        text = str((params.get("arguments") or {}).get("text", ""))
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False,
                                  "resultType": "complete"}
        return {"jsonrpc": "2.0", "id": message.get("id"), "result": result}
    if method in CANNED:
        return {"jsonrpc": "2.0", "id": message.get("id"), "result": CANNED[method]}
    return {"jsonrpc": "2.0", "id": message.get("id"), "error": {"code": -32601, "message": "Method not found"}}


def create_app(sse: bool) -> web.Application:
    async def post(request: web.Request) -> web.Response:
        message = orjson.loads(await request.read())
        if "id" not in message or "method" not in message:
            return web.Response(status=202)
        headers = {}
        if message["method"] == "initialize":
            headers["Mcp-Session-Id"] = uuid.uuid4().hex
        body = orjson.dumps(answer(message))
        if sse:
            return web.Response(body=b"event: message\ndata: " + body + b"\n\n", headers=headers,
                                content_type="text/event-stream")
        return web.Response(body=body, headers=headers, content_type="application/json")

    async def not_allowed(request: web.Request) -> web.Response:
        return web.Response(status=405, headers={"Allow": "POST"})

    app = web.Application()
    app.router.add_post("/mcp", post)
    app.router.add_get("/mcp", not_allowed, allow_head=False)
    app.router.add_delete("/mcp", not_allowed)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_raw")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--sse", action="store_true", help="answer requests as text/event-stream")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        uvloop = None
    web.run_app(create_app(args.sse), host=args.host, port=args.port, access_log=None, print=None,
                loop=uvloop.new_event_loop() if uvloop else None)


if __name__ == "__main__":
    main()
