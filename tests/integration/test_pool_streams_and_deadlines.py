"""The upstream HTTP/1.1 connection pool against scripted origins on real sockets: streamed bodies with
back-pressure, and the request's deadline (for a connection, the answer's head, a body read whole) against a
stream's idle timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from proxy.net.connection_pool import ConnectionPool
from proxy.net.deadlines import TICK as DEADLINE_TICK
from tests.integration.pool_support import answer, echo_forever, read_request
from tests.kit import wait_until

pytestmark = pytest.mark.asyncio


async def test_chunked_body_streams_before_the_origin_finishes(origin_of) -> None:
    first_read = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"7\r\ndata: 1\r\n")
        await first_read.wait()  # the second part is sent only once the client has the first
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await read_request(reader)  # the connection is reused for the next request
        writer.write(answer(b"again"))

    origin = await origin_of(stream)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        response = await pool.request("GET", {})
        assert response.content_type == "text/event-stream"
        assert await response.readany() == b"data: 1"
        first_read.set()
        assert await response.readany() == b"data: 2"
        assert await response.readany() == b""
        assert await (await pool.request("POST", {}, b"x")).read() == b"again"
    assert origin.connections == 1
    await pool.close()


async def test_a_slow_reader_pauses_the_socket_and_still_gets_every_byte(origin_of) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(payload))
        writer.write(payload)
        await writer.drain()

    origin = await origin_of(big)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        response = await pool.request("GET", {})
        transport = response._connection.transport
        while transport.is_reading():  # nothing is read: the buffer fills and reading pauses
            await asyncio.sleep(0.005)
        received = bytearray()
        while chunk := await response.readany():
            received += chunk
    assert bytes(received) == payload
    await pool.close()


async def test_a_request_past_its_deadline_fails_closes_its_connection_and_frees_the_slot(origin_of) -> None:
    async def silent_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if origin.connections == 1:
            await reader.read()  # never answers; returns when the client hangs up
            hung_up.set()
            return
        writer.write(answer(b"ok"))

    hung_up = asyncio.Event()
    origin = await origin_of(silent_first)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        started = loop.time()
        with pytest.raises(TimeoutError):
            await pool.request("POST", {}, b"{}", within=0.2)
        assert 0.2 <= loop.time() - started < 0.2 + DEADLINE_TICK + 0.25
        await hung_up.wait()  # the sidecar's side closed: a late answer can never be taken for the next request's
        assert await (await pool.request("POST", {}, b"{}", within=0.2)).read() == b"ok"
    await pool.close()


async def test_a_body_read_whole_is_bound_by_the_request_deadline(origin_of) -> None:
    async def stalls_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\"")
        await reader.read()

    origin = await origin_of(stalls_mid_body)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        response = await pool.request("POST", {}, b"{}", within=0.3)
        with pytest.raises(TimeoutError):
            await response.read()
    await pool.close()


async def test_a_request_waiting_for_a_free_connection_is_bound_by_its_deadline(origin_of) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        await release.wait()
        writer.write(answer(body))

    release = asyncio.Event()
    origin = await origin_of(slow)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        first = asyncio.ensure_future(pool.request("POST", {}, b"first"))  # no deadline: holds the only slot
        await wait_until(lambda: pool._open)
        with pytest.raises(TimeoutError):
            await pool.request("POST", {}, b"second", within=0.2)
        assert not pool._waiters
        release.set()
        assert await (await first).read() == b"first"  # the one that kept its slot is untouched
    await pool.close()


async def test_a_stream_is_bound_by_its_idle_timeout_not_by_the_request_deadline(origin_of) -> None:
    async def ticks_then_stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(6):  # 0.6 s of events 0.1 s apart: longer than the request's deadline, never idle 0.3 s
            writer.write(b"7\r\ndata: 1\r\n")
            await asyncio.sleep(0.1)
        await reader.read()

    origin = await origin_of(ticks_then_stalls)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        response = await pool.request("GET", {}, within=0.2)
        chunks = []
        with pytest.raises(TimeoutError):
            while True:
                chunks.append(await response.readany(idle_timeout=0.3))
        response.release()
    assert chunks == [b"data: 1"] * 6
    await pool.close()


async def test_reading_a_finished_stream_leaves_the_next_request_its_deadline(origin_of) -> None:
    async def stream_then_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b"data: 1\n\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await read_request(reader)  # the next request on this connection is never answered
        await reader.read()

    origin = await origin_of(stream_then_silence)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        stream = await pool.request("GET", {})
        assert stream.complete  # whole, and its connection back in the pool
        started = time.monotonic()
        silent = asyncio.ensure_future(pool.request("POST", {}, b"{}", within=0.2))  # takes that connection
        await wait_until(lambda: not pool._idle)
        assert await stream.readany(idle_timeout=None) == b"data: 1\n\n"  # the first reader catches up
        assert await stream.readany(idle_timeout=None) == b""
        with pytest.raises(TimeoutError):
            await silent
        assert time.monotonic() - started < 0.2 + DEADLINE_TICK + 0.5
    assert origin.connections == 1
    await pool.close()


async def test_a_deadline_ends_with_its_response(origin_of) -> None:
    origin = await origin_of(echo_forever)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        assert await (await pool.request("POST", {}, b"1", within=0.1)).read() == b"1"
        await asyncio.sleep(0.1 + 2 * DEADLINE_TICK)  # long past that deadline, sweeps included
        assert await (await pool.request("POST", {}, b"2")).read() == b"2"
    assert origin.connections == 1  # the idle connection was not failed by the passed deadline
    await pool.close()
