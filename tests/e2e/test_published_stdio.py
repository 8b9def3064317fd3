"""Published MCP servers spawned over stdio behind the sidecar: the npm reference server and a PyPI server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from mcp import Client
from mcp.types import CreateMessageResult, TextContent

from tests.kit import ROOT, make_config, run_sidecar, wait_until

pytestmark = pytest.mark.e2e
EVERYTHING = ROOT / ".tools/node_modules/@modelcontextprotocol/server-everything/dist/index.js"


@pytest.fixture(scope="module")
def everything() -> Path:
    """server-everything, installed by tests/e2e/install_tools.sh (run here too if it was not yet)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: cannot run @modelcontextprotocol/server-everything")
    if not EVERYTHING.exists():
        subprocess.run(["bash", str(ROOT / "tests/e2e/install_tools.sh")], check=True, timeout=300)
    return EVERYTHING


def everything_config(script: Path, **dotted: Any):
    return make_config(None, upstream__command=["node", str(script), "stdio"], **dotted)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_server_everything_over_stdio(everything: Path, mode: str) -> None:
    progress: list[tuple[float, float | None]] = []
    sampled: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    async def on_sampling(context: Any, params: Any) -> CreateMessageResult:
        sampled.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="sampled!"),
                                   model="test-model", stop_reason="endTurn")

    async with run_sidecar(everything_config(everything)) as sidecar, \
            Client(sidecar.url, mode=mode, cache=None, sampling_callback=on_sampling) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        summed = await client.call_tool("get-sum", {"a": 2, "b": 3})
        long_run = await client.call_tool("trigger-long-running-operation", {"duration": 0.6, "steps": 3},
                                          progress_callback=on_progress)
        sampling = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 10})
        resources = (await client.list_resources()).resources
        read = await client.read_resource(resources[0].uri)
        prompt = await client.get_prompt("simple-prompt")
        protocol = client.protocol_version
    assert protocol == "2025-11-25"  # server-everything speaks only the handshake era
    assert {"echo", "get-sum", "trigger-long-running-operation", "trigger-sampling-request"} <= tools
    assert "5" in summed.content[0].text
    assert "completed" in long_run.content[0].text
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert sampled == ["Resource trigger-sampling-request context: hello"]
    assert "sampled!" in sampling.content[0].text
    assert read.contents[0].uri == resources[0].uri
    assert prompt.messages[0].content.text


async def test_a_2026_client_reaches_the_handshake_era_server_through_the_sidecars_own_handshake(
        everything: Path) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with run_sidecar(everything_config(everything)) as sidecar, \
            Client(sidecar.url, mode="2026-07-28", cache=None) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        summed = await client.call_tool("get-sum", {"a": 1, "b": 2})
        await client.call_tool("trigger-long-running-operation", {"duration": 0.3, "steps": 3},
                               progress_callback=on_progress)
        resources = (await client.list_resources()).resources
        read = await client.read_resource(resources[0].uri)
        prompt = await client.get_prompt("simple-prompt")
    assert "get-sum" in tools and "trigger-sampling-request" not in tools  # no sampling without a session
    assert summed.content[0].text == "The sum of 1 and 2 is 3."
    assert progress == [1, 2, 3]
    assert read.contents[0].uri == resources[0].uri and prompt.messages


async def test_the_child_gets_a_minimal_environment(everything: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_SECRET_TOKEN", "must-not-leak")
    config = everything_config(everything, upstream__env={"GREETING": "hello"})
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="legacy", cache=None) as client:
        shown = (await client.call_tool("get-env", {})).content[0].text
    assert "GREETING" in shown and "must-not-leak" not in shown and "SIDECAR_SECRET_TOKEN" not in shown


async def test_server_everything_stderr_reaches_the_sidecar_logs(everything: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        async with run_sidecar(everything_config(everything)) as sidecar:
            upstream = sidecar.app.deps.upstream
            await upstream.shared.acquire(15)
            assert upstream.shared.era == "legacy"  # the sidecar did the initialize handshake itself
            await wait_until(lambda: any(entry["event"] == "upstream.stderr" for entry in logs))
    lines = [entry for entry in logs if entry["event"] == "upstream.stderr"]
    assert lines[0]["line"] == "Starting default (STDIO) server..." and lines[0]["child"] == "shared"


@pytest.mark.parametrize("mode", ["auto", "legacy", "2026-07-28"])
async def test_mcp_server_time_from_pypi_over_stdio(mode: str) -> None:
    config = make_config(None, upstream__command=[sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"])
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=mode, cache=None) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        now = await client.call_tool("get_current_time", {"timezone": "UTC"})
        converted = await client.call_tool("convert_time", {"source_timezone": "UTC", "time": "12:00",
                                                            "target_timezone": "Asia/Tokyo"})
    assert {"get_current_time", "convert_time"} <= tools
    assert now.is_error is False and '"timezone": "UTC"' in now.content[0].text
    assert converted.is_error is False and "Asia/Tokyo" in converted.content[0].text
