"""The Streamable HTTP endpoint (POST/GET/DELETE /mcp) for both protocol eras."""

from __future__ import annotations

import contextlib

import structlog

from proxy import mcp
from proxy.config import ServerConfig
from proxy.context import CallContext
from proxy.errors import ProxyError, error_reply, internal_error_reply
from proxy.net.listener import HttpRequest, HttpResponse, ResponseStream
from proxy.pipeline import Handler
from proxy.reply import Reply
from proxy.transport import envelope
from proxy.transport.heartbeat import StreamHeartbeat
from proxy.transport.relay import Relay

log = structlog.get_logger("proxy.transport")

STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache, no-transform"}
_STREAM_HEADER_NAMES = frozenset(name.lower() for name in STREAM_HEADERS)


class StreamableHttpHandler:
    """Turns requests into contexts, runs the chain, and writes the reply (JSON or SSE) back."""

    def __init__(self, server: ServerConfig, chain: Handler, heartbeat: StreamHeartbeat | None = None) -> None:
        self.server = server
        self.chain = chain
        self.heartbeat = heartbeat if heartbeat is not None else StreamHeartbeat(server.stream_keepalive_seconds)

    async def post(self, request: HttpRequest) -> HttpResponse | ResponseStream:
        ctx = None
        try:
            envelope.check_origin(request, self.server)
            body = envelope.read_body(request, self.server)
            ctx = envelope.message_context(request, body)
            envelope.check_mirrored_headers(ctx)
        except ProxyError as error:
            log.info("request.rejected", reason=error.message, status=error.http_status)
            return await write_reply(request, ctx, error_reply(error, ctx))
        return await self._run(request, ctx)

    async def get(self, request: HttpRequest) -> HttpResponse | ResponseStream:
        return await self._bodiless(request, mcp.Kind.STREAM)

    async def delete(self, request: HttpRequest) -> HttpResponse | ResponseStream:
        return await self._bodiless(request, mcp.Kind.SESSION_END)

    async def _bodiless(self, request: HttpRequest, kind: mcp.Kind) -> HttpResponse | ResponseStream:
        try:
            envelope.check_origin(request, self.server)
        except ProxyError as error:
            return await write_reply(request, None, error_reply(error, None))
        return await self._run(request, envelope.stream_context(request, kind))

    async def _run(self, request: HttpRequest, ctx: CallContext) -> HttpResponse | ResponseStream:
        try:
            reply = await self.chain(ctx)
        except Exception:
            log.exception("request.failed", method=ctx.method)
            reply = internal_error_reply(ctx)
        return await write_reply(request, ctx, reply, self.heartbeat)


async def write_reply(request: HttpRequest, ctx: CallContext | None, reply: Reply,
                      heartbeat: StreamHeartbeat | None = None) -> HttpResponse | ResponseStream:
    """Write a Reply to the client through the Relay. A whole answer is finished after it was sent (audit and the
    ends of spans are not the client's to wait for); a streamed one gets keepalive comments from `heartbeat` while
    it is silent, and is finished when its stream ends."""
    if reply.events is None and reply.body is not None and not reply.result_hooks:
        # The upstream's bytes as they came: nothing for the relay to run or record (its finish is the reply's).
        response = HttpResponse(reply.status, reply.body, reply.headers)
        response.after_sent = reply.finish
        return response
    relay = Relay(ctx, reply)
    try:
        if reply.events is None:
            response = HttpResponse(reply.status, await relay.body(), reply.headers)
        else:
            response = await _write_stream(request, ctx, relay, heartbeat)
    except BaseException:
        await relay.finish()
        raise
    if isinstance(response, HttpResponse):
        response.after_sent = relay.finish
    else:
        await relay.finish()
    return response


async def _write_stream(request: HttpRequest, ctx: CallContext | None, relay: Relay,
                        heartbeat: StreamHeartbeat | None) -> HttpResponse | ResponseStream:
    reply = relay.reply
    headers = {name: value for name, value in reply.headers.items() if name.lower() not in _STREAM_HEADER_NAMES}
    headers.update(STREAM_HEADERS)
    async with contextlib.aclosing(relay.events()) as events:
        if reply.stream_buffered:  # the whole stream is already here: one sized write instead of chunks
            return HttpResponse(reply.status, b"".join([event.encode() async for event, _ in events]), headers)
        # A request's answer usually follows its head at once: both go in one write (a GET stream's head goes now).
        response = await request.stream(reply.status, headers, defer_head=ctx is not None and ctx.is_request)
        with heartbeat.watching(response) if heartbeat is not None else contextlib.nullcontext():
            async for event, last in events:
                if last:  # the request's answer: the stream ends with it, in the same write
                    await response.write_last(event.encode())
                    break
                await response.write(event.encode())
    return response
