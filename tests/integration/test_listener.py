"""The MCP listener's HTTP/1.1 server on its own, over real sockets with byte-level clients: framing, limits,
keep-alive, pipelining, Expect, back-pressure, errors, drain and the idle sweep."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import uvloop

from proxy.net.listener import HttpRequest, HttpResponse, HttpServer, ResponseStream, Routes
from proxy.net.listener import connection as listener_connection
from proxy.net.listener import reading as listener_reading
from proxy.net.listener import server as listener_server
from tests.kit import wait_until
from tests.raw_http import WAIT, assert_closed, connect, exchange, read_reply, request

MAX_BODY = 1024
BIG = 1024 * 1024  # one /big answer
STREAM_CHUNK = 64 * 1024
STREAM_CHUNKS = 48
HIGH_WATER = 64 * 1024  # asyncio's (and uvloop's) default write-buffer high-water mark


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


@pytest.fixture
async def listening() -> AsyncIterator[Listening]:
    async with serve() as served:
        yield served


# keep-alive and closing


async def test_keep_alive_serves_several_requests_on_one_connection(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    for number in range(3):
        writer.write(request("POST", "/echo", f"call {number}".encode()))
        reply = await read_reply(reader)
        assert (reply.status, reply.body) == (200, f"call {number}".encode())
        assert "connection" not in reply.headers
    assert len(listening.server.connections) == 1


async def test_connection_close_is_answered_then_closed(listening: Listening) -> None:
    reply, reader = await exchange(listening.port, request("GET", "/echo", Connection="close"))
    assert reply.status == 200
    assert reply.headers["connection"] == "close"
    await assert_closed(reader)


async def test_http_1_0_closes_after_its_answer(listening: Listening) -> None:
    reply, reader = await exchange(listening.port, request("GET", "/echo", version="1.0"))
    assert reply.status == 200
    assert reply.headers["connection"] == "close"
    await assert_closed(reader)


async def test_nothing_after_a_request_with_connection_close_is_processed(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/echo?last", Connection="close") + request("GET", "/echo?after"))
    reply = await read_reply(reader)
    assert (reply.status, reply.headers["connection"]) == (200, "close")
    await assert_closed(reader)
    assert listening.handlers.calls == ["echo last"]


async def test_pipelined_requests_are_answered_one_at_a_time_in_order(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/slow") + request("POST", "/echo?n=2", b"second") + request("GET", "/echo?n=3"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    assert listening.handlers.calls == ["slow"]  # the next ones wait for the answer in progress
    listening.handlers.release.set()
    replies = [await read_reply(reader) for _ in range(3)]
    assert [reply.body for reply in replies] == [b"slow answer", b"second", b""]
    assert listening.handlers.calls == ["slow", "echo n=2", "echo n=3"]


async def test_head_answer_carries_the_length_but_no_body(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("HEAD", "/doc") + request("GET", "/doc"))
    head = await read_reply(reader, head_only=True)
    assert (head.status, head.headers["content-length"]) == (200, str(len(b"a document")))
    following = await read_reply(reader)  # would be garbled had the HEAD answer carried a body
    assert (following.status, following.body) == (200, b"a document")


# malformed requests and limits


async def test_a_bad_request_line_gets_400_after_the_answers_owed_and_closes(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/echo?n=1") + b"NOT A REQUEST LINE\r\n\r\n")
    assert (await read_reply(reader)).status == 200
    refused = await read_reply(reader)
    assert (refused.status, refused.headers["connection"]) == (400, "close")
    await assert_closed(reader)


async def test_a_too_long_target_gets_414(listening: Listening) -> None:
    target = "/echo?" + "q" * listener_reading.MAX_TARGET_BYTES
    reply, reader = await exchange(listening.port, request("GET", target))
    assert reply.status == 414
    await assert_closed(reader)
    assert listening.handlers.calls == []


async def test_too_many_headers_get_431(listening: Listening) -> None:
    headers = {f"X_Header_{number}": "v" for number in range(listener_reading.MAX_HEADERS + 1)}
    reply, reader = await exchange(listening.port, request("GET", "/echo", **headers))
    assert reply.status == 431
    await assert_closed(reader)


async def test_too_large_headers_get_431(listening: Listening, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_reading, "MAX_HEADER_BYTES", 2048)
    reply, reader = await exchange(listening.port, request("GET", "/echo", X_Large="v" * 1500, X_Larger="w" * 1500))
    assert reply.status == 431
    await assert_closed(reader)
    assert listening.handlers.calls == []


async def test_a_header_line_that_never_ends_is_refused(listening: Listening, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser collects a header whole before reporting it: the listener must stop an endless one itself."""
    monkeypatch.setattr(listener_reading, "MAX_HEADER_BYTES", 2048)
    monkeypatch.setattr(listener_reading, "MAX_TARGET_BYTES", 512)
    reader, writer = await connect(listening.port)
    writer.write(b"GET /echo HTTP/1.1\r\nX-Endless: ")
    await wait_until(lambda: listening.server.connections, WAIT)
    connection = next(iter(listening.server.connections))
    await wait_until(lambda: connection._in_head, WAIT)  # that much is parsed (white box): the rest comes later
    writer.write(b"v" * 16 * 1024)  # no line end
    reply = await read_reply(reader)
    assert reply.status == 431
    await assert_closed(reader)


