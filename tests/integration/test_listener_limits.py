"""The MCP listener's HTTP/1.1 server on its own, over real sockets with byte-level clients: what it refuses and
when it lets go: malformed and oversized requests, ambiguous framing, the connection limit, drain, the idle sweep
and the request deadlines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from proxy.net.listener import reading as listener_reading
from proxy.net.listener import server as listener_server
from tests.integration.listener_support import (
    DEADLINE_SECONDS,
    SWEEP_KEEPALIVE_SECONDS,
    Listening,
    on_uvloop,
    run_on_uvloop,
    serve,
)
from tests.kit import wait_until
from tests.raw_http import WAIT, assert_closed, connect, exchange, read_reply, request

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


# the same on uvloop, which production runs on: its transports (buffering, pausing, closing) are its own

ON_UVLOOP = [
    test_a_bad_request_line_gets_400_after_the_answers_owed_and_closes,
    test_a_header_line_that_never_ends_is_refused,
    test_drain_lets_the_answer_in_progress_finish_then_closes,
    test_drain_cancels_what_is_still_running_past_the_grace,
    test_the_sweep_closes_idle_keep_alive_connections_not_busy_ones,
    test_a_refusal_reaches_a_client_still_sending,
    test_empty_lines_trickled_in_do_not_keep_an_idle_connection_open,
    test_each_request_on_a_connection_gets_its_own_deadlines,
]


@on_uvloop(ON_UVLOOP)
def test_on_uvloop(scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    run_on_uvloop(scenario, monkeypatch)
