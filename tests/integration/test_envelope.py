"""What the sidecar itself answers for bad input, exactly as the client receives it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from tests.kit import RunningSidecar, make_config, modern_headers, modern_request, run_sidecar

pytestmark = pytest.mark.usefixtures("stateless_upstream")


@pytest.fixture
async def sidecar(stateless_upstream: str) -> AsyncIterator[RunningSidecar]:
    config = make_config(stateless_upstream, server__allowed_origins=["https://app.example"],
                         server__max_body_bytes=2048)
    async with run_sidecar(config) as running:
        yield running


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status, orjson.loads(await response.read())


async def test_malformed_json_is_a_parse_error(sidecar: RunningSidecar) -> None:
    status, body = await post(sidecar.url, b'{"jsonrpc": "2.0", "id": 1,', modern_headers("tools/list"))
    assert status == 400
    assert body["id"] is None and body["error"]["code"] == -32700


@pytest.mark.parametrize("payload", [b'"just a string"', b'{"jsonrpc": "1.0", "id": 1, "method": "x"}',
                                     b'{"jsonrpc": "2.0", "id": 1, "method": 7}',
                                     b'{"jsonrpc": "2.0", "id": [1], "method": "tools/list"}',
                                     b'{"jsonrpc": "2.0", "id": 1}'])
async def test_invalid_envelope_is_an_invalid_request(sidecar: RunningSidecar, payload: bytes) -> None:
    status, body = await post(sidecar.url, payload, modern_headers("tools/list"))
    assert status == 400
    assert body["error"]["code"] == -32600


async def test_batches_are_refused_as_invalid_requests(sidecar: RunningSidecar) -> None:
    batch = orjson.dumps([modern_request("tools/list"), modern_request("tools/list", request_id=2)])
    status, body = await post(sidecar.url, batch, modern_headers("tools/list"))
    assert status == 400
    assert body["error"]["code"] == -32600 and "batch" in body["error"]["message"]


@pytest.mark.parametrize(("headers", "fragment"), [
    (modern_headers("tools/list", "add"), "Mcp-Method"),
    (modern_headers("tools/call", "echo"), "Mcp-Name"),
    ({**modern_headers("tools/call"), "Mcp-Name": "=?base64?ZWNobw==?="}, "Mcp-Name"),
    ({k: v for k, v in modern_headers("tools/call", "add").items() if k != "Mcp-Method"}, "required"),
])
async def test_modern_header_mismatch_is_refused_before_any_stage(sidecar: RunningSidecar, headers: dict[str, str],
                                                                  fragment: str) -> None:
    body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, request_id=9))
    status, answer = await post(sidecar.url, body, headers)
    assert status == 400
    assert answer["id"] == 9
    assert answer["error"]["code"] == -32020 and fragment in answer["error"]["message"]


async def test_base64_encoded_name_header_is_accepted(sidecar: RunningSidecar) -> None:
    body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}))
    headers = {**modern_headers("tools/call"), "Mcp-Name": "=?base64?YWRk?="}
    status, answer = await post(sidecar.url, body, headers)
    assert status == 200 and answer["result"]["structuredContent"] == {"result": 3}


async def test_foreign_origin_is_forbidden_and_listed_origin_is_allowed(sidecar: RunningSidecar) -> None:
    body = orjson.dumps(modern_request("tools/list"))
    status, answer = await post(sidecar.url, body, {**modern_headers("tools/list"), "Origin": "http://evil.example"})
    assert status == 403 and "evil.example" in answer["error"]["message"]
    status, answer = await post(sidecar.url, body, {**modern_headers("tools/list"), "Origin": "https://app.example"})
    assert status == 200 and "tools" in answer["result"]


async def test_oversized_body_is_refused(sidecar: RunningSidecar) -> None:
    huge = orjson.dumps(modern_request("tools/call", {"name": "echo", "arguments": {"text": "x" * 4096}}))
    status, answer = await post(sidecar.url, huge, modern_headers("tools/call", "echo"))
    assert status == 413 and answer["error"]["code"] == -32600


async def test_wrong_content_type_is_refused(sidecar: RunningSidecar) -> None:
    body = orjson.dumps(modern_request("tools/list"))
    status, answer = await post(sidecar.url, body, {**modern_headers("tools/list"), "Content-Type": "text/plain"})
    assert status == 415 and "application/json" in answer["error"]["message"]


async def test_health_and_readiness(sidecar: RunningSidecar) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(sidecar.admin_url + "/healthz") as response:
            assert response.status == 200
        async with http.get(sidecar.admin_url + "/readyz") as response:
            report = await response.json()
    assert response.status == 200 and report["checks"]["upstream"]["ok"] is True


async def test_readiness_fails_when_the_upstream_is_down() -> None:
    async with run_sidecar(make_config("http://127.0.0.1:9/mcp")) as sidecar, aiohttp.ClientSession() as http:
        async with http.get(sidecar.admin_url + "/readyz") as response:
            report = await response.json()
    assert response.status == 503 and report["ready"] is False


async def test_own_origin_is_allowed_without_listing_it(sidecar: RunningSidecar) -> None:
    """The conformance suite's dns-rebinding-protection scenario: the sidecar's own loopback origin is same-origin."""
    body = orjson.dumps(modern_request("tools/list"))
    port = sidecar.config.server.listen.rsplit(":", 1)[1]
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        status, answer = await post(sidecar.url, body, {**modern_headers("tools/list"), "Origin": origin})
        assert status == 200 and "tools" in answer["result"], origin
    status, answer = await post(sidecar.url, body, {**modern_headers("tools/list"), "Origin": f"http://evil.example:{port}"})
    assert status == 403 and "evil.example" in answer["error"]["message"]
