"""The command line: no silent open gate without a key source, a clear error for a port in use, and the --demo
quickstart runs with auth off."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from mcp import Client

from tests.kit import child_env, free_port, serve_process


def serve_args(*extra: str, port: int | None = None) -> list[str]:
    return [sys.executable, "-m", "proxy", "serve", "--listen", f"127.0.0.1:{port or free_port()}",
            "--admin-listen", f"127.0.0.1:{free_port()}", *extra]


def test_required_auth_without_key_source_refuses_to_start() -> None:
    done = subprocess.run(serve_args("--upstream", "http://127.0.0.1:9/mcp"), env=child_env(),
                          capture_output=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "mcp-sidecar: invalid configuration:",
        "  auth: mode 'required' needs exactly one key source: auth.jwks_url, auth.public_key_files (PEM) or "
        "auth.hmac_secret_file; or set auth.mode: off",
    ]


def test_a_port_in_use_is_reported_in_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(serve_args("--demo", port=port), env=child_env(), capture_output=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines()[-1].startswith(f"mcp-sidecar: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in done.stderr.decode()


@pytest.fixture
def demo_sidecar() -> Iterator[str]:
    """`mcp-sidecar serve --demo` as a user would run it (`make run`), with nothing but its flags: the bundled demo
    policy in force, not the test kit's policy-off default."""
    port = free_port()
    env = {name: value for name, value in child_env().items() if not name.startswith("MCP_SIDECAR__")}
    with serve_process(serve_args("--demo", port=port), port, env=env) as url:
        yield url


async def test_demo_quickstart_serves_without_a_token(demo_sidecar: str) -> None:
    async with Client(demo_sidecar, mode="2026-07-28", cache=None) as client:
        added = await client.call_tool("add", {"a": 1, "b": 2})
    assert added.structured_content == {"result": 3}
