"""policy.engine: opa — the same input POSTed to an OPA-shaped data API; slow, failing or absent OPA denies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from mcp import Client

from tests.kit import free_port, make_config, run_sidecar

MODE = "2026-07-28"


class FakeOpa:
    """Speaks OPA's data API: POST /v1/data/<path> {"input": ...} -> {"result": ..., "provenance": ...}."""

    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []
        self.rules: list[str] = []
        self.delay = 0.0
        self.status = 200

    async def data(self, request: web.Request) -> web.Response:
        document = (await request.json())["input"]
        self.inputs.append(document)
        await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"code": "internal_error"}, status=self.status)
        body: dict[str, Any] = {"provenance": {"bundles": {"authz": {"revision": "opa-rev-7"}}}}
        rule = request.match_info["path"]
        self.rules.append(rule)
        if rule == "mcp/decision":
            tool = (document["mcp"]["tool"] or {}).get("name")
            if tool == "delete_file":
                body["result"] = {"allow": False, "reasons": ["deleting is off today"]}
            elif tool != "undefined_here":
                body["result"] = {"allow": True, "obligations": {"cache": {"scope": "private", "ttl_seconds": 5}}}
        elif rule == "mcp/visible":
            body["result"] = [item["key"] for item in document["mcp"]["list"]["items"] if item["key"] != "delete_file"]
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({})


@contextlib.asynccontextmanager
async def fake_opa() -> AsyncIterator[tuple[FakeOpa, str]]:
    opa, app = FakeOpa(), web.Application()
    app.router.add_post("/v1/data/{path:.+}", opa.data)
    app.router.add_get("/health", opa.health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield opa, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_opa_decides_calls_and_lists(stateless_upstream: str) -> None:
    async with fake_opa() as (opa, url):
        config = make_config(stateless_upstream, policy__engine="opa", policy__opa_url=url)
        async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=MODE, cache=None) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            added = await client.call_tool("add", {"a": 1, "b": 2})
            denied_input = len(opa.inputs)
            opa_denied = await client.call_tool("delete_file", {"path": "/x"})
    assert "delete_file" not in names and "add" in names
    assert added.structured_content == {"result": 3}
    # delete_file is hidden by the visible rule: answered as unknown, like the upstream does
    assert opa_denied.is_error and opa_denied.content[0].text == "Unknown tool: delete_file"
    call_input = next(doc for doc in opa.inputs if doc["mcp"]["method"] == "tools/call")
    assert call_input["version"] == 1 and call_input["mcp"]["tool"]["arguments"] == {"a": 1, "b": 2}
    assert "mcp/argument_names" not in opa.rules  # OPA is not asked: it decides on the whole arguments
    assert call_input["mcp"]["tool"]["annotations"]["readOnlyHint"] is True  # from the sidecar's own catalog
    assert opa.inputs[denied_input]["mcp"]["tool"]["name"] == "delete_file"


async def test_slow_failing_or_absent_opa_denies(stateless_upstream: str) -> None:
    async with fake_opa() as (opa, url):
        config = make_config(stateless_upstream, policy__engine="opa", policy__opa_url=url,
                             policy__opa_timeout_seconds=0.2)
        async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=MODE, cache=None) as client:
            assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}
            undefined = await client.call_tool("undefined_here", {})
            opa.delay = 0.5
            slow = await client.call_tool("add", {"a": 1, "b": 1})
            opa.delay, opa.status = 0.0, 500
            failing = await client.call_tool("add", {"a": 1, "b": 1})
    assert undefined.is_error and undefined.content[0].text == "Denied by policy: policy decision is undefined"
    for result in (slow, failing):
        assert result.is_error and result.content[0].text == "Denied by policy: policy could not be evaluated"
    closed = make_config(stateless_upstream, policy__engine="opa", policy__opa_url=f"http://127.0.0.1:{free_port()}")
    async with run_sidecar(closed) as sidecar:
        async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/readyz") as response:
            report = await response.json()
    assert report["checks"]["policy"]["ok"] is False and "unreachable" in report["checks"]["policy"]["detail"]
