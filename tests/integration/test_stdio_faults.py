"""Faults of a spawned stdio server, over real processes (tests/integration/faulty_stdio_server.py) and the SDK
client: a child that exits while a process it started holds its stdout, an answer over max_event_bytes, a start
that times out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import uvloop
from mcp import Client
from mcp.shared.exceptions import MCPError

from proxy.upstream.process import ChildProcess, ProcessSpec
from tests.integration.test_stdio_upstream import alive, upstream_of
from tests.kit import make_config, modern_headers, modern_request, run_sidecar, wait_until
from tests.unit.upstream.test_process import Received

SERVER = [sys.executable, str(Path(__file__).with_name("faulty_stdio_server.py"))]


def faulty_config(tmp_path: Path, env: dict[str, str] | None = None, **dotted: Any):
    dotted = {"upstream__command": SERVER, "upstream__restart_backoff_seconds": 0.1, "upstream__timeout_seconds": 30,
              "upstream__shutdown_grace_seconds": 0.3, **dotted}
    return make_config(None, upstream__env={"PID_FILE": str(tmp_path / "pids"), **(env or {})}, **dotted)


def grandchildren(tmp_path: Path) -> list[int]:
    path = tmp_path / "pids"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


async def call_tool(http: aiohttp.ClientSession, url: str, name: str, arguments: dict[str, Any],
                    within: float = 5) -> tuple[int, dict[str, Any], float]:
    """A 2026-07-28 tools/call; its status, body and how long it took (bounded)."""
    body = modern_request("tools/call", {"name": name, "arguments": arguments})
    started = time.monotonic()
    async with asyncio.timeout(within), http.post(url, json=body, headers=modern_headers("tools/call", name)) as reply:
        return reply.status, await reply.json(), time.monotonic() - started


async def readiness(http: aiohttp.ClientSession, sidecar: Any) -> tuple[int, str]:
    async with http.get(f"{sidecar.admin_url}/readyz") as ready:
        return ready.status, (await ready.json())["checks"]["upstream"]["detail"]


async def test_a_child_exiting_while_its_grandchild_holds_stdout_is_noticed_and_restarted(tmp_path: Path) -> None:
    async with run_sidecar(faulty_config(tmp_path)) as sidecar, aiohttp.ClientSession() as http:
        upstream = upstream_of(sidecar)
        await upstream.shared.acquire(10)
        status, answer, took = await call_tool(http, sidecar.url, "exit_now", {})
        assert took < 3  # at once, not after upstream.timeout_seconds (30 s)
        assert status == 502 and answer["error"]["code"] == -31002 and "exited" in answer["error"]["message"]
        [grandchild] = grandchildren(tmp_path)
        await wait_until(lambda: upstream.restarts == 1 and upstream.shared.state == "running")
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})
        assert added.content[0].text == "5"
        status, detail = await readiness(http, sidecar)
        assert status == 200 and "last exit: exit code 0, its stdout still held open" in detail
        assert "1 restarts" in detail
        async with http.get(f"{sidecar.admin_url}/metrics") as metrics:
            assert "mcp_sidecar_upstream_restarts_total 1.0" in await metrics.text()
        await wait_until(lambda: not alive(grandchild))  # its process group was terminated


async def test_a_session_whose_child_exited_answers_404_so_the_client_starts_again(tmp_path: Path) -> None:
    async with run_sidecar(faulty_config(tmp_path)) as sidecar, \
            Client(sidecar.url, mode="legacy", cache=None) as client:
        upstream = upstream_of(sidecar)
        await client.list_tools()
        started = time.monotonic()
        with pytest.raises(MCPError, match=r"The session ended \(upstream ended: exit code 0"):
            async with asyncio.timeout(5):
                await client.call_tool("exit_now", {})
        assert time.monotonic() - started < 3
        [grandchild] = grandchildren(tmp_path)
        assert len(upstream.sessions) == 0 and upstream.restarts == 0  # a session's child is not restarted
        with pytest.raises(MCPError, match="Session not found"):  # HTTP 404: the client must initialise again
            await client.list_tools()
        await wait_until(lambda: not alive(grandchild))
        async with Client(sidecar.url, mode="legacy", cache=None) as again:  # and a new session serves as before
            assert (await again.call_tool("add", {"a": 1, "b": 1})).content[0].text == "2"


async def test_a_grandchild_that_left_the_process_group_cannot_hold_up_restart_or_shutdown(tmp_path: Path) -> None:
    try:
        async with run_sidecar(faulty_config(tmp_path)) as sidecar, aiohttp.ClientSession() as http:
            upstream = upstream_of(sidecar)
            await upstream.shared.acquire(10)
            status, _, took = await call_tool(http, sidecar.url, "exit_now", {"escape": True})
            assert status == 502 and took < 3
            await wait_until(lambda: upstream.restarts == 1 and upstream.shared.state == "running")
            status, answer, _ = await call_tool(http, sidecar.url, "add", {"a": 1, "b": 2})
            assert status == 200 and answer["result"]["content"][0]["text"] == "3"
            leaving = time.monotonic()
        assert time.monotonic() - leaving < 5
        assert all(alive(pid) for pid in grandchildren(tmp_path))  # out of reach of the group signals, as it chose
    finally:
        for pid in grandchildren(tmp_path):  # the one process this test had started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class BigAnswer:
    reply: tuple[int, dict[str, Any], float]  # the big call's status, body and seconds
    slow: asyncio.Task[tuple[int, dict[str, Any], float]]  # the call that was in flight beside it
    upstream: Any
    call: Callable[[str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any], float]]]


@contextlib.asynccontextmanager
async def big_answer_beside_a_slow_call(tmp_path: Path, layout: str, slow_seconds: float) -> AsyncIterator[BigAnswer]:
    """A child limited to 64 KiB lines, a slow call in flight, then a 200 kB answer to a second call."""
    async with run_sidecar(faulty_config(tmp_path, upstream__max_event_bytes=64 * 1024)) as sidecar, \
            aiohttp.ClientSession() as http:
        upstream = upstream_of(sidecar)
        await upstream.shared.acquire(10)
        slow = asyncio.create_task(call_tool(http, sidecar.url, "slow", {"seconds": slow_seconds}))
        await wait_until(lambda: upstream.shared.mux.in_flight == 1)
        big = await call_tool(http, sidecar.url, "big", {"layout": layout, "bytes": 200_000})
        yield BigAnswer(big, slow, upstream, lambda name, arguments: call_tool(http, sidecar.url, name, arguments))


@pytest.mark.parametrize("layout", ["id-first", "id-last"])
async def test_an_answer_over_max_event_bytes_fails_its_caller_at_once_and_no_other(tmp_path: Path,
                                                                                  layout: str) -> None:
    async with big_answer_beside_a_slow_call(tmp_path, layout, 1.5) as scene:
        status, answer, took = scene.reply
        assert took < 3 and status == 502
        assert "larger than upstream.max_event_bytes" in answer["error"]["message"]
        status, answer, _ = await scene.slow
        assert status == 200 and answer["result"]["content"][0]["text"] == "slow done"
        assert scene.upstream.restarts == 0


async def test_an_over_long_answer_whose_id_cannot_be_read_fails_every_call_in_flight(tmp_path: Path) -> None:
    async with big_answer_beside_a_slow_call(tmp_path, "id-inside", 20) as scene:
        status, answer, took = scene.reply
        assert took < 3 and status == 502 and "every call in flight" in answer["error"]["message"]
        status, answer, took = await scene.slow
        assert took < 5 and status == 502 and "every call in flight" in answer["error"]["message"]
        status, answer, _ = await scene.call("add", {"a": 1, "b": 2})  # the child serves on
        assert status == 200 and scene.upstream.restarts == 0


async def test_a_start_that_times_out_says_what_it_waited_for_and_what_the_child_said(tmp_path: Path) -> None:
    config = faulty_config(tmp_path, env={"HANG_ON": "initialize", "STDERR_NOTE": "loading weights from /models"},
                           upstream__startup_timeout_seconds=0.5, upstream__timeout_seconds=1)
    expected = ("timed out after 0.5s waiting for the initialize response; "
                "its last stderr: loading weights from /models")
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        await wait_until(lambda: upstream_of(sidecar).restarts >= 1)
        status, detail = await readiness(http, sidecar)
        assert status == 503 and expected in detail
        status, answer, _ = await call_tool(http, sidecar.url, "add", {"a": 1, "b": 2})
        assert status == 502 and expected in answer["error"]["message"]


async def test_a_child_that_dies_at_start_is_reported_with_its_exit_and_last_words(tmp_path: Path) -> None:
    dying = [sys.executable, "-c", "import sys; print('fatal: API_KEY is not set', file=sys.stderr); sys.exit(3)"]
    config = faulty_config(tmp_path, upstream__command=dying)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        await wait_until(lambda: upstream_of(sidecar).restarts >= 1)
        status, detail = await readiness(http, sidecar)
    assert status == 503
    assert "(exit code 3); its last stderr: fatal: API_KEY is not set" in detail


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_the_child_process_notices_the_exit_on_either_event_loop(tmp_path: Path, run: Any) -> None:
    """Production runs on uvloop, whose subprocess transport is its own."""
    spec = ProcessSpec(SERVER, env={"PID_FILE": str(tmp_path / "pids")}, shutdown_grace=0.3)

    async def exit_and_close() -> tuple[str, float]:
        child, received = ChildProcess(spec, "t"), Received()
        await child.open(received)
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "exit_now"}}
        await child.send(orjson.dumps(call))
        async with asyncio.timeout(5):
            ended = await child.wait_closed()
            started = time.monotonic()
            await child.close()
        closing = time.monotonic() - started
        [grandchild] = grandchildren(tmp_path)
        await wait_until(lambda: not alive(grandchild))  # killed with its group, then reaped by init
        return ended, closing

    ended, closing = run(exit_and_close())
    assert ended == "exit code 0, its stdout still held open by a process it started"
    assert closing < 2
