"""The `mcp-sidecar` process: config errors exit 2 before listening; SIGTERM drains calls in flight."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson

from tests.kit import child_env, free_port, modern_headers, modern_request, stop_process, wait_for_port


def sidecar_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "proxy", "serve", *args]


def test_invalid_config_exits_2_with_dotted_paths(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("server:\n  listen: nowhere\n  bogus: 1\nupstream:\n  url: ftp://x\n")
    done = subprocess.run(sidecar_command("--config", str(config)), env=child_env(), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert "server.listen: expected HOST:PORT, got 'nowhere'" in done.stderr
    assert "server.bogus: Extra inputs are not permitted" in done.stderr
    assert "upstream.url must be an http(s) URL" in done.stderr


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("upstream:\n  url: http://127.0.0.1:9/mcp\n")
    env = child_env(MCP_SIDECAR__SERVER__MAX_BODY_BYTES="-5")
    done = subprocess.run(sidecar_command("--config", str(config)), env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert "server.max_body_bytes: Input should be greater than 0" in done.stderr


async def test_sigterm_lets_calls_in_flight_finish_then_exits_0(stateful_upstream: str) -> None:
    port, admin = free_port(), free_port()
    process = subprocess.Popen(
        sidecar_command("--upstream", stateful_upstream, "--listen", f"127.0.0.1:{port}",
                        "--admin-listen", f"127.0.0.1:{admin}"),
        env=child_env(MCP_SIDECAR__AUTH__MODE="off"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    call = modern_request("tools/call", {"name": "slow_count", "arguments": {"steps": 5, "delay_ms": 150}})
    call["params"]["_meta"]["progressToken"] = "p1"
    try:
        await asyncio.to_thread(wait_for_port, port, 20, process)
        async with aiohttp.ClientSession() as http, asyncio.timeout(10):
            async with http.post(f"http://127.0.0.1:{port}/mcp", data=orjson.dumps(call),
                                 headers=modern_headers("tools/call", "slow_count")) as response:
                first = await response.content.readany()  # the first event, 4 steps before the result
                process.send_signal(signal.SIGTERM)
                rest = await response.read()
        assert b"notifications/progress" in first and b"counted to 5" not in first
        assert b"counted to 5" in rest
        exit_code = await asyncio.to_thread(process.wait, 15)
        assert exit_code == 0
        assert b"sidecar.stopped" in process.stderr.read()
    finally:
        stop_process(process)
