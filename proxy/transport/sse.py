"""Legacy HTTP+SSE (2024-11-05) for clients: GET /sse opens the stream, POST /messages/?session_id=... carries
messages through the same stage chain as /mcp, and every answer travels back on the stream.

To the chain and the upstream such a client looks like a 2025-era Streamable HTTP session: its initialize opens
an upstream session, the upstream's session id and protocol version are added to each later message, and the
upstream's GET stream is relayed too. Each stream has a bounded outbox; a client that falls behind is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from proxy import jsonrpc, mcp
from proxy.auth.sessions import Owner, owner_of
from proxy.config import ServerConfig
from proxy.context import CallContext, CallRecord, Principal
from proxy.errors import ProxyError, UpstreamError, error_reply
from proxy.net.listener import HttpRequest, HttpResponse, ResponseStream
from proxy.net.message_box import Mailbox, MailboxClosedError
from proxy.net.sse_codec import encode_event
from proxy.pipeline import Handler
from proxy.reply import EVENT_STREAM, Reply
from proxy.transport import envelope
from proxy.transport.heartbeat import StreamHeartbeat
from proxy.transport.relay import Relay
from proxy.transport.streamable_http import STREAM_HEADERS

log = structlog.get_logger("proxy.transport.sse")

SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"
UPSTREAM_ACCEPT = "application/json, text/event-stream"


@dataclass(eq=False)
class LegacyClient:
    id: str
    outbox: Mailbox[str]
    client_address: str | None
    upstream_session: str | None = None
    protocol_version: str = mcp.LEGACY_DEFAULT_VERSION
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    stream: ResponseStream | None = None  # the client's open SSE stream
    latest: CallContext | None = None  # the client's latest message: who it is, for the sidecar's own requests
    owner: Owner | None = None  # who opened the stream (auth on): only they may post to it

    def send(self, data: str) -> None:
        if not self.outbox.put(data) and self.outbox.overflowed:
            log.warning("sse.client_too_slow", session=self.id[:8], limit=self.outbox.limit)
            if self.stream is not None:
                self.stream.abort()  # the stream's writer may be stuck in a write to this very client

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def bodiless_context(self, kind: mcp.Kind, http_method: str, headers: dict[str, str]) -> CallContext:
        """A GET/DELETE on the client's behalf, carrying what its latest message carried (the caller's identity)."""
        assert self.latest is not None
        return self.latest.evolve(
            kind=kind, message={}, body=None, method=None, request_id=None, target=None, arguments=None,
            headers=headers, session_id=self.upstream_session, protocol_version=self.protocol_version,
            http_method=http_method, started=time.monotonic(), started_wall=time.time(), record=CallRecord(),
            upstream_headers={}, obligations={},
        )

    def upstream_headers(self) -> dict[str, str]:
        headers = {"accept": UPSTREAM_ACCEPT, "content-type": "application/json",
                   mcp.HEADER_PROTOCOL_VERSION: self.protocol_version}
        if self.upstream_session:
            headers[mcp.HEADER_SESSION_ID] = self.upstream_session
        return headers


Authenticate = Callable[[CallContext], Awaitable[Principal]]  # the shared Authenticator's principal_of
AuditRefusal = Callable[[CallContext, ProxyError], None]  # the shared AuditTrail's refused


class LegacySseHandler:
    def __init__(self, server: ServerConfig, chain: Handler, queue_limit: int, max_streams: int,
                 authenticate: Authenticate | None = None, audit_refusal: AuditRefusal | None = None,
                 heartbeat: StreamHeartbeat | None = None) -> None:
        self.server = server
        self.heartbeat = heartbeat if heartbeat is not None else StreamHeartbeat(server.stream_keepalive_seconds)
        self.chain = chain
        self.authenticate = authenticate
        self.audit_refusal = audit_refusal
        self.queue_limit = queue_limit
        self.max_streams = max_streams
        self._clients: dict[str, LegacyClient] = {}
        self._cleanups: set[asyncio.Task[None]] = set()

    async def stream(self, request: HttpRequest) -> HttpResponse | ResponseStream:
        try:
            envelope.check_origin(request, self.server)
        except ProxyError as error:
            return HttpResponse.text(error.http_status, error.message)
        owner = None
        if self.authenticate is not None:  # a stream holds a slot of max_streams: only for a valid token
            ctx = envelope.stream_context(request, mcp.Kind.STREAM)
            try:
                owner = owner_of(await self.authenticate(ctx))
            except ProxyError as error:
                if self.audit_refusal is not None:
                    self.audit_refusal(ctx, error)
                return HttpResponse.text(error.http_status, error.message, error.headers)
        if len(self._clients) >= self.max_streams:
            log.warning("sse.stream_limit", max_streams=self.max_streams)
            return HttpResponse.text(503, f"Too many SSE sessions: at most {self.max_streams} at once")
        response = await request.stream(200, {"Content-Type": EVENT_STREAM, **STREAM_HEADERS})
        client = LegacyClient(secrets.token_hex(16), Mailbox(self.queue_limit), request.remote, stream=response,
                              owner=owner)
        self._clients[client.id] = client
        try:
            await response.write(encode_event(f"{MESSAGES_PATH}?session_id={client.id}", event="endpoint"))
            with self.heartbeat.watching(response):
                while True:
                    await response.write(encode_event(await client.outbox.get()))
        except MailboxClosedError as closed:
            log.info("sse.stream_closed", session=client.id[:8], reason=str(closed))
        except ConnectionError:
            log.info("sse.client_gone", session=client.id[:8])
        finally:
            self._forget(client)
        return response

    async def post(self, request: HttpRequest) -> HttpResponse:
        client = self._clients.get(request.query.get("session_id", ""))
        if client is None:
            return HttpResponse.text(404, "Could not find session")
        try:
            envelope.check_origin(request, self.server)
            ctx = envelope.message_context(request, envelope.read_body(request, self.server))
        except ProxyError as error:
            return HttpResponse.text(error.http_status, error.message)
        if not await self._opened_by(client, ctx):
            return HttpResponse.text(404, "Could not find session")  # as for an unknown session
        ctx = ctx.evolve(headers={**ctx.headers, **client.upstream_headers()}, session_id=client.upstream_session,
                         protocol_version=client.protocol_version, era=mcp.Era.LEGACY)
        client.latest = ctx
        client.spawn(self._deliver(client, ctx))
        return HttpResponse.text(202, "Accepted")

    async def _opened_by(self, client: LegacyClient, ctx: CallContext) -> bool:
        """False when the post carries another caller's valid token; a bad token is left to the chain (401)."""
        if self.authenticate is None or client.owner is None:
            return True
        try:
            return owner_of(await self.authenticate(ctx.evolve(record=CallRecord()))) == client.owner
        except ProxyError:
            return True

    async def shutdown(self) -> None:
        """End every stream so a graceful stop need not wait for long-lived GETs."""
        for client in list(self._clients.values()):
            client.outbox.close(MailboxClosedError("sidecar stopping"))
        await asyncio.gather(*self._cleanups, return_exceptions=True)

    async def _deliver(self, client: LegacyClient, ctx: CallContext) -> None:
        try:
            reply = await self.chain(ctx)
        except Exception:
            log.exception("sse.request_failed", method=ctx.method)
            if ctx.is_request:
                client.send(orjson.dumps(jsonrpc.error_message(ctx.request_id, jsonrpc.INTERNAL_ERROR,
                                                               "Internal proxy error")).decode())
            return
        if ctx.method == "initialize":
            client.upstream_session = _header(reply, mcp.HEADER_SESSION_ID)
        await self._drain(client, ctx, reply)
        if ctx.method == "notifications/initialized" and client.upstream_session:
            await self._relay_push_stream(client)

    async def _drain(self, client: LegacyClient, ctx: CallContext, reply: Reply) -> None:
        """Put a reply's messages (notifications, server requests, the final response) on the client's stream."""
        relay = Relay(ctx, reply)
        try:
            if reply.events is None:
                self._send_final(client, ctx, await relay.body(), reply.status)
                return
            async with contextlib.aclosing(relay.events()) as events:
                async for event, _ in events:
                    if event.is_comment or not event.data:
                        continue
                    client.send(event.data)
            self._learn_version(client, ctx, relay.final_message)
        finally:
            await relay.finish()

    def _send_final(self, client: LegacyClient, ctx: CallContext, body: bytes, status: int) -> bool:
        if not ctx.is_request:
            return False
        try:
            message = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or "jsonrpc" not in message:
            error = UpstreamError(f"Upstream answered HTTP {status} without a JSON-RPC response")
            message = error_reply(error, ctx).message
        self._learn_version(client, ctx, message)
        client.send(orjson.dumps(message).decode())
        return True

    def _learn_version(self, client: LegacyClient, ctx: CallContext, message: dict[str, Any] | None) -> None:
        result = (message or {}).get("result")
        if ctx.method == "initialize" and isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            client.protocol_version = result["protocolVersion"]

    async def _relay_push_stream(self, client: LegacyClient) -> None:
        """The upstream session's GET stream (server messages outside any request), relayed onto the SSE stream."""
        headers = client.upstream_headers()
        headers["accept"] = EVENT_STREAM
        ctx = client.bodiless_context(mcp.Kind.STREAM, "GET", headers)
        reply = await self.chain(ctx)
        if reply.events is None:
            await reply.finish()
            return
        await self._drain(client, ctx, reply)

    def _forget(self, client: LegacyClient) -> None:
        """The client's stream is gone: stop its work and end its upstream session (in the background)."""
        self._clients.pop(client.id, None)
        client.outbox.close()
        for task in client.tasks:
            task.cancel()
        cleanup = asyncio.create_task(self._end_upstream_session(client))
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    async def _end_upstream_session(self, client: LegacyClient) -> None:
        await asyncio.gather(*client.tasks, return_exceptions=True)
        if not client.upstream_session or client.latest is None:
            return
        ctx = client.bodiless_context(mcp.Kind.SESSION_END, "DELETE", client.upstream_headers())
        try:
            reply = await self.chain(ctx)
            await reply.finish()
        except Exception:
            log.warning("sse.session_end_failed", session=client.id[:8])


def _header(reply: Reply, name: str) -> str | None:
    return next((value for key, value in reply.headers.items() if key.lower() == name), None)
