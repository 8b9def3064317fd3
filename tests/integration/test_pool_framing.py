"""The upstream HTTP/1.1 connection pool against scripted origins on real sockets: what goes on the wire and how
answers are read (keep-alive reuse, the request's bytes, body framings, 1xx, gzip, invalid HTTP, TLS)."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from proxy.net.connection_pool import ConnectFailedError, ConnectionBrokenError, ConnectionPool
from tests.integration.pool_support import answer, echo_forever, read_request

pytestmark = pytest.mark.asyncio


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
