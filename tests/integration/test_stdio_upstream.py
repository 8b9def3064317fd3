"""The bundled demo server spawned over stdio behind the sidecar: both eras, sessions, concurrency, supervision."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.types import ElicitResult

from tests.integration.test_sdk_matrix import MODES, session_transcript
from tests.kit import ROOT, make_config, modern_headers, modern_request, run_sidecar, wait_until

DEMO = [sys.executable, "-m", "proxy.runtime.demo", "stdio"]


def stdio_config(command: list[str] | None = None, env: dict[str, str] | None = None, **dotted: Any):
    dotted.setdefault("upstream__cwd", str(ROOT))
    return make_config(None, upstream__command=command or DEMO, upstream__env={"PYTHONPATH": str(ROOT), **(env or {})},
                       **dotted)


def upstream_of(sidecar):
    return sidecar.app.deps.upstream


def alive(pid: int) -> bool:
    """True while the process exists at all (a zombie counts: it was not reaped)."""
    return os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_client_gets_the_same_answers_over_stdio(mode: str) -> None:
    async with run_sidecar(stdio_config()) as sidecar:
        seen = await session_transcript(sidecar.url, mode)
    assert seen["protocol"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert "slow_count" in seen["tools"] and "add" in seen["tools"]
    assert seen["add"] == ({"result": 42}, False)
    assert seen["fail"][0] is True
    assert seen["unknown"][0] is True
    assert seen["resource"] == "This is the mcp-sidecar demo server."
    assert seen["prompt"] == "Say hello to Ada, warmly."


@pytest.mark.parametrize("mode", MODES)
async def test_progress_is_relayed_while_the_tool_runs_over_stdio(mode: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(time.monotonic())

    async with run_sidecar(stdio_config()) as sidecar, Client(sidecar.url, mode=mode, cache=None) as client:
        counted = await client.call_tool("slow_count", {"steps": 3, "delay_ms": 150}, progress_callback=on_progress)
        finished = time.monotonic()
    assert counted.content[0].text == "counted to 3"
    assert len(progress) == 3 and finished - progress[0] > 0.2  # relayed while the tool was still running


@pytest.mark.parametrize("mode", ["auto", "legacy", "2026-07-28"])
async def test_elicitation_round_trip(mode: str) -> None:
    """Legacy: a server request mid-call on the session's child. 2026-07-28: input_required and a retry."""
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with run_sidecar(stdio_config()) as sidecar, \
            Client(sidecar.url, mode=mode, cache=None, elicitation_callback=on_elicit) as client:
        confirmed = await client.call_tool("confirm_action", {"action": "launch"})
    assert asked == ["Really launch?"]
    assert confirmed.content[0].text == "launch: done"


async def test_fifty_concurrent_stateless_calls_share_one_child_and_get_their_own_answers() -> None:
    async with run_sidecar(stdio_config()) as sidecar, aiohttp.ClientSession() as http:
        async def call(index: int) -> Any:
            body = modern_request("tools/call", {"name": "echo", "arguments": {"text": f"caller-{index}"}},
                                  request_id=7)  # every caller uses the same JSON-RPC id
            async with http.post(sidecar.url, json=body, headers=modern_headers("tools/call", "echo")) as response:
                assert response.status == 200
                return await response.json()

        answers = await asyncio.gather(*(call(index) for index in range(50)))
        upstream = upstream_of(sidecar)
        assert len(upstream.sessions) == 0 and upstream.restarts == 0
    for index, answer in enumerate(answers):
        assert answer["id"] == 7
        assert answer["result"]["content"][0]["text"] == f"caller-{index}"


async def test_large_messages_cross_the_stdio_framing() -> None:
    text = "x" * (3 * 1024 * 1024)  # far beyond asyncio's default 64 KiB line limit
    async with run_sidecar(stdio_config()) as sidecar, Client(sidecar.url, mode="2026-07-28", cache=None) as client:
        echoed = await client.call_tool("echo", {"text": text})
    assert echoed.content[0].text == text


async def test_a_crash_mid_call_fails_the_caller_at_once_and_the_child_is_restarted() -> None:
    config = stdio_config(upstream__restart_backoff_seconds=0.1)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        upstream = upstream_of(sidecar)
        await upstream.shared.acquire(10)
        pid = upstream.shared.mux.channel.pid
        body = modern_request("tools/call", {"name": "slow_count", "arguments": {"steps": 50, "delay_ms": 100}})
        headers = modern_headers("tools/call", "slow_count")
        call = asyncio.create_task(http.post(sidecar.url, json=body, headers=headers))
        await wait_until(lambda: upstream.shared.mux is not None and upstream.shared.mux.in_flight == 1)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        async with asyncio.timeout(5):
            response = await call
            answer = await response.json()
        failed_after = time.monotonic() - killed
        assert failed_after < 1.0
        assert answer["error"]["code"] == -31002 and "exited" in answer["error"]["message"]
        assert response.status == 502
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            added = await client.call_tool("add", {"a": 1, "b": 2})
        assert added.structured_content == {"result": 3}
        assert upstream.restarts == 1
        async with http.get(sidecar.admin_url + "/metrics") as metrics:
            assert "mcp_sidecar_upstream_restarts_total 1.0" in await metrics.text()
        await wait_until(lambda: not alive(pid))
        async with http.get(f"{sidecar.admin_url}/readyz") as ready:
            report = await ready.json()
        assert ready.status == 200 and "1 restarts" in report["checks"]["upstream"]["detail"]


