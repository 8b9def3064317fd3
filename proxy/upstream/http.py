"""Streamable HTTP upstream: one connection pool, SSE relayed event by event, failures mapped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import orjson
import structlog

from proxy import mcp
from proxy.config import HttpUpstreamConfig
from proxy.context import CallContext
from proxy.errors import UpstreamBadOutputError, UpstreamError, UpstreamTimeoutError
from proxy.net.connection_pool import ConnectFailedError, ConnectionPool
from proxy.net.http_response import Response
from proxy.net.sse_codec import EventTooLargeError, SseDecoder, SseEvent
from proxy.net.tls import reloading_client_context
from proxy.reply import EVENT_STREAM, JSON, Reply
from proxy.upstream.credentials import UpstreamCredentials

log = structlog.get_logger("proxy.upstream")

# Response headers that describe one hop, or that the sidecar's own answer recomputes.
_HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
        "transfer-encoding", "upgrade", "content-length", "content-encoding", "date", "server",
    }
)
_HTTP_METHOD = {mcp.Kind.STREAM: "GET", mcp.Kind.SESSION_END: "DELETE"}


class HttpUpstream:
    def __init__(self, config: HttpUpstreamConfig) -> None:
        self.config = config
        self.name = config.name
        self.url = config.url
        parts = urlsplit(self.url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80))
        self._pool: ConnectionPool | None = None
        self.credentials = UpstreamCredentials(config.headers, check_interval=config.secret_check_seconds)

    async def start(self) -> None:
        tls = self.config.tls
        self._pool = ConnectionPool(self.url, limit=self.config.max_connections,
                                    connect_timeout=self.config.connect_timeout_seconds,
                                    keepalive_seconds=self.config.idle_connection_seconds,
                                    tls=reloading_client_context(tls.ca_file, tls.cert_file, tls.key_file))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def on_restart(self, callback: Callable[[], None]) -> None:
        """An HTTP upstream is not ours to restart; nothing to report."""

    async def readiness(self) -> tuple[bool, str]:
        host, port = self._address
        try:
            async with asyncio.timeout(2):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            return False, f"{self.url} unreachable: {exc.__class__.__name__}"
        writer.close()
        return True, f"{self.url} reachable"

    async def send(self, ctx: CallContext) -> Reply:
        assert self._pool is not None, "upstream not started"
        method = _HTTP_METHOD.get(ctx.kind, "POST")
        body = ctx.outbound_body() if method == "POST" else None
        # The sidecar's own credentials last, so nothing from the call can replace them; ctx.headers never
        # holds the caller's Authorization (see envelope.forwarded_headers).
        headers = {**ctx.headers, **ctx.upstream_headers, **self.credentials.headers()}
        timeout = self.config.timeout_for(ctx.target if ctx.method == "tools/call" else None)
        try:
            response = await self._pool.request(method, headers, body, timeout)
            if response.content_type != EVENT_STREAM:
                return await self._whole_reply(ctx, response)
        except TimeoutError:
            log.warning("upstream.timeout", method=ctx.method, after_seconds=timeout)
            raise UpstreamTimeoutError(f"Upstream did not answer within {timeout:g}s") from None
        except ConnectFailedError as exc:
            log.warning("upstream.unreachable", url=self.url, error=str(exc))
            raise UpstreamError("Upstream MCP server is unreachable") from None
        except ConnectionError as exc:
            log.warning("upstream.failed", method=ctx.method, error=str(exc))
            raise UpstreamError("Upstream connection failed before a response") from None
        reply = Reply(status=response.status, headers=_client_headers(response), events=self._events(response),
                      stream_buffered=response.complete)
        # After the final response only the stream's end is left: it is read and dropped, and the connection reused.
        reply.release = lambda: response.release(drain=reply.final_relayed)
        return reply

    async def _whole_reply(self, ctx: CallContext, response: Response) -> Reply:
        try:
            body = response.arrived_body() if response.complete else await response.read()
        finally:
            response.release()
        reply = Reply(status=response.status, headers=_client_headers(response), body=body)
        if ctx.is_request and response.status == 200 and response.content_type == JSON:
            _require_response(reply, body)
        return reply

    async def _events(self, response: Response) -> AsyncIterator[SseEvent]:
        decoder = SseDecoder(self.config.max_event_bytes)
        idle = self.config.stream_idle_timeout_seconds
        try:
            while True:
                chunk = await response.readany(idle)
                if not chunk:
                    return
                for event in decoder.feed(chunk):
                    yield event
        except TimeoutError:
            raise UpstreamTimeoutError(f"Upstream stream was idle for more than {idle:g}s") from None
        except EventTooLargeError as exc:
            raise UpstreamBadOutputError(str(exc)) from None
        except ConnectionError:
            log.warning("upstream.stream_broken", url=self.url)
            raise UpstreamError("Upstream connection broke off mid-stream") from None


def _require_response(reply: Reply, body: bytes) -> None:
    """A 200 JSON answer to a request must be one JSON-RPC response; anything else is the upstream's fault."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict) or ("result" not in message and "error" not in message):
        log.warning("upstream.bad_output", size=len(body))
        raise UpstreamBadOutputError("Upstream answered with something that is not a JSON-RPC response")
    reply.message = message


def _client_headers(response: Response) -> dict[str, str]:
    return {name: value for name, value in response.headers if name.lower() not in _HOP_BY_HOP}