@pytest.mark.parametrize("smuggled", [
    # Content-Length and chunked together: which one frames the body?
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # two different lengths
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nbody",
    # chunked not last: the body's end is unknown
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    # a space before the colon hides the header from some parsers
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    # a length that is not a number
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nbody",
], ids=["length-and-chunked", "two-lengths", "chunked-not-last", "space-before-colon", "signed-length"])
async def test_ambiguous_framing_is_refused_not_guessed(listening: Listening, smuggled: bytes) -> None:
    reply, reader = await exchange(listening.port, smuggled + request("GET", "/echo?smuggled"))
    assert reply.status == 400
    await assert_closed(reader)
    assert listening.handlers.calls == []


# bodies


async def test_a_chunked_request_body_arrives_whole(listening: Listening) -> None:
    body = b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    reader, writer = await connect(listening.port)
    writer.write(request("POST", "/echo", body, Transfer_Encoding="chunked") + request("GET", "/echo?after"))
    assert (await read_reply(reader)).body == b"hello world"
    assert (await read_reply(reader)).status == 200  # the framing held: the next request is parsed as one


async def test_a_body_announced_over_the_limit_is_answered_413_at_once_then_closed(listening: Listening) -> None:
    """Announced far over the limit and not sent (as from a client trickling gigabytes): answered without waiting."""
    reader, writer = await connect(listening.port)
    writer.write(request("POST", "/echo?huge", Content_Length=str(50 * 1024**3)) + b"the first bytes of it")
    reply = await read_reply(reader)
    assert (reply.status, reply.headers["connection"]) == (413, "close")
    writer.write(b"x" * 4096)  # what is still sent is read and dropped, then the connection closes
    writer.write_eof()
    await assert_closed(reader)
    assert listening.handlers.calls == ["echo huge"]


async def test_a_chunked_body_is_refused_once_its_running_total_passes_the_limit(listening: Listening) -> None:
    piece = b"y" * (MAX_BODY // 2 + 1)
    reader, writer = await connect(listening.port)
    writer.write(request("POST", "/echo", Transfer_Encoding="chunked") + b"%x\r\n%s\r\n" % (len(piece), piece))
    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))  # past the limit; the body's end never comes
    reply = await read_reply(reader)
    assert (reply.status, reply.headers["connection"]) == (413, "close")
    writer.write_eof()
    await assert_closed(reader)


