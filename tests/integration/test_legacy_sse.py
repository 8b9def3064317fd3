"""Legacy HTTP+SSE (2024-11-05) on both sides: SDK SSE clients through the sidecar, and an SDK SSE server behind it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import structlog.testing
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.types import ElicitResult

from tests.integration.test_sdk_matrix import session_transcript
from tests.integration.test_stdio_upstream import stdio_config
from tests.kit import (
    free_port,
    make_config,
    run_sidecar,
    serve_process,
    wait_until,
)


@contextlib.contextmanager
def sse_server(port: int | None = None) -> Iterator[str]:
    """The demo server speaking only the legacy SSE transport."""
    port = port or free_port()
    with serve_process([sys.executable, "-m", "proxy.runtime.demo", "sse", "--port", str(port)], port, "/sse") as url:
        yield url


@pytest.fixture(scope="module")
def sse_upstream() -> Iterator[str]:
    with sse_server() as url:
        yield url


@contextlib.asynccontextmanager
async def legacy_session(sse_url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    async with sse_client(sse_url) as (read, write), ClientSession(read, write, **callbacks) as session:
        await session.initialize()
        yield session


async def legacy_transcript(sse_url: str) -> dict[str, Any]:
    progress: list[float] = []
    asked: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with legacy_session(sse_url, elicitation_callback=on_elicit) as session:
        tools = await session.list_tools()
        added = await session.call_tool("add", {"a": 2, "b": 40})
        counted = await session.call_tool("slow_count", {"steps": 3, "delay_ms": 50}, progress_callback=on_progress)
        confirmed = await session.call_tool("confirm_action", {"action": "launch"})
        resource = await session.read_resource("demo://readme")
        prompt = await session.get_prompt("greet", {"name": "Ada"})
    return {
        "tools": sorted(tool.name for tool in tools.tools),
        "add": added.structured_content,
        "progress": progress,
        "counted": counted.content[0].text,
        "elicitation": (asked, confirmed.content[0].text),
        "resource": resource.contents[0].text,
        "prompt": prompt.messages[0].content.text,
    }


EXPECTED = {
    "add": {"result": 42},
    "progress": [1.0, 2.0, 3.0],
    "counted": "counted to 3",
    "elicitation": (["Really launch?"], "launch: done"),
    "resource": "This is the mcp-sidecar demo server.",
    "prompt": "Say hello to Ada, warmly.",
}


def sidecar_sse_url(sidecar: Any) -> str:
    return f"http://{sidecar.config.server.listen}/sse"


async def test_legacy_sse_client_through_the_sidecar_to_a_stdio_server() -> None:
    async with run_sidecar(stdio_config()) as sidecar:
        seen = await legacy_transcript(sidecar_sse_url(sidecar))
        upstream = sidecar.app.deps.upstream
        await wait_until(lambda: len(upstream.sessions) == 0)  # the client left: its session child was ended
    assert {key: seen[key] for key in EXPECTED} == EXPECTED
    assert "slow_count" in seen["tools"]


async def test_legacy_sse_client_through_the_sidecar_to_a_streamable_http_server(stateful_upstream: str) -> None:
    async with run_sidecar(make_config(stateful_upstream)) as sidecar:
        seen = await legacy_transcript(sidecar_sse_url(sidecar))
    assert {key: seen[key] for key in EXPECTED} == EXPECTED


async def test_legacy_sse_client_through_the_sidecar_to_a_legacy_sse_server(sse_upstream: str) -> None:
    direct = await legacy_transcript(sse_upstream)
    async with run_sidecar(make_config(None, upstream__sse_url=sse_upstream)) as sidecar:
        proxied = await legacy_transcript(sidecar_sse_url(sidecar))
    assert proxied == direct
    assert {key: proxied[key] for key in EXPECTED} == EXPECTED


@pytest.mark.parametrize("mode", ["auto", "legacy", "2026-07-28"])
async def test_streamable_http_clients_reach_a_legacy_sse_server(sse_upstream: str, mode: str) -> None:
    async with run_sidecar(make_config(None, upstream__sse_url=sse_upstream)) as sidecar:
        seen = await session_transcript(sidecar.url, mode)
    assert seen["add"] == ({"result": 42}, False)
    assert seen["resource"] == "This is the mcp-sidecar demo server."
    assert seen["prompt"] == "Say hello to Ada, warmly."
    assert seen["fail"][0] is True


async def test_the_sse_upstream_reconnects_after_its_stream_drops() -> None:
    port = free_port()
    config = make_config(None, upstream__sse_url=f"http://127.0.0.1:{port}/sse", upstream__restart_backoff_seconds=0.1,
                         upstream__restart_backoff_max_seconds=0.5)
    async with run_sidecar(config) as sidecar:
        upstream = sidecar.app.deps.upstream
        with sse_server(port):
            await upstream.shared.acquire(10)
            before = upstream.restarts
        await wait_until(lambda: upstream.restarts > before)  # the stream dropped with the server
        with sse_server(port):
            async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
                added = await client.call_tool("add", {"a": 1, "b": 1})
    assert added.structured_content == {"result": 2}


async def test_a_slow_legacy_sse_client_is_cut_off_instead_of_buffered() -> None:
    config = stdio_config(upstream__queue_limit=4)
    text = "y" * (512 * 1024)
    with structlog.testing.capture_logs() as logs:
        async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
            stream = await http.get(sidecar_sse_url(sidecar))
            endpoint = (await stream.content.readuntil(b"\n\n")).decode().split("data: ")[1].strip()
            messages = f"http://{sidecar.config.server.listen}{endpoint}"
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "slow", "version": "1"}}}
            async with http.post(messages, json=init) as accepted:
                assert accepted.status == 202
            assert b'"id":0,"result"' in await stream.content.readuntil(b"\n\n")  # initialized; now stop reading
            for index in range(1, 60):  # ~30 MB of answers that this client never reads
                call = {"jsonrpc": "2.0", "id": index, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": text}}}
                async with http.post(messages, json=call) as accepted:
                    if accepted.status == 404:
                        break  # already cut off
            await wait_until(lambda: any(entry["event"] == "sse.client_too_slow" for entry in logs), timeout=10)
            harmless = {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}
            async with asyncio.timeout(5):
                while True:  # that client's stream and session are closed promptly
                    async with http.post(messages, json=harmless) as probe:
                        if probe.status == 404:
                            break
                    await asyncio.sleep(0.05)
            stream.close()
    cut = next(entry for entry in logs if entry["event"] == "sse.client_too_slow")
    assert cut["limit"] == 4


async def test_legacy_sse_streams_are_bounded_by_max_sessions() -> None:
    async with run_sidecar(stdio_config(upstream__max_sessions=1)) as sidecar, aiohttp.ClientSession() as http:
        first = await http.get(sidecar_sse_url(sidecar))
        assert b"event: endpoint" in await first.content.readuntil(b"\n\n")
        async with http.get(sidecar_sse_url(sidecar)) as second:
            assert second.status == 503 and "at most 1" in await second.text()
        first.close()
