"""HTTPS upstreams, with trustme certificates over real sockets: verified against the configured CA (Streamable
HTTP through the connection pool, legacy SSE through aiohttp), shown the configured client certificate, and a CA
file replaced on disk trusted by the next connection."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from aiohttp import web

from proxy.net.connection_pool import ConnectFailedError, ConnectionPool
from proxy.net.tls import reloading_client_context
from tests.integration.test_legacy_sse import sse_server
from tests.integration.test_tls import add_call, port_of
from tests.kit import RunningSidecar, make_config, modern_request, run_sidecar, start_raw_upstream
from tests.raw_http import WAIT, read_reply
from tests.tls_kit import Pki, copy_over, tls_front


async def answer_add(request: web.Request, body: bytes) -> web.Response:
    message = orjson.loads(body)
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    shown = ",".join(name for _, name in peer.get("subjectAltName", ())) if peer else ""  # the client's names
    result = {"content": [{"type": "text", "text": shown}], "structuredContent": {"client": shown}}
    return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": result})


def upstream_context(pki: Pki, client_ca_file: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki.issue("upstream"))
    if client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca_file)
    return context


async def call_through(sidecar: RunningSidecar) -> tuple[int, dict]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port_of(sidecar)), WAIT)
    writer.write(add_call(1, 2))
    reply = await read_reply(reader)
    writer.close()
    return reply.status, orjson.loads(reply.body)


@pytest.mark.parametrize("trusted", [True, False], ids=["custom-ca", "system-cas"])
async def test_an_https_upstream_is_verified_against_the_configured_ca(pki: Pki, trusted: bool) -> None:
    async with start_raw_upstream(answer_add, upstream_context(pki)) as upstream:
        tls = {"ca_file": pki.ca_file} if trusted else {}
        async with run_sidecar(make_config(upstream.url, upstream__tls=tls)) as sidecar:
            status, answer = await call_through(sidecar)
    if trusted:
        assert (status, answer["result"]["structuredContent"]) == (200, {"client": ""})
    else:
        assert status == 502 and upstream.seen == []  # its certificate is not one the system's CAs signed


@pytest.mark.parametrize("shown", [True, False], ids=["client-certificate", "none"])
async def test_an_upstream_requiring_a_client_certificate_is_shown_the_configured_one(
        pki: Pki, client_pki: Pki, shown: bool) -> None:
    async with start_raw_upstream(answer_add, upstream_context(pki, client_ca_file=client_pki.ca_file)) as upstream:
        tls = {"ca_file": pki.ca_file}
        if shown:
            cert_file, key_file = client_pki.issue("sidecar-client", "sidecar.example")
            tls |= {"cert_file": cert_file, "key_file": key_file}
        async with run_sidecar(make_config(upstream.url, upstream__tls=tls)) as sidecar:
            status, answer = await call_through(sidecar)
    if shown:
        assert (status, answer["result"]["structuredContent"]) == (200, {"client": "sidecar.example"})
    else:
        assert status == 502 and upstream.seen == []


async def test_a_replaced_upstream_ca_file_is_trusted_by_the_next_connection(
        pki: Pki, tmp_path: Path, rotation_checked_on_every_handshake: None) -> None:
    ca_file = str(tmp_path / "upstream-ca.pem")
    copy_over(Pki.create(tmp_path, "outdated").ca_file, ca_file)  # not the CA that signed the upstream's certificate
    call = orjson.dumps(modern_request("tools/call", {"name": "add"}))
    async with start_raw_upstream(answer_add, upstream_context(pki)) as upstream:
        pool = ConnectionPool(upstream.url, limit=1, connect_timeout=2, tls=reloading_client_context(ca_file))
        try:
            with pytest.raises(ConnectFailedError, match="CERTIFICATE_VERIFY_FAILED"):
                await pool.request("POST", {}, call, within=WAIT)
            copy_over(pki.ca_file, ca_file)
            response = await pool.request("POST", {}, call, within=WAIT)
            assert response.status == 200 and orjson.loads(await response.read())["id"] == 1
        finally:
            await pool.close()


@pytest.mark.parametrize("trusted", [True, False], ids=["custom-ca", "system-cas"])
async def test_a_legacy_sse_upstream_over_https_is_verified_against_the_configured_ca(pki: Pki, trusted: bool) -> None:
    with sse_server() as plain:
        async with tls_front(urlsplit(plain).port, upstream_context(pki)) as port:
            tls = {"ca_file": pki.ca_file} if trusted else {}
            config = make_config(None, upstream__sse_url=f"https://127.0.0.1:{port}/sse", upstream__tls=tls,
                                 upstream__timeout_seconds=1)
            async with run_sidecar(config) as sidecar:
                status, answer = await call_through(sidecar)
                ready, detail = await sidecar.app.deps.upstream.readiness()
    if trusted:
        assert (status, answer["result"]["structuredContent"]) == (200, {"result": 3})
    else:
        assert status >= 500 and "error" in answer
        assert not ready and "CertificateError" in detail, detail
