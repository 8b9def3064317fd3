"""The upstream HTTP/1.1 connection pool against scripted origins on real sockets: the connection limit, reuse and
its end, and every way a connection can fail (broken, closed, cut short, released, cancelled, unreachable)."""

from __future__ import annotations

import asyncio

import pytest

from proxy.net.connection_pool import ConnectFailedError, ConnectionBrokenError, ConnectionPool
from proxy.upstream.http import HttpUpstream
from tests.integration.pool_support import answer, echo_forever, read_request
from tests.kit import make_config, wait_until

pytestmark = pytest.mark.asyncio


async def test_concurrent_requests_never_exceed_the_connection_limit(origin_of) -> None:
    async def slow_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, body = await read_request(reader)
            await asyncio.sleep(0.01)
            writer.write(answer(body))

    origin = await origin_of(slow_echo)
    pool = ConnectionPool(origin.url, limit=2, connect_timeout=2)

    async def call(number: int) -> bytes:
        return await (await pool.request("POST", {}, b"%d" % number)).read()

    async with asyncio.timeout(5):
        bodies = await asyncio.gather(*(call(number) for number in range(12)))
    assert bodies == [b"%d" % number for number in range(12)]
    assert origin.most_open == 2
    await pool.close()


async def test_a_waiting_request_takes_the_slot_of_a_connection_that_broke(origin_of) -> None:
    async def first_hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        if body == b"first":
            await second_waits.wait()
            return  # hangs up without answering
        writer.write(answer(body))

    second_waits = asyncio.Event()
    origin = await origin_of(first_hangs_up)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        first = asyncio.ensure_future(pool.request("POST", {}, b"first"))
        await wait_until(lambda: pool._open)  # the first has the only slot
        second = asyncio.ensure_future(pool.request("POST", {}, b"second"))
        await wait_until(lambda: pool._waiters)  # the second queues behind the limit
        second_waits.set()
        assert await (await second).read() == b"second"
        with pytest.raises(ConnectionBrokenError):
            await first
    assert origin.connections == 2
    await pool.close()


async def test_a_connection_closed_before_the_answer_fails_and_the_next_request_reconnects(origin_of) -> None:
    async def hang_up_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if origin.connections == 1:
            return  # closes without answering
        writer.write(answer(b"ok"))

    origin = await origin_of(hang_up_once)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionBrokenError, match="closed the connection"):
            await pool.request("POST", {}, b"{}")
        assert await (await pool.request("POST", {}, b"{}")).read() == b"ok"
    await pool.close()


async def test_a_body_cut_short_fails_the_read(origin_of) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"par")

    origin = await origin_of(cut)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        response = await pool.request("POST", {}, b"{}")
        with pytest.raises(ConnectionBrokenError):
            await response.read()
    await pool.close()


async def test_an_origin_closing_an_idle_connection_costs_the_next_request_nothing(origin_of) -> None:
    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()  # then the handler returns and the origin closes the idle keep-alive connection

    origin = await origin_of(one_per_connection)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        assert await (await pool.request("POST", {}, b"{}")).read() == b"ok"
        while pool._idle:  # the close reaches the pool, which drops the connection
            await asyncio.sleep(0.005)
        assert await (await pool.request("POST", {}, b"{}")).read() == b"ok"
    assert origin.connections == 2
    await pool.close()


async def test_a_released_unfinished_response_closes_its_connection(origin_of) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"7\r\ndata: 1\r\n")
        await reader.read()  # until the client hangs up

    origin = await origin_of(endless)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        response = await pool.request("GET", {})
        assert await response.readany() == b"data: 1"
        response.release()
        second = await pool.request("GET", {})  # the only slot was freed by the close
        assert await second.readany() == b"data: 1"
        second.release()
    assert origin.connections == 2
    await pool.close()


async def test_a_cancelled_request_frees_its_slot(origin_of) -> None:
    async def silent_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if origin.connections == 1:
            await reader.read()  # never answers
            return
        writer.write(answer(b"ok"))

    origin = await origin_of(silent_first)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await pool.request("POST", {}, b"{}")
    async with asyncio.timeout(5):
        assert await (await pool.request("POST", {}, b"{}")).read() == b"ok"
    await pool.close()


async def test_a_connection_idle_past_the_keepalive_is_not_reused(origin_of) -> None:
    origin = await origin_of(echo_forever)
    pool = ConnectionPool(origin.url, limit=4, connect_timeout=2, keepalive_seconds=0.2)
    async with asyncio.timeout(5):
        assert await (await pool.request("POST", {}, b"1")).read() == b"1"
        assert await (await pool.request("POST", {}, b"2")).read() == b"2"  # at once: the same connection
        assert origin.connections == 1
        await asyncio.sleep(0.3)  # idle past the keepalive: a server may be closing it right now
        assert await (await pool.request("POST", {}, b"3")).read() == b"3"
    assert origin.connections == 2
    await pool.close()


async def test_an_unreachable_origin_is_a_connect_failure() -> None:
    pool = ConnectionPool("http://127.0.0.1:1/mcp", limit=1, connect_timeout=2)
    with pytest.raises(ConnectFailedError, match="cannot connect"):
        await pool.request("POST", {}, b"{}")
    with pytest.raises(ConnectFailedError):  # the failed attempt gave its slot back
        await pool.request("POST", {}, b"{}")


async def test_the_http_upstream_drops_connections_idle_longer_than_its_config_says() -> None:
    upstream = HttpUpstream(make_config("http://127.0.0.1:1/mcp").upstream)
    await upstream.start()
    assert upstream._pool is not None and upstream._pool.keepalive_seconds == 4.0  # below uvicorn's and Node's 5 s
    await upstream.close()
