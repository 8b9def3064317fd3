"""The upstream HTTP/1.1 connection pool against scripted origins on real sockets: reuse, limits, body framings,
streaming with back-pressure, and every way a connection can fail."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from proxy.net.connection_pool import ConnectFailedError, ConnectionBrokenError, ConnectionPool
from proxy.net.deadlines import TICK as DEADLINE_TICK
from proxy.upstream.http import HttpUpstream
from tests.kit import make_config, wait_until

pytestmark = pytest.mark.asyncio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Origin:
    """A TCP server running `handler` per connection; counts connections and the most open at once."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test ended
        finally:
            self.open_now -= 1
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/mcp"


@pytest.fixture
async def origin_of() -> AsyncIterator[Callable[[Handler], Awaitable[Origin]]]:
    started: list[asyncio.Server] = []

    async def start(handler: Handler) -> Origin:
        origin = Origin(handler)
        origin.server = await asyncio.start_server(origin._serve, "127.0.0.1", 0)
        started.append(origin.server)
        return origin

    yield start
    for server in started:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (Content-Length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        _, body = await read_request(reader)
        writer.write(answer(body, "X-Upstream: yes"))


async def test_sequential_requests_share_one_connection_and_round_trip_the_body(origin_of) -> None:
    origin = await origin_of(echo_forever)
    pool = ConnectionPool(origin.url, limit=8, connect_timeout=2)
    for number in range(20):
        response = await pool.request("POST", {"Content-Type": "application/json"}, b'{"n":%d}' % number)
        assert response.status == 200
        assert response.content_type == "application/json"
        assert ("X-Upstream", "yes") in response.headers
        assert await response.read() == b'{"n":%d}' % number
    assert origin.connections == 1
    await pool.close()


async def test_request_line_and_headers_are_what_the_origin_receives(origin_of) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        seen.append(head + body)
        writer.write(answer(b"{}"))

    origin = await origin_of(record)
    pool = ConnectionPool(origin.url + "?x=1", limit=1, connect_timeout=2)
    await (await pool.request("POST", {"Mcp-Method": "tools/call"}, b"[1]")).read()
    port = origin.url.split(":")[2].split("/")[0]
    assert seen == [f"POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: mcp-sidecar\r\n"
                    "Mcp-Method: tools/call\r\nContent-Length: 3\r\n\r\n[1]".encode()]
    await pool.close()


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


async def test_body_ending_at_close_is_complete_and_the_connection_is_not_reused(origin_of) -> None:
    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"whole\":")
        await writer.drain()
        writer.write(b"true}")

    origin = await origin_of(close_delimited)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    async with asyncio.timeout(5):
        assert await (await pool.request("POST", {}, b"{}")).read() == b'{"whole":true}'
        assert await (await pool.request("POST", {}, b"{}")).read() == b'{"whole":true}'
    assert origin.connections == 2
    await pool.close()


async def test_informational_responses_are_skipped(origin_of) -> None:
    async def early_hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + answer(b"final", status="201 Created"))

    origin = await origin_of(early_hints)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    response = await pool.request("POST", {}, b"{}")
    assert (response.status, await response.read()) == (201, b"final")
    await pool.close()


async def test_gzip_bodies_are_decoded(origin_of) -> None:
    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(gzip.compress(b'{"zipped":true}'), "Content-Encoding: gzip"))

    origin = await origin_of(gzipped)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    assert await (await pool.request("POST", {}, b"{}")).read() == b'{"zipped":true}'
    await pool.close()


async def test_invalid_http_fails_the_request(origin_of) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await reader.read()

    origin = await origin_of(garbage)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    with pytest.raises(ConnectionBrokenError, match="invalid HTTP"):
        async with asyncio.timeout(5):
            await pool.request("POST", {}, b"{}")
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


async def test_an_unreachable_origin_is_a_connect_failure() -> None:
    pool = ConnectionPool("http://127.0.0.1:1/mcp", limit=1, connect_timeout=2)
    with pytest.raises(ConnectFailedError, match="cannot connect"):
        await pool.request("POST", {}, b"{}")
    with pytest.raises(ConnectFailedError):  # the failed attempt gave its slot back
        await pool.request("POST", {}, b"{}")


async def test_line_breaks_in_headers_are_refused_before_anything_is_sent(origin_of) -> None:
    origin = await origin_of(echo_forever)
    pool = ConnectionPool(origin.url, limit=1, connect_timeout=2)
    for value in ("a\r\nX-Injected: 1", "a\nb", "a\rb"):
        with pytest.raises(ValueError, match="line break"):
            await pool.request("POST", {"X-Test": value}, b"{}")
    assert origin.connections == 0
    await pool.close()


def self_signed(directory) -> tuple[str, str]:
    """A certificate for localhost (and its key), PEM files in `directory`."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_https_origins_are_verified_against_the_trusted_certificates(tmp_path, monkeypatch) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(echo_forever, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/mcp"
    try:
        untrusting = ConnectionPool(url, limit=1, connect_timeout=2)
        with pytest.raises(ConnectFailedError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.request("POST", {}, b"{}")
        monkeypatch.setenv("SSL_CERT_FILE", cert)  # the default context trusts what OpenSSL is told to
        trusting = ConnectionPool(url, limit=1, connect_timeout=2)
        async with asyncio.timeout(5):
            assert await (await trusting.request("POST", {}, b'{"tls":1}')).read() == b'{"tls":1}'
        await trusting.close()
    finally:
        server.close()


async def test_the_http_upstream_drops_connections_idle_longer_than_its_config_says() -> None:
    upstream = HttpUpstream(make_config("http://127.0.0.1:1/mcp").upstream)
    await upstream.start()
    assert upstream._pool is not None and upstream._pool.keepalive_seconds == 4.0  # below uvicorn's and Node's 5 s
    await upstream.close()
