"""The shared upstream channel stateless callers use: opened, handshaken, watched, restarted with backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from proxy import mcp
from proxy.config import ChannelSettings
from proxy.errors import UpstreamError, UpstreamTimeoutError
from proxy.net.message_box import MailboxClosedError
from proxy.upstream.channel.mux import Channel, Multiplexer

log = structlog.get_logger("proxy.upstream.supervisor")

ChannelFactory = Callable[[str], Channel]
EXITED = "The upstream MCP server exited while handling this request"
LEGACY_HANDSHAKE_VERSION = "2025-11-25"
CLIENT_INFO = {"name": "mcp-sidecar", "version": "0.1.0"}
MODERN_META = {"io.modelcontextprotocol/protocolVersion": mcp.MODERN_VERSION,
               "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": CLIENT_INFO}


class SharedChannel:
    def __init__(self, factory: ChannelFactory, config: ChannelSettings, clock: Callable[[], float] = time.monotonic):
        self.factory = factory
        self.config = config
        self.clock = clock
        self.restarts = 0  # how often the channel was re-opened after it ended
        self.on_restart: Callable[[], None] = lambda: None  # the app points this at its metrics
        self.state = "starting"  # starting | running | restarting | stopped
        self.era: str | None = None  # what the server speaks: "modern", or "legacy" after our own handshake
        self.detail = ""
        self.last_exit = ""  # how the channel last ended, kept across restarts for /readyz
        self.waiting_for = ""  # the step of the start in progress, to say what a start that timed out waited for
        self.mux: Multiplexer | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel: Channel | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise())

    async def close(self) -> None:
        self.state = "stopped"
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def acquire(self, seconds: float) -> Multiplexer:
        """The running channel's multiplexer, waiting (bounded) while it starts or restarts."""
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            raise UpstreamError(f"The upstream MCP server is not available ({self.state}: {self.detail})") from None
        assert self.mux is not None
        return self.mux

    async def _supervise(self) -> None:
        backoff = self.config.restart_backoff_seconds
        while True:
            started = self.clock()
            await self._run_once()
            if self.clock() - started > 10 * self.config.restart_backoff_max_seconds:
                backoff = self.config.restart_backoff_seconds  # it ran well for a while: start over gently
            self.state = "restarting"
            self.restarts += 1
            self.on_restart()
            log.warning("upstream.restarting", delay_seconds=backoff, restarts=self.restarts, reason=self.detail)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.config.restart_backoff_max_seconds)

    async def _run_once(self) -> None:
        channel = self.factory("shared")
        mux = Multiplexer(channel, self.config.queue_limit, sessionful=False)
        ended: asyncio.Task[str] | None = None
        try:
            try:
                async with asyncio.timeout(self.config.startup_timeout_seconds):
                    self.waiting_for = "the process to start"
                    await channel.open(mux)
                    ended = asyncio.create_task(channel.wait_closed())
                    ended.add_done_callback(lambda _: mux.fail_all(UpstreamError(EXITED)))  # callers learn at once
                    self.era = await handshake(mux, self.config.startup_timeout_seconds, self._waiting)
            except (UpstreamError, TimeoutError) as exc:
                self.detail = f"start failed: {self._start_failure(exc, channel, ended)}"
                log.warning("upstream.start_failed", channel=channel.label, error=self.detail)
                return
            self.mux, self.state = mux, "running"
            self.detail = f"running, speaks {self.era}" + (f"; last exit: {self.last_exit}" if self.last_exit else "")
            self._ready.set()
            self.last_exit = with_output(await asyncio.shield(ended), channel)
            self.detail = f"exited ({self.last_exit})"
            log.warning("upstream.exited", channel=channel.label, reason=self.last_exit)
        finally:
            self._ready.clear()
            self.mux = None
            mux.fail_all(UpstreamError(EXITED))
            await asyncio.shield(channel.close())
            if ended is not None:
                await asyncio.gather(ended, return_exceptions=True)

    def _waiting(self, step: str) -> None:
        self.waiting_for = step

    def _start_failure(self, exc: Exception, channel: Channel, ended: asyncio.Task[str] | None) -> str:
        if isinstance(exc, UpstreamError):
            text = exc.message
        else:
            text = f"timed out after {self.config.startup_timeout_seconds:g}s waiting for {self.waiting_for}"
        if ended is not None and ended.done() and not ended.cancelled() and ended.exception() is None:
            text += f" ({ended.result()})"
        return with_output(text, channel)


def with_output(text: str, channel: Channel) -> str:
    """A failure's text with what the channel said last (a child's stderr), which usually says why."""
    said = channel.diagnostics()
    return f"{text}; {said}" if said else text


async def handshake(mux: Multiplexer, seconds: float, waiting: Callable[[str], None] = lambda step: None) -> str:
    """Speak 2026-07-28 when the server answers server/discover; otherwise do the 2025 initialize ourselves."""
    waiting("the server/discover response")
    discovered = await request_once(mux, "server/discover", {"_meta": MODERN_META}, seconds)
    result = discovered.get("result")
    if isinstance(result, dict) and mcp.MODERN_VERSION in (result.get("supportedVersions") or ()):
        return "modern"
    params = {"protocolVersion": LEGACY_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
    waiting("the initialize response")
    initialized = await request_once(mux, "initialize", params, seconds)
    if "result" not in initialized:
        raise UpstreamError(f"The upstream MCP server refused initialize: {initialized.get('error')}")
    await mux.send_raw(orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    return "legacy"


async def request_once(mux: Multiplexer, method: str, params: dict[str, Any], seconds: float) -> dict[str, Any]:
    """One request of the sidecar's own; notifications in between are ignored."""
    call = await mux.call({"jsonrpc": "2.0", "id": f"sidecar-{method}", "method": method, "params": params})
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await call.inbox.get()
                if "method" not in message:
                    return message
    except TimeoutError:
        mux.cancel(call, "timeout")
        raise UpstreamTimeoutError(f"The upstream MCP server did not answer {method} within {seconds:g}s") from None
    except MailboxClosedError:
        raise UpstreamError(f"The upstream MCP server went away during {method}") from None
