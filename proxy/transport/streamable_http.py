"""The Streamable HTTP endpoint (POST/GET/DELETE /mcp) for both protocol eras."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
import structlog

from proxy import mcp
from proxy.config import ServerConfig
from proxy.context import CallContext
from proxy.errors import ProxyError, UpstreamError, error_reply, internal_error_reply
from proxy.net.listener import HttpRequest, HttpResponse, ResponseStream
from proxy.net.sse_codec import encode_event
from proxy.pipeline import Handler
from proxy.reply import Reply
from proxy.transport import envelope
from proxy.transport.heartbeat import StreamHeartbeat
from proxy.transport.reply_writer import close_events, final_body, final_response, hooked_event

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
    """Write a Reply to the client; runs result hooks on the final response and the reply's done callbacks (after a
    whole answer is written: audit and the ends of spans are not the client's to wait for). A streamed reply gets
    keepalive comments from `heartbeat` while it is silent."""
    try:
        if reply.events is None:
            body = reply.body  # the upstream's bytes as they came, unless a hook may change the answer
            if body is None or reply.result_hooks:
                body = await final_body(ctx, reply)
            response = HttpResponse(reply.status, body, reply.headers)
        else:
            response = await _write_stream(request, ctx, reply, heartbeat)
    except BaseException:
        await reply.finish()
        raise
    if isinstance(response, HttpResponse):
        response.after_sent = reply.finish
    else:
        await reply.finish()
    return response


async def _write_stream(request: HttpRequest, ctx: CallContext | None, reply: Reply,
                        heartbeat: StreamHeartbeat | None) -> HttpResponse | ResponseStream:
    headers = {name: value for name, value in reply.headers.items() if name.lower() not in _STREAM_HEADER_NAMES}
    headers.update(STREAM_HEADERS)
    async with contextlib.aclosing(_relayed(ctx, reply)) as chunks:
        if reply.stream_buffered:  # the whole stream is already here: one sized write instead of chunks
            return HttpResponse(reply.status, b"".join([chunk async for chunk in chunks]), headers)
        # A request's answer usually follows its head at once: both go in one write (a GET stream's head goes now).
        response = await request.stream(reply.status, headers, defer_head=ctx is not None and ctx.is_request)
        with heartbeat.watching(response) if heartbeat is not None else contextlib.nullcontext():
            async for chunk in chunks:
                if reply.final_relayed:  # the request's answer: the stream ends with it, in the same write
                    await response.write_last(chunk)
                    break
                await response.write(chunk)
    if reply.final_relayed:  # the upstream's stream still has its end to come: stop reading it here
        await close_events(reply)
    return response


async def _relayed(ctx: CallContext | None, reply: Reply) -> AsyncIterator[bytes]:
    """The reply's events as they are to be relayed: observers told, result hooks run on the final response, and an
    error event in its place if the upstream stream broke before it."""
    final_seen = False
    assert reply.events is not None
    try:
        async for event in reply.events:
            if reply.event_observers:
                await reply.notify_observers(event)
            if not final_seen and ctx is not None and ctx.is_request:
                final = final_response(event, ctx.request_id)
                if final is not None:
                    final_seen = True
                    event = await hooked_event(reply, event, final)
                    # After its answer a request's stream carries nothing more (the server closes it), so the
                    # client need not wait for the upstream's end of stream.
                    reply.final_relayed = not reply.stream_buffered
            yield event.encode()
    except UpstreamError as error:
        if ctx is not None and ctx.is_request and not final_seen:
            reply.stream_error = error.message
            failed = error_reply(error, ctx)
            yield encode_event(orjson.dumps(failed.message).decode())