async def test_the_answers_owed_come_before_a_413_and_nothing_after_it_runs(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/slow") + request("POST", "/echo?big", b"x" * (MAX_BODY + 1))
                 + request("GET", "/echo?after"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    listening.handlers.release.set()
    assert (await read_reply(reader)).body == b"slow answer"
    assert (await read_reply(reader)).status == 413
    await assert_closed(reader)
    assert listening.handlers.calls == ["slow", "echo big"]


async def test_expect_100_continue_invites_the_body_then_answers(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    head = request("POST", "/echo", Expect="100-continue", Content_Length="5")
    writer.write(head)
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    assert (await read_reply(reader)).body == b"hello"


async def test_expect_100_continue_over_the_limit_is_answered_without_inviting_the_body(
        listening: Listening) -> None:
    reply, reader = await exchange(listening.port, request("POST", "/echo", Expect="100-continue",
                                                      Content_Length=str(MAX_BODY + 1)))
    assert reply.status == 413  # the first thing back: no 100 Continue came before it
    assert reply.headers["connection"] == "close"
    await assert_closed(reader)


async def test_a_client_that_sends_the_refused_body_anyway_gets_no_further_answers(listening: Listening) -> None:
    """The answer to an oversized Expect request is the last on the connection, whatever follows it."""
    oversized = request("POST", "/echo?oversized", Expect="100-continue", Content_Length=str(MAX_BODY + 1))
    reply, reader = await exchange(listening.port, oversized + b"z" * (MAX_BODY + 1)
                                   + request("GET", "/echo?after", Connection="close"))
    assert (reply.status, reply.headers["connection"]) == (413, "close")
    await assert_closed(reader)
    assert listening.handlers.calls == ["echo oversized"]


# routing and handler outcomes


async def test_an_http_1_1_request_without_host_gets_400(listening: Listening) -> None:
    reply, reader = await exchange(listening.port, b"GET /echo HTTP/1.1\r\n\r\n")
    assert reply.status == 400 and b"Host" in reply.body
    await assert_closed(reader)
    reply, _ = await exchange(listening.port, b"GET /echo?old HTTP/1.0\r\n\r\n")  # 1.0 had no Host
    assert reply.status == 200 and listening.handlers.calls == ["echo old"]


async def test_an_absolute_form_target_is_routed_by_its_path(listening: Listening) -> None:
    reply, _ = await exchange(listening.port, request("GET", "http://test/echo?n=abs"))
    assert reply.status == 200 and listening.handlers.calls == ["echo n=abs"]


async def test_a_204_answer_has_neither_length_nor_body(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/nothing") + request("GET", "/echo?n=next"))
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 204 ") and b"content-length" not in head.lower()
    following = await read_reply(reader)  # the 204's body was not sent: the next answer follows at once
    assert following.status == 200 and listening.handlers.calls == ["echo n=next"]


async def test_work_after_the_answer_runs_once_it_is_written_and_a_leaving_client_does_not_cancel_it(
        listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/then"))
    assert (await read_reply(reader)).body == b"answered first"  # while the work after it is still waiting
    assert listening.handlers.calls == ["after: started"]
    writer.close()
    await wait_until(lambda: not listening.server.connections)
    listening.handlers.release.set()
    await wait_until(lambda: listening.handlers.calls == ["after: started", "after: done"])


async def test_a_failure_after_the_answer_leaves_the_answer_and_the_connection_alone(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/then-fail") + request("GET", "/echo?n=next"))
    assert ((await read_reply(reader)).status, (await read_reply(reader)).status) == (200, 200)


async def test_a_connection_accepted_as_the_drain_begins_is_closed_at_once(listening: Listening) -> None:
    listening.server.draining = True  # as drain() sets it before it walks the open connections
    reader, _ = await connect(listening.port)
    await assert_closed(reader)


async def test_an_unknown_path_gets_404_and_a_wrong_method_405_with_allow(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/nowhere") + request("DELETE", "/echo"))
    assert (await read_reply(reader)).status == 404
    wrong = await read_reply(reader)
    assert (wrong.status, wrong.headers["allow"]) == (405, "GET, POST")


async def test_a_handler_exception_gets_500_and_the_connection_stays_usable(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/fail"))
    assert (await read_reply(reader)).status == 500
    writer.write(request("POST", "/echo", b"still here"))
    assert (await read_reply(reader)).body == b"still here"


@pytest.mark.parametrize("path", ["/refused-upstream", "/leaked-cancel"])
async def test_a_handler_failure_that_looks_like_a_disconnect_still_gets_500(listening: Listening, path: str) -> None:
    """A ConnectionError or CancelledError out of a handler while the client is still there is the handler's
    failure: the client gets its 500, not silence on a connection that never answers again."""
    reader, writer = await connect(listening.port)
    writer.write(request("GET", path))
    assert (await read_reply(reader)).status == 500
    writer.write(request("POST", "/echo", b"still here"))
    assert (await read_reply(reader)).body == b"still here"


async def test_a_line_break_in_a_response_header_gives_500_not_a_split_response(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/split") + request("GET", "/echo?after"))
    reply = await read_reply(reader)
    assert reply.status == 500
    assert "set-cookie" not in reply.headers
    assert (await read_reply(reader)).status == 200


async def test_an_upgrade_request_is_answered_and_the_connection_closed(listening: Listening) -> None:
    upgrade = request("GET", "/echo?upgrade", Connection="Upgrade", Upgrade="websocket")
    reply, reader = await exchange(listening.port, upgrade + b"\x81\x05hello" + request("GET", "/echo?after"))
    assert (reply.status, reply.headers["connection"]) == (200, "close")
    await assert_closed(reader)  # what followed the upgrade was not taken for requests
    assert listening.handlers.calls == ["echo upgrade"]


async def test_a_client_disconnect_cancels_its_running_handler(listening: Listening) -> None:
    _reader, writer = await connect(listening.port)
    writer.write(request("GET", "/slow"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    writer.close()
    await asyncio.wait_for(listening.handlers.cancelled.wait(), WAIT)
    await wait_until(lambda: not listening.server.connections, WAIT)


# back-pressure


async def test_a_streamed_response_reaches_a_slow_reader_whole_without_piling_up(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/stream"))
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        received = bytearray()
        while piece := await reader.read(4096):  # small reads: the client drains slower than the server writes
            received += piece
            if received.endswith(b"\r\n0\r\n\r\n"):
                break
    expected = b"".join(b"%x\r\n%s\r\n" % (STREAM_CHUNK, bytes([index]) * STREAM_CHUNK)
                        for index in range(STREAM_CHUNKS)) + b"0\r\n\r\n"
    assert bytes(received) == expected
    assert max(listening.handlers.buffered) <= HIGH_WATER  # each write waited for the client to take the last


async def test_a_client_that_takes_nothing_for_too_long_is_cut_off(listening: Listening,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_connection, "WRITE_STALL_SECONDS", 0.3)
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/endless"))  # and never read: the socket fills and the stream's writes stall
    await wait_until(lambda: listening.handlers.calls == ["endless: client gone"])
    await wait_until(lambda: not listening.server.connections)
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(WAIT):
            while await reader.read(1 << 20):  # what was sent before the cut, then the end
                pass


async def test_pipelined_answers_wait_for_a_client_that_does_not_read(listening: Listening) -> None:
    """A client that pipelines requests and reads nothing must not make the server buffer answer after answer."""
    count = 24
    reader, writer = await connect(listening.port)
    writer.write(b"".join(request("GET", f"/big?{index:02d}") for index in range(count)))
    for index in range(count):
        reply = await read_reply(reader)
        assert reply.body == f"{index:02d}".encode() * (BIG // 2)
    assert max(listening.handlers.buffered) <= HIGH_WATER


# shutdown and idle connections


async def test_drain_lets_the_answer_in_progress_finish_then_closes(listening: Listening) -> None:
    busy_reader, busy_writer = await connect(listening.port)
    idle_reader, idle_writer = await connect(listening.port)
    idle_writer.write(request("GET", "/echo"))
    await read_reply(idle_reader)
    busy_writer.write(request("GET", "/slow"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    draining = asyncio.create_task(listening.server.drain(WAIT))
    await assert_closed(idle_reader)  # nothing in progress there: closed at once
    with pytest.raises(OSError):
        await connect(listening.port)  # no longer accepting
    assert not draining.done()
    listening.handlers.release.set()
    reply = await read_reply(busy_reader)
    assert (reply.status, reply.body, reply.headers["connection"]) == (200, b"slow answer", "close")
    await assert_closed(busy_reader)
    await asyncio.wait_for(draining, WAIT)
    assert not listening.handlers.cancelled.is_set()


async def test_drain_cancels_what_is_still_running_past_the_grace(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/slow"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    await asyncio.wait_for(listening.server.drain(0.1), WAIT)
    await asyncio.wait_for(listening.handlers.cancelled.wait(), WAIT)
    await assert_closed(reader)


SWEEP_KEEPALIVE_SECONDS = 0.2


@pytest.fixture
async def sweeping(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Listening]:
    monkeypatch.setattr(listener_server, "SWEEP_SECONDS", 0.05)
    async with serve(keepalive_seconds=SWEEP_KEEPALIVE_SECONDS) as served:
        yield served


async def test_the_sweep_closes_idle_keep_alive_connections_not_busy_ones(sweeping: Listening) -> None:
    busy_reader, busy_writer = await connect(sweeping.port)
    busy_writer.write(request("GET", "/slow"))  # active before the idle one, still answering after it is closed
    await asyncio.wait_for(sweeping.handlers.started.wait(), WAIT)
    idle_reader, idle_writer = await connect(sweeping.port)
    idle_writer.write(request("GET", "/echo"))
    await read_reply(idle_reader)
    await assert_closed(idle_reader)
    sweeping.handlers.release.set()
    assert (await read_reply(busy_reader)).body == b"slow answer"


async def test_empty_lines_trickled_in_do_not_keep_an_idle_connection_open(sweeping: Listening) -> None:
    """Bytes that begin no request (the parser skips empty lines) leave the connection idle: the sweep closes it."""
    reader, writer = await connect(sweeping.port)
    writer.write(request("GET", "/echo"))
    await read_reply(reader)
    trickling = asyncio.create_task(trickle(writer, b"\r\n" * 1000))
    try:
        await assert_closed(reader)
    finally:
        trickling.cancel()


# request deadlines

DEADLINE_SECONDS = 0.3


@pytest.fixture
async def deadlines() -> AsyncIterator[Listening]:
    async with serve(request_head_timeout=DEADLINE_SECONDS, request_body_timeout=DEADLINE_SECONDS) as served:
        yield served  # swept every DEADLINE_SECONDS / 4


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 0.03) -> None:
    """Send `data` a byte at a time, as a slowloris client does; stops quietly once the server has closed."""
    with contextlib.suppress(ConnectionError):
        for index in range(len(data)):
            writer.write(data[index:index + 1])
            await writer.drain()
            await asyncio.sleep(every)


@pytest.mark.parametrize(("sent", "trickled", "phase"), [
    (b"", request("GET", "/echo") * 4, "head"),
    (request("POST", "/echo", Content_Length="100"), b"b" * 100, "body"),
    (b"GET /echo HTTP/1.1\r\nHo", b"", "head"),  # a head that stops midway
    (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nten bytes.", b"", "body"),
], ids=["trickled-head", "trickled-body", "stalled-head", "stalled-body"])
async def test_a_request_part_not_in_within_its_deadline_gets_408_and_is_closed(
        deadlines: Listening, sent: bytes, trickled: bytes, phase: str) -> None:
    reader, writer = await connect(deadlines.port)
    writer.write(sent)
    trickling = asyncio.create_task(trickle(writer, trickled))  # bytes keep coming: the deadline holds regardless
    try:
        reply = await read_reply(reader)
        assert (reply.status, reply.headers["connection"]) == (408, "close")
        writer.write_eof()
        trickling.cancel()
        await assert_closed(reader)
    finally:
        trickling.cancel()
    assert deadlines.handlers.calls == []
    assert deadlines.handlers.counted == [("listener_request_timeouts", {"phase": phase})]


@pytest.mark.parametrize("sent", [b"", b"\r\n"], ids=["nothing", "an-empty-line"])
async def test_a_connection_whose_first_request_does_not_begin_in_time_is_closed_without_a_word(
        deadlines: Listening, sent: bytes) -> None:
    reader, writer = await connect(deadlines.port)
    writer.write(sent)
    await assert_closed(reader)
    assert deadlines.handlers.counted == [("listener_request_timeouts", {"phase": "start"})]


async def test_each_request_on_a_connection_gets_its_own_deadlines(deadlines: Listening) -> None:
    reader, writer = await connect(deadlines.port)
    for number in range(2):
        if number:
            await asyncio.sleep(DEADLINE_SECONDS * 1.5)  # idle between requests: no request's deadline runs meanwhile
        head = request("POST", f"/echo?n={number}", Content_Length="4")
        writer.write(head[:10])
        await asyncio.sleep(DEADLINE_SECONDS / 2)
        writer.write(head[10:])  # the head within its time
        await asyncio.sleep(DEADLINE_SECONDS / 2)
        writer.write(b"body")  # and the body within its own, past the head's had it run on
        assert (await read_reply(reader)).status == 200
    assert deadlines.handlers.counted == []


async def test_a_stream_to_an_http_1_0_client_is_unchunked_and_ends_with_the_connection(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/stream", version="1.0"))
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.read()  # to the end of the connection: that is where an HTTP/1.0 body ends
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head and b"Connection: close" in head
    assert body == b"".join(bytes([index]) * STREAM_CHUNK for index in range(STREAM_CHUNKS))


async def test_a_refusal_reaches_a_client_still_sending(listening: Listening, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing with the client's bytes unread would reset the connection, and a reset can take the refusal with it:
    the listener stops sending, keeps reading (and dropping) until the client is done, then closes."""
    monkeypatch.setattr(listener_reading, "MAX_HEADER_BYTES", 2048)
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/echo", X_Large="v" * 1500, X_Larger="w" * 1500))  # refused: 431
    for _ in range(40):  # and more keeps coming, as from a client that does not read before it has sent it all
        writer.write(b"x" * 64 * 1024)
        await asyncio.sleep(0.002)
    reply = await read_reply(reader)
    assert reply.status == 431
    writer.close()
    await wait_until(lambda: not listening.server.connections, WAIT)


async def test_past_the_connection_limit_a_new_connection_gets_503_and_is_closed() -> None:
    async with serve(max_connections=2) as served:
        held = [await connect(served.port) for _ in range(2)]
        for reader, writer in held:  # both counted in: each answered, and kept alive
            writer.write(request("GET", "/echo?held"))
            assert (await read_reply(reader)).status == 200
        reply, reader = await exchange(served.port, request("GET", "/echo?refused"))
        assert (reply.status, reply.headers["retry-after"], reply.headers["connection"]) == (503, "1", "close")
        await assert_closed(reader)
        held[0][1].close()  # one leaves: its place is free again
        await wait_until(lambda: len(served.server.connections) == 1, WAIT)
        reply, _ = await exchange(served.port, request("GET", "/echo?admitted"))
        assert reply.status == 200
        assert served.server.refused_connections == 1
        assert served.handlers.counted == [("listener_refused_connections", {})]
        assert served.handlers.calls == ["echo held", "echo held", "echo admitted"]  # the refused one never ran


# the same on uvloop, which production runs on: its transports (buffering, pausing, closing) are its own

ON_UVLOOP = [
    test_pipelined_requests_are_answered_one_at_a_time_in_order,
    test_a_bad_request_line_gets_400_after_the_answers_owed_and_closes,
    test_a_header_line_that_never_ends_is_refused,
    test_expect_100_continue_invites_the_body_then_answers,
    test_an_upgrade_request_is_answered_and_the_connection_closed,
    test_a_client_disconnect_cancels_its_running_handler,
    test_a_streamed_response_reaches_a_slow_reader_whole_without_piling_up,
    test_pipelined_answers_wait_for_a_client_that_does_not_read,
    test_drain_lets_the_answer_in_progress_finish_then_closes,
    test_drain_cancels_what_is_still_running_past_the_grace,
    test_the_sweep_closes_idle_keep_alive_connections_not_busy_ones,
    test_a_stream_to_an_http_1_0_client_is_unchunked_and_ends_with_the_connection,
    test_a_refusal_reaches_a_client_still_sending,
    test_a_body_announced_over_the_limit_is_answered_413_at_once_then_closed,
    test_a_chunked_body_is_refused_once_its_running_total_passes_the_limit,
    test_empty_lines_trickled_in_do_not_keep_an_idle_connection_open,
    test_each_request_on_a_connection_gets_its_own_deadlines,
]


@pytest.mark.parametrize("scenario", ON_UVLOOP, ids=lambda scenario: scenario.__name__.removeprefix("test_"))
def test_on_uvloop(scenario, monkeypatch: pytest.MonkeyPatch) -> None:
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



# deferred stream heads


async def test_a_deferred_head_goes_out_with_the_first_chunk_in_one_write(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/deferred?soon"))
    first_read = await asyncio.wait_for(reader.read(65536), WAIT)  # one send() of a few hundred bytes on loopback
    assert first_read.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\n" in first_read
    assert b"data: first" in first_read
    writer.close()


async def test_a_deferred_head_waits_at_most_its_bound_for_the_first_chunk(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/deferred"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)  # the chunk waits for the test
    assert head.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding: chunked" in head.lower()
    assert not listening.handlers.release.is_set()
    listening.handlers.release.set()
    reply_rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), WAIT)
    assert b"data: first" in reply_rest
    writer.close()
