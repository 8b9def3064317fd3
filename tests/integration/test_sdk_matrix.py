"""The SDK client in every mode gets the same answers directly and through the sidecar."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mcp import Client, types

from tests.kit import make_config, run_sidecar

MODES = ["auto", "legacy", "2026-07-28"]


async def session_transcript(url: str, mode: str) -> dict[str, Any]:
    async with Client(url, mode=mode, cache=None) as client:
        tools = await client.list_tools()
        added = await client.call_tool("add", {"a": 2, "b": 40})
        failed = await client.call_tool("fail", {"message": "nope"})
        unknown = await client.call_tool("no_such_tool", {})
        resource = await client.read_resource("demo://readme")
        prompt = await client.get_prompt("greet", {"name": "Ada"})
        return {
            "protocol": client.protocol_version,
            "tools": sorted(tool.name for tool in tools.tools),
            "annotations": {tool.name: tool.annotations for tool in tools.tools},
            "add": (added.structured_content, added.is_error),
            "fail": (failed.is_error, failed.content[0].text),
            "unknown": (unknown.is_error, unknown.content[0].text),
            "resource": resource.contents[0].text,
            "prompt": prompt.messages[0].content.text,
        }


@pytest.mark.parametrize("mode", MODES)
async def test_same_answers_direct_and_through_sidecar(upstream_url: str, mode: str) -> None:
    direct = await session_transcript(upstream_url, mode)
    async with run_sidecar(make_config(upstream_url)) as sidecar:
        proxied = await session_transcript(sidecar.url, mode)
    assert proxied == direct
    assert direct["add"] == ({"result": 42}, False)
    assert direct["protocol"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")


@pytest.mark.parametrize("mode", MODES)
async def test_progress_reaches_client_before_the_tool_finishes(stateful_upstream: str, mode: str) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(time.monotonic())

    sidecar_running = run_sidecar(make_config(stateful_upstream))
    async with sidecar_running as sidecar, Client(sidecar.url, mode=mode, cache=None) as client:
        result = await client.call_tool("slow_count", {"steps": 4, "delay_ms": 150}, progress_callback=on_progress)
        finished = time.monotonic()
    assert result.content[0].text == "counted to 4"
    assert len(seen) == 4
    # The first progress event was relayed while the upstream was still working (3 more steps of 150 ms).
    assert finished - seen[0] > 0.3


@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_round_trip_through_the_sidecar(stateful_upstream: str, mode: str) -> None:
    """Legacy: a server-to-client request inside the SSE stream, answered by a POSTed response (202).
    2026-07-28: an input_required result and a retry of the same call carrying inputResponses."""
    asked: list[str] = []

    async def answer(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with run_sidecar(make_config(stateful_upstream)) as sidecar:
        async with Client(sidecar.url, mode=mode, cache=None, elicitation_callback=answer) as client:
            result = await client.call_tool("confirm_action", {"action": "deploy"})
    assert asked == ["Really deploy?"]
    assert result.content[0].text == "deploy: done"