async def test_readiness_reports_a_child_that_cannot_start() -> None:
    config = stdio_config([sys.executable, "-c", "import sys; sys.exit(3)"], upstream__restart_backoff_seconds=0.05)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        await wait_until(lambda: upstream_of(sidecar).restarts >= 2)
        async with http.get(f"{sidecar.admin_url}/readyz") as ready:
            report = await ready.json()
    assert ready.status == 503
    assert report["checks"]["upstream"]["ok"] is False


async def test_legacy_sessions_get_their_own_children_bounded_and_reaped() -> None:
    config = stdio_config(upstream__max_sessions=1, upstream__session_idle_seconds=1.5)
    client_info = {"name": "t", "version": "1"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client_info}}
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        upstream = upstream_of(sidecar)
        async with http.post(sidecar.url, json=init, headers=headers) as first:
            assert first.status == 200
            session_id = first.headers["Mcp-Session-Id"]
            assert len(session_id) >= 32
        async with http.post(sidecar.url, json=init, headers=headers) as second:
            refused = await second.json()
        assert second.status == 503 and "allows 1" in refused["error"]["message"]
        child = upstream.sessions.get(session_id).channel.pid
        await wait_until(lambda: len(upstream.sessions) == 0, timeout=5)  # reaped when idle
        await wait_until(lambda: not alive(child))
        async with http.post(sidecar.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                             headers={**headers, "Mcp-Session-Id": session_id}) as gone:
            assert gone.status == 404


TREE_SERVER = """
import os, signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a stubborn server: only SIGKILL stops it
grandchild = subprocess.Popen(["sleep", "60"])
with open(os.environ["PID_FILE"], "a") as out:
    out.write(f"{os.getpid()} {grandchild.pid}\\n")
from proxy.runtime.demo import main
main(["stdio"])
"""


async def test_shutdown_kills_the_whole_tree_and_leaves_no_zombies(tmp_path) -> None:
    pid_file = tmp_path / "pids"
    config = stdio_config([sys.executable, "-c", TREE_SERVER], env={"PID_FILE": str(pid_file)},
                          upstream__shutdown_grace_seconds=0.2, upstream__cwd=str(tmp_path))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="legacy", cache=None) as client:
        await client.list_tools()  # the shared child and this session's child are running
        await wait_until(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 4, timeout=10)
        pids = [int(pid) for pid in pid_file.read_text().split()]
        assert all(alive(pid) for pid in pids)
        assert os.readlink(f"/proc/{pids[0]}/cwd") == str(tmp_path)  # upstream.cwd
    started = time.monotonic()
    await wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5)
    assert time.monotonic() - started < 5


async def test_a_modern_client_closing_its_stream_cancels_the_call() -> None:
    async with run_sidecar(stdio_config()) as sidecar, aiohttp.ClientSession() as http:
        upstream = upstream_of(sidecar)
        body = modern_request("tools/call", {"name": "slow_count", "arguments": {"steps": 100, "delay_ms": 50}})
        body["params"]["_meta"]["progressToken"] = "p"
        response = await http.post(sidecar.url, json=body, headers=modern_headers("tools/call", "slow_count"))
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert b"notifications/progress" in await response.content.readuntil(b"\n\n")
        assert upstream.shared.mux.in_flight == 1
        response.close()  # 2026-07-28: closing the stream is cancellation
        await wait_until(lambda: upstream.shared.mux.in_flight == 0)
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:  # the child is still fine
            assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}


async def test_a_call_past_its_tool_timeout_is_a_504_and_the_server_is_told_to_cancel_it() -> None:
    config = stdio_config(upstream__tool_timeouts={"slow_count": 0.3})
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            await client.call_tool("add", {"a": 1, "b": 1})  # the child is up: the clock below is the call's alone
        body = modern_request("tools/call", {"name": "slow_count", "arguments": {"steps": 1, "delay_ms": 3000}})
        started = time.monotonic()
        async with asyncio.timeout(5), http.post(sidecar.url, json=body,
                                                 headers=modern_headers("tools/call", "slow_count")) as response:
            answer = await response.json()
        assert 0.3 <= time.monotonic() - started < 3.0  # cut at its timeout, not after the tool's 3 s
        assert response.status == 504
        assert answer["error"]["code"] == -31004 and "0.3s" in answer["error"]["message"]
        assert upstream_of(sidecar).shared.mux.in_flight == 0  # the call is forgotten
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})  # the child lives on
        assert added.structured_content == {"result": 5}
