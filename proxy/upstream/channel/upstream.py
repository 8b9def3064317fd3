"""An Upstream over message channels (stdio processes, legacy SSE connections), with the sidecar's HTTP semantics.

2026-07-28 (stateless) callers share one supervised channel; each 2025-era session (initialize ... DELETE) owns a
channel of its own, so server-to-client requests and notifications reach exactly the client they belong to.
A request's notifications travel as SSE events on its POST response; a reply with no notifications is plain JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import structlog

from proxy import jsonrpc, mcp
from proxy.config import ChannelSettings
from proxy.context import CallContext
from proxy.errors import MethodNotAllowedError, ProxyError, StreamConflictError, UpstreamError, UpstreamTimeoutError
from proxy.net.message_box import Mailbox, MailboxClosedError
from proxy.net.sse_codec import SseEvent
from proxy.reply import EVENT_STREAM, Reply
from proxy.upstream.channel.mux import Call, CallOverdueError, Multiplexer
from proxy.upstream.channel.sessions import Session, SessionTable
from proxy.upstream.channel.supervisor import ChannelFactory, SharedChannel

log = structlog.get_logger("proxy.upstream.relay")

# HTTP status of a 2026-07-28 JSON-RPC error, as Streamable HTTP servers answer them (clients read it).
MODERN_ERROR_STATUS = {jsonrpc.METHOD_NOT_FOUND: 404, jsonrpc.INVALID_PARAMS: 400, jsonrpc.INVALID_REQUEST: 400,
                       jsonrpc.PARSE_ERROR: 400, -32020: 400, -32021: 400, -32022: 400}
SESSION_HEADER = "Mcp-Session-Id"
# Results that 2026-07-28 clients expect to carry cache hints (a handshake-era server sends none).
CACHE_HINTED_RESULTS = frozenset({*mcp.LIST_METHODS, "resources/read"})


class ChannelUpstream:
    def __init__(self, config: ChannelSettings, factory: ChannelFactory, description: str) -> None:
        self.config = config
        self.name = config.name
        self.description = description
        self.shared = SharedChannel(factory, config)
        self.sessions = SessionTable(factory, config)

    @property
    def restarts(self) -> int:
        """How often the shared upstream channel was restarted (a counter for metrics)."""
        return self.shared.restarts

    def on_restart(self, callback: Callable[[], None]) -> None:
        self.shared.on_restart = callback

    async def start(self) -> None:
        self.shared.start()
        self.sessions.start()

    async def close(self) -> None:
        await self.sessions.close()
        await self.shared.close()

    async def readiness(self) -> tuple[bool, str]:
        detail = (f"{self.description}: {self.shared.detail or self.shared.state}; "
                  f"{len(self.sessions)} legacy sessions; {self.restarts} restarts")
        return self.shared.state == "running", detail

    async def send(self, ctx: CallContext) -> Reply:
        if ctx.kind is mcp.Kind.STREAM:
            return self._push_stream(ctx)
        if ctx.kind is mcp.Kind.SESSION_END:
            await self.sessions.end(self._session_of(ctx).id, "client ended it")
            return Reply.empty(200)
        if ctx.era is mcp.Era.MODERN:
            mux, session = await self.shared.acquire(self.config.timeout_seconds), None
        elif ctx.method == "initialize" and ctx.kind is mcp.Kind.REQUEST and not ctx.session_id:
            session = await self.sessions.open()
            mux = session.mux
        else:
            session = self._session_of(ctx)
            mux = session.mux
        if ctx.kind is mcp.Kind.REQUEST:
            return await self._request(ctx, mux, session)
        if ctx.kind is mcp.Kind.RESPONSE:
            await mux.send_raw(ctx.outbound_body())  # the server's own ids: nothing to map
        else:
            await mux.notify(ctx.message)
        return Reply.empty(202)

    def _session_of(self, ctx: CallContext) -> Session:
        if ctx.era is mcp.Era.MODERN:
            raise MethodNotAllowedError("2026-07-28 has no sessions and no GET stream", headers={"Allow": "POST"})
        if not ctx.session_id:
            raise ProxyError("Bad Request: Mcp-Session-Id header is required")
        return self.sessions.get(ctx.session_id)

    async def _request(self, ctx: CallContext, mux: Multiplexer, session: Session | None) -> Reply:
        headers = {SESSION_HEADER: session.id} if session is not None else {}
        timeout = self.config.timeout_for(ctx.target if ctx.method == "tools/call" else None)
        # Closing a 2026-07-28 request's stream is cancellation; a 2025-era client cancels explicitly instead.
        disconnect_cancels = ctx.era is mcp.Era.MODERN
        try:
            modernise = session is None and self.shared.era == "legacy"  # our own handshake, a modern caller
            call = await mux.call(ctx.message, adapt=_as_modern(ctx.method) if modernise else None)
            try:
                first = await _next(mux, call, timeout)
            except asyncio.CancelledError:
                mux.cancel(call, "client left", tell_server=disconnect_cancels)
                raise
        except UpstreamError:
            if session is not None and ctx.method == "initialize":
                await self.sessions.end(session.id, "initialize failed")
            raise
        if "method" in first:  # notifications (or server requests) first: answer as an SSE stream
            return Reply(status=200, headers={**headers, "Content-Type": EVENT_STREAM},
                         events=_events(mux, call, first, timeout),
                         release=lambda: mux.cancel(call, "client left", tell_server=disconnect_cancels))
        if session is not None and ctx.method == "initialize" and "error" in first:
            await self.sessions.end(session.id, "initialize refused")
            headers = {}
        return Reply.json(first, status=_status(ctx, first), headers=headers)

    def _push_stream(self, ctx: CallContext) -> Reply:
        """The legacy GET stream: server messages that belong to no request in progress."""
        session = self._session_of(ctx)
        mux = session.mux
        if mux.push is not None and not mux.push.closed:
            raise StreamConflictError("Conflict: only one GET stream is allowed per session")
        box: Mailbox[dict[str, Any]] = Mailbox(self.config.queue_limit)
        mux.push = box

        def detach() -> None:
            box.close()
            if mux.push is box:
                mux.push = None

        return Reply(status=200, headers={SESSION_HEADER: session.id, "Content-Type": EVENT_STREAM},
                     events=_push_events(box), release=detach)


async def _next(mux: Multiplexer, call: Call, seconds: float) -> dict[str, Any]:
    try:
        return await mux.next_message(call, seconds)
    except CallOverdueError:
        mux.cancel(call, "timeout")
        raise UpstreamTimeoutError(f"Upstream did not answer within {seconds:g}s") from None
    except MailboxClosedError:
        raise UpstreamError("The client fell too far behind the upstream's messages") from None
    except UpstreamError as exc:
        raise UpstreamError(exc.message) from None


async def _events(mux: Multiplexer, call: Call, first: dict[str, Any], seconds: float) -> AsyncIterator[SseEvent]:
    message = first
    while True:
        yield _event(message)
        if "method" not in message:
            return
        message = await _next(mux, call, seconds)


async def _push_events(box: Mailbox[dict[str, Any]]) -> AsyncIterator[SseEvent]:
    while True:
        try:
            message = await box.get()
        except (MailboxClosedError, UpstreamError) as exc:
            if box.overflowed:
                log.warning("upstream.get_stream_closed", reason=str(exc))
            return
        yield _event(message)


def _event(message: dict[str, Any]) -> SseEvent:
    return SseEvent(data=orjson.dumps(message).decode())


def _as_modern(method: str | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Complete a handshake-era result for a 2026-07-28 caller: resultType, and the most cautious cache hints."""

    def adapt(message: dict[str, Any]) -> dict[str, Any]:
        result = message.get("result")
        if isinstance(result, dict):
            result.setdefault("resultType", "complete")
            if method in CACHE_HINTED_RESULTS:
                result.setdefault("ttlMs", 0)
                result.setdefault("cacheScope", "private")
        return message

    return adapt


def _status(ctx: CallContext, message: dict[str, Any]) -> int:
    error = message.get("error")
    if ctx.era is mcp.Era.MODERN and isinstance(error, dict):
        return MODERN_ERROR_STATUS.get(error.get("code"), 200)  # type: ignore[arg-type]
    return 200
