"""The legacy HTTP+SSE upstream (2024-11-05): GET the stream, follow its `endpoint` event, POST messages there.

Each connection is a message channel like a stdio child: one shared connection (reconnected with backoff when
the stream drops) for 2026-07-28 callers, and one connection per legacy client session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog

from proxy.config import SseUpstreamConfig
from proxy.errors import UpstreamError
from proxy.net.sse_codec import EventTooLargeError, SseDecoder, SseEvent
from proxy.net.tls import client_context
from proxy.reply import EVENT_STREAM, JSON
from proxy.upstream.channel.mux import Receiver
from proxy.upstream.channel.upstream import ChannelUpstream
from proxy.upstream.credentials import UpstreamCredentials

log = structlog.get_logger("proxy.upstream.sse")


class SseChannel:
    def __init__(self, http: Callable[[], aiohttp.ClientSession], config: SseUpstreamConfig, label: str,
                 credentials: UpstreamCredentials) -> None:
        self._http = http
        self._credentials = credentials  # the sidecar's own, on every GET and POST
        self.url = config.sse_url
        self.label = label
        self._max_event_bytes = config.max_event_bytes
        self._response: aiohttp.ClientResponse | None = None
        self._endpoint: str | None = None
        self._reader: asyncio.Task[str] | None = None

    def diagnostics(self) -> str:
        return ""

    async def open(self, receiver: Receiver) -> None:
        headers = {**self._credentials.headers(), "Accept": EVENT_STREAM}
        try:
            self._response = await self._http().get(self.url, headers=headers)
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"Legacy SSE upstream unreachable: {exc.__class__.__name__}") from None
        if self._response.status != 200 or self._response.content_type != EVENT_STREAM:
            self._response.close()
            raise UpstreamError(f"Legacy SSE upstream answered HTTP {self._response.status} to GET")
        decoder = SseDecoder(self._max_event_bytes)
        early: list[SseEvent] = []
        while self._endpoint is None:
            for event in await self._read_events(decoder):
                if event.event == "endpoint":
                    self._endpoint = self._checked_endpoint(event.data.strip())
                elif event.event == "message":
                    early.append(event)
        for event in early:
            receiver.feed(event.data.encode())
        self._reader = asyncio.create_task(self._relay(decoder, receiver))
        log.info("upstream.sse_connected", channel=self.label, url=self.url)

    async def send(self, data: bytes) -> None:
        if self._endpoint is None or self._reader is None or self._reader.done():
            raise UpstreamError("The legacy SSE upstream connection is closed")
        try:
            headers = {**self._credentials.headers(), "Content-Type": JSON}
            async with self._http().post(self._endpoint, data=data, headers=headers) as response:
                if response.status >= 300:
                    raise UpstreamError(f"The legacy SSE upstream refused a message: HTTP {response.status}")
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"Could not post to the legacy SSE upstream: {exc.__class__.__name__}") from None

    async def wait_closed(self) -> str:
        assert self._reader is not None
        results = await asyncio.gather(self._reader, return_exceptions=True)
        return results[0] if isinstance(results[0], str) else f"stream failed: {results[0]!r}"

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._response is not None:
            self._response.close()

    def _checked_endpoint(self, announced: str) -> str:
        endpoint = urljoin(self.url, announced)
        stream, target = urlsplit(self.url), urlsplit(endpoint)
        if (stream.scheme, stream.netloc) != (target.scheme, target.netloc):
            raise UpstreamError("The legacy SSE upstream announced an endpoint on another origin")
        return endpoint

    async def _read_events(self, decoder: SseDecoder) -> list[SseEvent]:
        assert self._response is not None
        try:
            chunk = await self._response.content.readany()
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"Legacy SSE stream broke: {exc.__class__.__name__}") from None
        if not chunk:
            raise UpstreamError("Legacy SSE stream ended")
        try:
            return decoder.feed(chunk)
        except EventTooLargeError as exc:
            raise UpstreamError(str(exc)) from None

    async def _relay(self, decoder: SseDecoder, receiver: Receiver) -> str:
        try:
            while True:
                for event in await self._read_events(decoder):
                    if event.event == "message" and event.data:
                        receiver.feed(event.data.encode())
        except UpstreamError as exc:
            log.warning("upstream.sse_stream_ended", channel=self.label, reason=exc.message)
            return exc.message


class SseUpstream(ChannelUpstream):
    def __init__(self, config: SseUpstreamConfig) -> None:
        self._session: aiohttp.ClientSession | None = None
        credentials = UpstreamCredentials(config.headers, check_interval=config.secret_check_seconds)
        super().__init__(config, lambda label: SseChannel(self._client, config, label, credentials),
                         f"legacy SSE {config.sse_url}")

    def _client(self) -> aiohttp.ClientSession:
        assert self._session is not None, "upstream not started"
        return self._session

    async def start(self) -> None:
        tls = self.config.tls  # read once: this aiohttp session keeps its context (no rotation for legacy SSE)
        connector = aiohttp.TCPConnector(limit=self.config.max_connections,
                                         ssl=client_context(tls.ca_file, tls.cert_file, tls.key_file))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_seconds)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              cookie_jar=aiohttp.DummyCookieJar())
        await super().start()

    async def close(self) -> None:
        await super().close()
        if self._session is not None:
            await self._session.close()
