"""Serving with tools.lock_file: a tool that drifts from the lock is hidden and refused (block), sent to an
approver (approve) or let through (warn), in both eras, with nothing else disturbed; re-read on list_changed and
on the period; each drift audited, counted and listed under /readyz; a broken lock stops startup."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from mcp import Client

from proxy.config.tools import ToolsConfig
from proxy.runtime.app import create_app
from proxy.runtime.tools_cli import fetch, snapshot_of
from proxy.tools.pinning import LockFileError, write_lock
from tests.integration.tool_safety_servers import HONEST_NOTES, POISONED_NOTES
from tests.kit import (
    ROOT,
    bound,
    child_env,
    free_port,
    make_config,
    run_sidecar,
    serve_process,
    serve_workers,
    wait_until,
)
from tests.otlp_kit import SERVER, otlp_receiver

SERVERS = [sys.executable, "-m", "tests.integration.tool_safety_servers"]


@pytest.fixture
def mutable() -> Iterator[str]:
    port = free_port()
    with serve_process([*SERVERS, "mutable", "http", "--port", str(port)], port) as url:
        yield url


async def locked(url: str, path: Path, leave_out: str | None = None) -> Path:
    """The lock `tools lock` would write, optionally without one tool."""
    listing = await fetch(make_config(url))
    kept = [tool for tool in listing.definitions["tools"] if tool["name"] != leave_out]
    write_lock(snapshot_of(replace(listing, definitions={**listing.definitions, "tools": kept})), path)
    return path


def pinned(url: str, lock: Path, **dotted: Any):
    return make_config(url, tools__lock_file=str(lock), **dotted)


async def rotate_upstream(url: str) -> None:
    async with Client(url, cache=None) as client:
        assert (await client.call_tool("rotate", {})).content[0].text == "rotated"


async def tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def admin_json(sidecar: Any, path: str, method: str = "GET", body: Any = None) -> Any:
    return orjson.loads(await admin_text(sidecar, path, method, body))


async def admin_text(sidecar: Any, path: str, method: str = "GET", body: Any = None) -> str:
    async with aiohttp.ClientSession() as http, http.request(method, sidecar.admin_url + path,
                                                             json=body) as response:
        return await response.text()


async def assert_blocked(client: Client) -> None:
    assert "fetch_notes" not in await tool_names(client)
    refused = await client.call_tool("fetch_notes", {"topic": "x"})
    assert refused.is_error
    text = refused.content[0].text
    assert "fetch_notes differs from its reviewed definition (description changed)" in text
    assert "An operator must review" in text
    assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"result": 5}  # undisturbed


async def test_a_list_changed_on_the_legacy_get_stream_puts_the_drift_in_force(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock")
    audit = tmp_path / "audit.log"
    config = pinned(mutable, lock, tools__recheck_seconds=3600, audit__enabled=True, audit__sink="file",
                    audit__path=str(audit))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="legacy", cache=None) as client:
        assert {"fetch_notes", "add", "rotate"} <= await tool_names(client)
        assert not (await client.call_tool("fetch_notes", {"topic": "x"})).is_error
        assert (await client.call_tool("rotate", {})).content[0].text == "rotated"
        pins = sidecar.app.deps.pins
        assert pins is not None
        await wait_until(lambda: "fetch_notes" in pins.drifts, timeout=5)  # the GET stream's list_changed
        await assert_blocked(client)
        ready = await admin_json(sidecar, "/readyz")
        exposition = await admin_text(sidecar, "/metrics")
    assert ready["ready"] is True
    assert ready["checks"]["tools_lock"]["detail"].splitlines()[1] == \
        "fetch_notes differs from its reviewed definition (description changed)"
    assert 'mcp_sidecar_tools_drifts_total{status="changed"} 1.0' in exposition
    events = [orjson.loads(line) for line in audit.read_text().splitlines()]
    drifts = [event for event in events if event.get("kind") == "tool_drift"]
    assert [(e["tool"], e["status"], e["changed_fields"]) for e in drifts] == [("fetch_notes", "changed",
                                                                                 ["description"])]
    refusal = [e for e in events if e.get("tool") == "fetch_notes" and e.get("error_type") == "tool_drift"]
    assert refusal and refusal[0]["tool_drift"]["status"] == "changed" and "arguments" not in refusal[0]


async def test_a_modern_client_sees_the_drift_once_the_sidecar_hears_of_it(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock")
    async with run_sidecar(pinned(mutable, lock, tools__recheck_seconds=3600)) as sidecar, \
            Client(sidecar.url, mode="2026-07-28", cache=None) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            assert (await client.call_tool("rotate", {})).content[0].text == "rotated"
            async with asyncio.timeout(5):
                await anext(aiter(subscription))
        pins = sidecar.app.deps.pins
        assert pins is not None
        await wait_until(lambda: "fetch_notes" in pins.drifts, timeout=5)
        await assert_blocked(client)


async def test_the_period_catches_a_change_nobody_announced(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock")
    async with run_sidecar(pinned(mutable, lock, tools__recheck_seconds=0.3)) as sidecar, \
            Client(sidecar.url, mode="2026-07-28", cache=None) as client:
        assert "fetch_notes" in await tool_names(client)
        await rotate_upstream(mutable)  # straight to the upstream: the sidecar sees no notification
        pins = sidecar.app.deps.pins
        assert pins is not None
        await wait_until(lambda: "fetch_notes" in pins.drifts, timeout=5)
        await assert_blocked(client)
        live = await sidecar.app.deps.catalog.get("fetch_notes")
    assert live is not None and live.hash == pins.drifts["fetch_notes"].live_hash  # policy reads the live hash
    assert live.hash != pins.lock.tools["fetch_notes"].hash


async def test_an_unlocked_tool_is_hidden_and_refused_from_the_start(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock", leave_out="zone_offset")
    async with run_sidecar(pinned(mutable, lock)) as sidecar, Client(sidecar.url, cache=None) as client:
        names = await tool_names(client)
        refused = await client.call_tool("zone_offset", {"zone": "Europe/Paris"})
        ready = await admin_json(sidecar, "/readyz")
    assert "zone_offset" not in names and {"add", "fetch_notes", "rotate"} <= names
    assert refused.is_error and "zone_offset is not in the reviewed tools lock" in refused.content[0].text
    assert "zone_offset is not in the reviewed tools lock" in ready["checks"]["tools_lock"]["detail"]


async def test_the_console_inventory_shows_each_tools_pin_status(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock", leave_out="zone_offset")
    await rotate_upstream(mutable)
    async with run_sidecar(pinned(mutable, lock, tools__on_drift="warn")) as sidecar:
        body = await admin_json(sidecar, "/console/api/tools")
    pins = {tool["name"]: tool["pin"] for tool in body["tools"]}
    assert body["pinned"] is True and pins["add"] == {"status": "pinned", "summary": "as reviewed"}
    assert pins["fetch_notes"]["status"] == "changed" and "description changed" in pins["fetch_notes"]["summary"]
    assert pins["zone_offset"] == {"status": "unlocked", "summary": "zone_offset is not in the reviewed tools lock"}


async def test_warn_lets_a_drifted_tool_through_visible(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock")
    await rotate_upstream(mutable)
    async with run_sidecar(pinned(mutable, lock, tools__on_drift="warn")) as sidecar, \
            Client(sidecar.url, cache=None) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        called = await client.call_tool("fetch_notes", {"topic": "x"})
        assert sidecar.app.deps.pins is not None and "fetch_notes" in sidecar.app.deps.pins.drifts
        report = await admin_json(sidecar, "/tools/report")
        page = await admin_text(sidecar, "/tools/report?format=html")
        refused_format = await admin_json(sidecar, "/tools/report?format=pdf")
    rules = {(f["rule"], f["tool"]) for f in report["findings"]}
    assert {("drift.changed", "fetch_notes"), ("poisoning.model-instructions", "fetch_notes"),
            ("poisoning.credential-reference", "fetch_notes")} <= rules
    assert report["lock"] == str(lock) and report["policy"]["evaluated"] is False
    assert page.startswith("<!DOCTYPE html>") and "drift.changed" in page
    assert "format must be one of" in refused_format["error"]
    assert tools["fetch_notes"].description == POISONED_NOTES
    assert not called.is_error


async def test_approve_sends_a_drifted_call_to_an_approver_who_sees_the_drift(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock")
    await rotate_upstream(mutable)
    async with run_sidecar(pinned(mutable, lock, tools__on_drift="approve")) as sidecar, \
            Client(sidecar.url, cache=None) as client:
        call = asyncio.ensure_future(client.call_tool("fetch_notes", {"topic": "x"}))
        pending: list[dict[str, Any]] = []

        async def listed() -> bool:
            pending[:] = (await admin_json(sidecar, "/approvals"))["pending"]
            return bool(pending)

        await wait_until(listed, timeout=5)
        assert pending[0]["target"] == "fetch_notes"
        assert pending[0]["tool_drift"]["summary"] == \
            "fetch_notes differs from its reviewed definition (description changed)"
        decided = await admin_json(sidecar, f"/approvals/{pending[0]['id']}/approve", method="POST",
                                   body=bound(pending[0]))
        assert decided["approved"] is True
        async with asyncio.timeout(10):
            result = await call
        assert not result.is_error and (await client.call_tool("add", {"a": 1, "b": 1})).structured_content
    assert HONEST_NOTES != POISONED_NOTES


def test_a_broken_lock_stops_startup_with_path_and_reason(tmp_path: Path) -> None:
    lock = tmp_path / "tools.lock"
    lock.write_text("lock_version: 1\ntools: [{name: add, hash: sha256:00, definition: {name: add}}]\n")
    with pytest.raises(LockFileError) as caught:
        create_app(make_config(tools__lock_file=str(lock)))
    assert caught.value.path == lock and "does not match its definition" in caught.value.reason
    served = subprocess.run([sys.executable, "-m", "proxy", "serve", "--upstream", "http://127.0.0.1:9/mcp",
                             "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}"],
                            env=child_env(MCP_SIDECAR__TOOLS__LOCK_FILE=str(lock), MCP_SIDECAR__AUTH__MODE="off"),
                            capture_output=True, text=True, timeout=30)
    assert served.returncode == 2
    assert f"mcp-sidecar: the tools lock {lock} cannot be used: tools[0] (add): hash" in served.stderr


async def test_a_spawned_stdio_upstream_is_pinned_the_same_way(tmp_path: Path) -> None:
    def stdio(variant: int):
        command = [*SERVERS, "mutable", "stdio", "--variant", str(variant)]
        return make_config(None, upstream__command=command, upstream__cwd=str(ROOT))

    lock = tmp_path / "tools.lock"
    write_lock(snapshot_of(await fetch(stdio(1))), lock)
    drifted = stdio(2).model_copy(update={"tools": ToolsConfig(lock_file=str(lock))})
    async with run_sidecar(drifted) as sidecar:
        for mode in ("legacy", "2026-07-28"):
            async with Client(sidecar.url, mode=mode, cache=None) as client:
                await assert_blocked(client)


def test_every_worker_reads_the_same_lock_and_blocks_the_drift(mutable: str, tmp_path: Path) -> None:
    lock = tmp_path / "tools.lock"
    asyncio.run(locked(mutable, lock))
    asyncio.run(rotate_upstream(mutable))
    env = child_env(MCP_SIDECAR__AUDIT__ENABLED="false", MCP_SIDECAR__AUTH__MODE="off",
                    MCP_SIDECAR__TOOLS__LOCK_FILE=str(lock))

    async def clients(url: str) -> None:
        for _ in range(6):  # fresh connections: the kernel spreads them over the workers
            async with Client(url, cache=None) as client:
                await assert_blocked(client)

    with serve_workers(mutable, env, workers=2) as workers:
        asyncio.run(clients(workers.url))


async def test_each_drift_is_a_span_event_exported_over_otlp(mutable: str, tmp_path: Path) -> None:
    lock = await locked(mutable, tmp_path / "tools.lock")
    await rotate_upstream(mutable)
    async with otlp_receiver() as receiver:
        config = pinned(mutable, lock, telemetry__otlp_endpoint=receiver.url, telemetry__service_name="pinned")
        async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
            refused = await client.call_tool("fetch_notes", {"topic": "x"})
        await wait_until(lambda: receiver.named("mcp_sidecar tools recheck", "pinned"), timeout=8)
    assert refused.is_error
    [recheck] = receiver.named("mcp_sidecar tools recheck", "pinned")
    assert recheck.attributes["mcp_sidecar.tools.drifts"] == 1
    [(name, attributes)] = recheck.events
    assert name == "mcp_sidecar.tool.drift" and attributes["gen_ai.tool.name"] == "fetch_notes"
    assert attributes["mcp_sidecar.tool.drift.status"] == "changed"
    assert attributes["mcp_sidecar.tool.drift.live_hash"].startswith("sha256:")
    [call] = [span for span in receiver.named("tools/call fetch_notes", "pinned") if span.kind == SERVER]
    assert call.attributes["error.type"] == "tool_drift"


async def test_a_legacy_sse_upstream_is_pinned_the_same_way(tmp_path: Path) -> None:
    port = free_port()
    with serve_process([sys.executable, "-m", "proxy.runtime.demo", "sse", "--port", str(port)], port, "/sse") as url:
        config = make_config(None, upstream__sse_url=url)
        listing = await fetch(config)
        kept = [tool for tool in listing.definitions["tools"] if tool["name"] != "echo"]
        write_lock(snapshot_of(replace(listing, definitions={"tools": kept})), tmp_path / "tools.lock")
        pinned_config = config.model_copy(update={"tools": ToolsConfig(lock_file=str(tmp_path / "tools.lock"))})
        async with run_sidecar(pinned_config) as sidecar, Client(sidecar.url, cache=None) as client:
            names = await tool_names(client)
            refused = await client.call_tool("echo", {"text": "hi"})
            added = await client.call_tool("add", {"a": 1, "b": 2})
    assert "echo" not in names and "add" in names
    assert refused.is_error and "echo is not in the reviewed tools lock" in refused.content[0].text
    assert added.structured_content == {"result": 3}
