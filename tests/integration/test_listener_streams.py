"""The MCP listener's HTTP/1.1 server on its own, over real sockets with byte-level clients: answers that stream:
back-pressure from a slow or stalled reader, a stream to an HTTP/1.0 client, and deferred stream heads."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from proxy.net.listener import connection as listener_connection
from tests.integration.listener_support import (
    BIG,
    HIGH_WATER,
    STREAM_CHUNK,
    STREAM_CHUNKS,
    Listening,
    on_uvloop,
    run_on_uvloop,
)
from tests.kit import wait_until
from tests.raw_http import WAIT, connect, read_reply, request

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


# framing a stream


async def test_a_stream_to_an_http_1_0_client_is_unchunked_and_ends_with_the_connection(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/stream", version="1.0"))
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.read()  # to the end of the connection: that is where an HTTP/1.0 body ends
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head and b"Connection: close" in head
    assert body == b"".join(bytes([index]) * STREAM_CHUNK for index in range(STREAM_CHUNKS))


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


# the same on uvloop, which production runs on: its transports (buffering, pausing, closing) are its own

ON_UVLOOP = [
    test_a_streamed_response_reaches_a_slow_reader_whole_without_piling_up,
    test_pipelined_answers_wait_for_a_client_that_does_not_read,
    test_a_stream_to_an_http_1_0_client_is_unchunked_and_ends_with_the_connection,
]


@on_uvloop(ON_UVLOOP)
def test_on_uvloop(scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    run_on_uvloop(scenario, monkeypatch)
