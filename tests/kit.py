"""Test kit: start real upstreams and a real sidecar on loopback, build contexts, make configs.

Every wait here is bounded; nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from proxy import mcp
from proxy.config import Config, load_config
from proxy.context import CallContext
from proxy.runtime.app import McpApp
from proxy.runtime.server import running
from tests.proc_sockets import wait_for_workers

ROOT = Path(__file__).resolve().parent.parent
MODERN_META = {"io.modelcontextprotocol/protocolVersion": mcp.MODERN_VERSION,
               "io.modelcontextprotocol/clientCapabilities": {}}
ACCEPT_BOTH = "application/json, text/event-stream"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def child_env(**extra: str) -> dict[str, str]:
    # Sidecars started by tests run without policy unless a test turns it on (pass MCP_SIDECAR__POLICY__ENGINE).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "MCP_SIDECAR__POLICY__ENGINE": "off"}
    env.update(extra)
    return env


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextlib.contextmanager
def start_upstream(mode: str = "stateful") -> Iterator[str]:
    """The bundled demo MCP server over Streamable HTTP: `stateful` (SSE, sessions) or `stateless` (JSON)."""
    port = free_port()
    args = [sys.executable, "-m", "proxy.runtime.demo", "http", "--port", str(port)]
    if mode == "stateless":
        args.append("--stateless-json")
    with serve_process(args, port) as url:
        yield url


@contextlib.contextmanager
def serve_process(args: list[str], port: int, path: str = "/mcp", env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a server process (output discarded), wait until it listens on `port`, yield its URL, stop it."""
    process = subprocess.Popen(args, env=env or child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        stop_process(process)


@dataclass
class Workers:
    process: subprocess.Popen[bytes]
    url: str  # the MCP endpoint
    admin: str  # the admin listener's base URL


@contextlib.contextmanager
def serve_workers(upstream: str, env: dict[str, str], workers: int = 2) -> Iterator[Workers]:
    """`mcp-sidecar serve --workers N` in front of `upstream`, every worker listening on the MCP and the admin port
    once entered; stopped on exit. Its stderr is a pipe the test may read."""
    port, admin = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--workers", str(workers), "--upstream", upstream,
         "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_workers(process, workers, (port, admin))  # each worker, on both ports: either may get a connection
        yield Workers(process, f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{admin}")
    finally:
        stop_process(process)


def make_config(upstream_url: str = "http://127.0.0.1:9/mcp", **dotted: Any) -> Config:
    """A validated Config for tests: audit and auth off unless asked for, free ports, and any dotted overrides."""
    overrides: dict[str, Any] = {
        "upstream.url": upstream_url,
        "server.listen": f"127.0.0.1:{free_port()}",
        "server.admin_listen": f"127.0.0.1:{free_port()}",
        "audit.enabled": False,
        "auth.mode": "off",  # auth tests turn it on with auth__mode and a key source
        "policy.engine": "off",  # tests opt in to policy with policy__engine="rego" and a directory
    }
    overrides.update({key.replace("__", "."): value for key, value in dotted.items()})
    return load_config(None, env={}, overrides=overrides)


@dataclass
class RunningSidecar:
    config: Config
    app: McpApp
    admin: web.Application

    @property
    def url(self) -> str:
        return f"{self.config.server.scheme}://{self.config.server.listen}{self.config.server.mcp_path}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.config.server.admin_listen}"


@contextlib.asynccontextmanager
async def run_sidecar(config: Config) -> AsyncIterator[RunningSidecar]:
    """The sidecar in this process on real sockets, drained and torn down on exit (2 s grace)."""
    async with running(config, grace_seconds=2) as (app, admin):
        yield RunningSidecar(config, app, admin)


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH,
               "MCP-Protocol-Version": mcp.MODERN_VERSION, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


def modern_request(method: str, params: Mapping[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method,
            "params": {**(params or {}), "_meta": dict(MODERN_META)}}


def make_ctx(method: str = "tools/call", *, target: str | None = "add", arguments: dict[str, Any] | None = None,
             request_id: Any = 1, version: str = mcp.MODERN_VERSION, **changes: Any) -> CallContext:
    """A CallContext as the transport would build it, for unit tests of stages."""
    params: dict[str, Any] = {}
    if method in mcp.TARGET_PARAM and target is not None:
        params[mcp.TARGET_PARAM[method]] = target
    if arguments is not None:
        params["arguments"] = arguments
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    ctx = CallContext(
        kind=mcp.Kind.REQUEST if request_id is not None else mcp.Kind.NOTIFICATION,
        message=message, body=None, method=method, request_id=request_id, protocol_version=version,
        era=mcp.era_of(version), target=target if method in mcp.TARGET_PARAM else None,
        arguments=arguments, session_id=None, headers={}, client_address="127.0.0.1",
    )
    return ctx.evolve(**changes) if changes else ctx


async def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll a condition (a function, or a coroutine function) with a hard deadline, for effects that happen on
    another task or process."""
    async with asyncio.timeout(timeout):
        while not await _holds(predicate()):
            await asyncio.sleep(interval)


async def _holds(outcome: Any) -> bool:
    return bool(await outcome if inspect.isawaitable(outcome) else outcome)


@dataclass
class RawUpstream:
    """A hand-written aiohttp upstream for edge cases; records what it received."""

    url: str
    seen: list[tuple[dict[str, str], bytes]]


@contextlib.asynccontextmanager
async def start_raw_upstream(handler: Any, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawUpstream]:
    """Serve `handler(request, body) -> StreamResponse` at /mcp on a free loopback port (HTTPS with `tls`)."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def endpoint(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(({k.lower(): v for k, v in request.headers.items()}, body))
        return await handler(request, body)

    app = web.Application()
    app.router.add_route("*", "/mcp", endpoint)
    async with serve_app(app, tls) as base:
        yield RawUpstream(base + "/mcp", seen)


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Serve an aiohttp app on a free loopback port (HTTPS with `tls`); yields its base URL, cleans up on exit."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def bound(approval: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """An approval decision's body: the hash of the arguments the approver was shown, and any note."""
    return {"arguments_hash": approval["arguments_hash"], **extra}
