"""TLS over real sockets, with trustme certificates: the SDK client through the sidecar's HTTPS listener, mutual
TLS accepted and refused, a certificate rotated under an open keep-alive connection (and with workers), old
protocol versions refused. HTTPS upstreams: test_upstream_tls.py."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import orjson
import pytest
import uvloop
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from proxy.config.base import parse_host_port
from proxy.net.listener import HttpRequest, HttpResponse, HttpServer, Routes
from proxy.net.tls import ServerTls
from tests.integration.test_workers import SIDECAR_ENV, socket_count, worker_pids
from tests.kit import (
    RunningSidecar,
    make_config,
    modern_headers,
    modern_request,
    run_sidecar,
    serve_workers,
    wait_until,
)
from tests.raw_http import read_reply, request
from tests.tls_kit import Pki, connect_tls, copy_over, der_of, peer_certificate


def port_of(sidecar: RunningSidecar) -> int:
    return parse_host_port(sidecar.config.server.listen)[1]


def add_call(a: int, b: int) -> bytes:
    body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {"a": a, "b": b}}))
    headers = {name.replace("-", "_"): value for name, value in modern_headers("tools/call", "add").items()}
    return request("POST", "/mcp", body, **headers)


# the sidecar's HTTPS listener


@pytest.mark.parametrize(("upstream", "mode"), [("stateful", "legacy"), ("stateless", "2026-07-28")])
async def test_the_sdk_client_calls_through_the_https_listener(
        pki: Pki, upstream: str, mode: str, request: pytest.FixtureRequest) -> None:
    cert_file, key_file = pki.issue("sidecar")
    config = make_config(request.getfixturevalue(f"{upstream}_upstream"),
                         server__tls={"cert_file": cert_file, "key_file": key_file})
    assert config.server.resource_url.startswith("https://")
    async with run_sidecar(config) as sidecar, httpx2.AsyncClient(verify=pki.client()) as http, \
            Client(streamable_http_client(sidecar.url, http_client=http), mode=mode, cache=None) as client:
        added = await client.call_tool("add", {"a": 2, "b": 40})
        tools = await client.list_tools()
    assert added.structured_content == {"result": 42}
    assert "add" in {tool.name for tool in tools.tools}


@pytest.fixture
async def mutual(pki: Pki, client_pki: Pki, stateless_upstream: str) -> AsyncIterator[RunningSidecar]:
    cert_file, key_file = pki.issue("sidecar")
    tls = {"cert_file": cert_file, "key_file": key_file, "client_ca_file": client_pki.ca_file}
    async with run_sidecar(make_config(stateless_upstream, server__tls=tls)) as sidecar:
        yield sidecar


async def test_mutual_tls_accepts_a_client_certificate_its_ca_signed(
        mutual: RunningSidecar, pki: Pki, client_pki: Pki) -> None:
    reader, writer = await connect_tls(port_of(mutual), pki.client(client_pki.issue("agent", "agent.example")))
    writer.write(add_call(1, 2))
    reply = await read_reply(reader)
    assert orjson.loads(reply.body)["result"]["structuredContent"] == {"result": 3}
    writer.close()


@pytest.mark.parametrize("shown", ["none", "another-ca"])
async def test_mutual_tls_refuses_a_client_without_a_certificate_its_ca_signed(
        mutual: RunningSidecar, pki: Pki, tmp_path: Path, shown: str) -> None:
    certificate = Pki.create(tmp_path, "strangers").issue("stranger", "agent.example") if shown != "none" else None
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        # TLS 1.3: the client's side of the handshake ends first; the refusal is an alert on its first read
        reader, writer = await connect_tls(port_of(mutual), pki.client(certificate))
        writer.write(add_call(1, 2))
        await read_reply(reader)


# the listener's TLS on its own: rotation and protocol versions


async def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text(200, "ok")


@contextlib.asynccontextmanager
async def https_listener(tls: ServerTls) -> AsyncIterator[int]:
    routes = Routes()
    routes.add("GET", "/ok", ok)
    server = HttpServer(routes, max_body_bytes=1024, tls=tls.listening)
    await server.listen("127.0.0.1", 0)
    try:
        yield server.ports[0]
    finally:
        await server.drain(1.0)


async def fetch_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(request("GET", "/ok"))
    return (await read_reply(reader)).status


async def rotation_keeps_open_connections_and_serves_new_ones_the_new_certificate(pki: Pki) -> None:
    cert_file, key_file = pki.issue("server")
    first = der_of(cert_file)
    async with https_listener(ServerTls(cert_file, key_file)) as port:
        old = await connect_tls(port, pki.client())
        assert await fetch_ok(*old) == 200
        pki.issue("server")  # rotated: both files replaced on disk
        rotated = der_of(cert_file)
        new = await connect_tls(port, pki.client())
        assert peer_certificate(new[1]) == rotated != first
        assert await fetch_ok(*new) == 200
        assert await fetch_ok(*old) == 200  # the open keep-alive connection kept working, on its certificate
        assert peer_certificate(old[1]) == first
        for _, writer in (old, new):
            writer.close()


async def test_a_rotated_certificate_serves_new_connections_and_open_ones_keep_working(
        pki: Pki, rotation_checked_on_every_handshake: None) -> None:
    await rotation_keeps_open_connections_and_serves_new_ones_the_new_certificate(pki)


def test_rotation_on_uvloop(pki: Pki, rotation_checked_on_every_handshake: None) -> None:
    uvloop.run(asyncio.wait_for(rotation_keeps_open_connections_and_serves_new_ones_the_new_certificate(pki), 10))


async def test_a_half_rotated_pair_keeps_the_last_good_certificate(
        pki: Pki, rotation_checked_on_every_handshake: None) -> None:
    cert_file, key_file = pki.issue("server")
    first = der_of(cert_file)
    next_cert, next_key = pki.issue("next")
    async with https_listener(ServerTls(cert_file, key_file)) as port:
        copy_over(next_key, key_file)  # the key first: it does not match the certificate
        half = await connect_tls(port, pki.client())
        assert peer_certificate(half[1]) == first
        copy_over(next_cert, cert_file)
        whole = await connect_tls(port, pki.client())
        assert peer_certificate(whole[1]) == der_of(next_cert)
        for _, writer in (half, whole):
            writer.close()


async def test_the_certificate_files_are_checked_at_most_once_per_interval(pki: Pki) -> None:
    cert_file, key_file = pki.issue("server")
    first = der_of(cert_file)
    async with https_listener(ServerTls(cert_file, key_file)) as port:
        pki.issue("server")
        soon = await connect_tls(port, pki.client())  # within CHECK_SECONDS of the start: not looked at yet
        assert peer_certificate(soon[1]) == first
        soon[1].close()


def tls_1_1_client(pki: Pki) -> ssl.SSLContext:
    context = pki.client()
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 offers TLS 1.1 only at security level 0
    return context


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
async def test_tls_1_1_is_refused_and_1_2_accepted(pki: Pki) -> None:
    cert_file, key_file = pki.issue("server")
    await skip_unless_tls_1_1_can_be_spoken(pki, cert_file, key_file)
    async with https_listener(ServerTls(cert_file, key_file)) as port:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):  # an alert, or the handshake cut
            await connect_tls(port, tls_1_1_client(pki))
        tls_1_2 = pki.client()
        tls_1_2.maximum_version = ssl.TLSVersion.TLSv1_2
        reader, writer = await connect_tls(port, tls_1_2)
        assert await fetch_ok(reader, writer) == 200
        writer.close()


async def skip_unless_tls_1_1_can_be_spoken(pki: Pki, cert_file: str, key_file: str) -> None:
    """The refusal means something only if this OpenSSL can speak TLS 1.1 at all: try it on a lenient server."""
    lenient = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    lenient.minimum_version = ssl.TLSVersion.TLSv1
    lenient.set_ciphers("DEFAULT:@SECLEVEL=0")
    lenient.load_cert_chain(cert_file, key_file)
    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0, ssl=lenient)
    try:
        _, writer = await connect_tls(server.sockets[0].getsockname()[1], tls_1_1_client(pki))
        writer.close()
    except ssl.SSLError as error:
        pytest.skip(f"this OpenSSL cannot speak TLS 1.1 at all: {error}")
    finally:
        server.close()


# workers


async def test_with_workers_each_one_serves_https_and_picks_up_a_rotated_certificate(
        pki: Pki, stateless_upstream: str) -> None:
    cert_file, key_file = pki.issue("sidecar")
    env = {**SIDECAR_ENV, "MCP_SIDECAR__SERVER__TLS__CERT_FILE": cert_file,
           "MCP_SIDECAR__SERVER__TLS__KEY_FILE": key_file}
    with serve_workers(stateless_upstream, env) as workers:
        port = urlsplit(workers.url).port
        await wait_until(lambda: len(worker_pids(workers.process.pid)) == 2, timeout=10)
        first = der_of(cert_file)
        assert await certificates_seen(port, pki, 4) == [first] * 4
        pki.issue("sidecar")
        rotated = der_of(cert_file)
        # every worker looks at the files at most a second after its last look
        await wait_until(lambda: seen_only(port, pki, rotated), timeout=5, interval=0.1)
        pids = worker_pids(workers.process.pid)
        before = {pid: socket_count(pid) for pid in pids}
        held = [await connect_tls(port, pki.client()) for _ in range(20)]  # all on one worker: odds 2**-19
        try:
            assert {peer_certificate(writer) for _, writer in held} == {rotated}
            assert all(socket_count(pid) > before[pid] for pid in pids)  # both workers took some
            reader, writer = held[0]
            writer.write(add_call(20, 22))
            assert orjson.loads((await read_reply(reader)).body)["result"]["structuredContent"] == {"result": 42}
        finally:
            for _, writer in held:
                writer.close()


async def certificates_seen(port: int, pki: Pki, count: int) -> list[bytes]:
    seen = []
    for _ in range(count):
        _, writer = await connect_tls(port, pki.client())
        seen.append(peer_certificate(writer))
        writer.close()
    return seen


async def seen_only(port: int, pki: Pki, certificate: bytes) -> bool:
    return set(await certificates_seen(port, pki, 8)) == {certificate}


async def echo_size(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text(413 if request.body_too_large else 200, str(len(request.body)))


async def refusal_reaches_a_client_still_sending(pki: Pki) -> None:
    routes = Routes()
    routes.add("POST", "/upload", echo_size)
    server = HttpServer(routes, max_body_bytes=1024, tls=ServerTls(*pki.issue("server")).listening)
    await server.listen("127.0.0.1", 0)
    try:
        reader, writer = await connect_tls(server.ports[0], pki.client())
        writer.write(request("POST", "/upload", Content_Length=str(64 * 1024 * 1024)))
        for _ in range(40):  # the body keeps coming, from a client that does not read before it has sent it all
            writer.write(b"x" * 64 * 1024)
            await asyncio.sleep(0.002)
        reply = await read_reply(reader)
        assert (reply.status, reply.headers["connection"]) == (413, "close")
        writer.close()
    finally:
        await server.drain(1.0)


async def test_a_refusal_over_tls_reaches_a_client_still_sending(pki: Pki) -> None:
    """TLS has no half close (no write_eof to linger with): the transport's own close (close_notify, then reading
    until the client's) keeps the unread body from resetting the connection and taking the 413 with it."""
    await refusal_reaches_a_client_still_sending(pki)


def test_a_refusal_over_tls_reaches_a_client_still_sending_on_uvloop(pki: Pki) -> None:
    uvloop.run(asyncio.wait_for(refusal_reaches_a_client_still_sending(pki), 10))
