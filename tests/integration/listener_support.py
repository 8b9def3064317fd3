"""The listener tests' server (test_listener_*.py): HttpServer with small handlers that record what they saw, the
limits it runs with, and a way to run a test on uvloop. The `listening` fixture is in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import uvloop

from proxy.net.listener import HttpRequest, HttpResponse, HttpServer, ResponseStream, Routes
from proxy.net.listener import server as listener_server

MAX_BODY = 1024
BIG = 1024 * 1024  # one /big answer
STREAM_CHUNK = 64 * 1024
STREAM_CHUNKS = 48
HIGH_WATER = 64 * 1024  # asyncio's (and uvloop's) default write-buffer high-water mark
SWEEP_KEEPALIVE_SECONDS = 0.2  # the `sweeping` server's keep-alive
DEADLINE_SECONDS = 0.3  # the `deadlines` server's request head and body timeouts


class Handlers:
    """Small handlers and what they saw; `release` holds /slow's answer until the test lets it go."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.buffered: list[int] = []  # the connection's unsent bytes, seen before each /big answer or stream write
        self.server: HttpServer | None = None
        self.counted: list[tuple[str, dict[str, str]]] = []  # what the server counted in metrics

    def count(self, name: str, **attributes: str) -> None:
        self.counted.append((name, attributes))

    def routes(self) -> Routes:
        routes = Routes()
        routes.add("POST", "/echo", self.echo)
        routes.add("GET", "/echo", self.echo)
        routes.add("GET", "/doc", self.doc)
        routes.add("HEAD", "/doc", self.doc)
        routes.add("GET", "/slow", self.slow)
        routes.add("GET", "/stream", self.stream)
        routes.add("GET", "/big", self.big)
        routes.add("GET", "/fail", self.fail)
        routes.add("GET", "/split", self.split)
        routes.add("GET", "/refused-upstream", self.refused_upstream)
        routes.add("GET", "/leaked-cancel", self.leaked_cancel)
        routes.add("GET", "/nothing", self.nothing)
        routes.add("GET", "/then", self.then)
        routes.add("GET", "/endless", self.endless)
        routes.add("GET", "/then-fail", self.then_fail)
        routes.add("GET", "/deferred", self.deferred)
        return routes

    async def deferred(self, request: HttpRequest) -> ResponseStream:
        """A stream with a deferred head: its first chunk 10 ms later (?soon, an upstream's answer) or once the test
        releases it."""
        stream = await request.stream(200, {"Content-Type": "text/event-stream"}, defer_head=True)
        if request.query_string == "soon":
            await asyncio.sleep(0.01)
        else:
            await self.release.wait()
        await stream.write(b"data: first\n\n")
        return stream

    async def endless(self, request: HttpRequest) -> ResponseStream:
        stream = await request.stream(200, {"Content-Type": "application/octet-stream"})
        try:
            while True:
                await stream.write(b"x" * STREAM_CHUNK)
        except ConnectionError:
            self.calls.append("endless: client gone")
            raise

    async def then(self, request: HttpRequest) -> HttpResponse:
        async def work() -> None:
            self.calls.append("after: started")
            await self.release.wait()
            self.calls.append("after: done")

        return HttpResponse(200, b"answered first", after_sent=work)

    async def then_fail(self, request: HttpRequest) -> HttpResponse:
        async def work() -> None:
            raise RuntimeError("a bug in the work after the answer")

        return HttpResponse(200, b"answered", after_sent=work)

    async def nothing(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(204, b"a body a 204 must not carry")

    async def echo(self, request: HttpRequest) -> HttpResponse:
        self.calls.append(f"echo {request.query_string}".strip())
        if request.body_too_large:
            return HttpResponse.text(413, "Payload Too Large")
        return HttpResponse(200, request.body, {"X-Method": request.method})

    async def doc(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.text(200, "a document")

    async def slow(self, request: HttpRequest) -> HttpResponse:
        self.calls.append("slow")
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return HttpResponse.text(200, "slow answer")

    async def stream(self, request: HttpRequest) -> ResponseStream:
        stream = await request.stream(200, {"Content-Type": "application/octet-stream"})
        for index in range(STREAM_CHUNKS):
            self.buffered.append(self._unsent())
            await stream.write(bytes([index]) * STREAM_CHUNK)
        return stream

    async def big(self, request: HttpRequest) -> HttpResponse:
        self.buffered.append(self._unsent())
        return HttpResponse(200, request.query_string.encode() * (BIG // len(request.query_string)))

    async def fail(self, request: HttpRequest) -> HttpResponse:
        raise RuntimeError("a handler bug")

    async def split(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, b"x", {"X-Note": "fine\r\nSet-Cookie: session=stolen"})

    async def refused_upstream(self, request: HttpRequest) -> HttpResponse:
        raise ConnectionRefusedError("the handler's own upstream refused")  # not the client's connection

    async def leaked_cancel(self, request: HttpRequest) -> HttpResponse:
        raise asyncio.CancelledError  # as from awaiting a task that something else cancelled

    def _unsent(self) -> int:
        assert self.server is not None
        # white box: the transport's buffer is the only measure of what the server holds for a slow reader
        return max(connection._transport.get_write_buffer_size()  # type: ignore[union-attr]
                   for connection in self.server.connections if connection._transport is not None)


@dataclass
class Listening:
    server: HttpServer
    handlers: Handlers
    port: int


@contextlib.asynccontextmanager
async def serve(keepalive_seconds: float = 75.0, max_connections: int = 100,
                **timeouts: float) -> AsyncIterator[Listening]:
    handlers = Handlers()
    server = HttpServer(handlers.routes(), max_body_bytes=MAX_BODY, keepalive_seconds=keepalive_seconds,
                        max_connections=max_connections, count=handlers.count, **timeouts)
    handlers.server = server
    await server.listen("127.0.0.1", 0)
    try:
        yield Listening(server, handlers, server.ports[0])
    finally:
        handlers.release.set()
        await server.drain(1.0)


def on_uvloop(scenarios: list[Callable[..., Awaitable[None]]]) -> pytest.MarkDecorator:
    """The parameters of a file's `test_on_uvloop`: its scenarios (tests of that file), each named without test_."""
    return pytest.mark.parametrize("scenario", scenarios, ids=lambda scenario: scenario.__name__.removeprefix("test_"))


def run_on_uvloop(scenario: Callable[..., Awaitable[None]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs one of the listener tests on uvloop, which production runs on: its transports (buffering, pausing,
    closing) are its own. The fixtures the test names (listening, sweeping, deadlines) are served here."""
    parameters = inspect.signature(scenario).parameters
    keepalive_seconds = 75.0
    if "sweeping" in parameters:
        monkeypatch.setattr(listener_server, "SWEEP_SECONDS", 0.05)
        keepalive_seconds = SWEEP_KEEPALIVE_SECONDS

    timeouts = {}
    if "deadlines" in parameters:
        timeouts = {"request_head_timeout": DEADLINE_SECONDS, "request_body_timeout": DEADLINE_SECONDS}

    async def run() -> None:
        async with serve(keepalive_seconds, **timeouts) as served:
            given = {"listening": served, "sweeping": served, "deadlines": served, "monkeypatch": monkeypatch}
            await scenario(**{name: given[name] for name in parameters})

    uvloop.run(run())
