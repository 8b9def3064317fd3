"""One meaning per message: the upstream receives exactly what the sidecar decided on, and a message whose meaning
depends on the reader's parser, or a request sent without an id, is refused before any stage (both eras)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.kit import RawUpstream, RunningSidecar, make_config, modern_headers, run_sidecar, start_raw_upstream

LEGACY_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                  "MCP-Protocol-Version": "2025-11-25"}
ERAS = {"modern": modern_headers("tools/call", "echo"), "legacy": LEGACY_HEADERS}


async def answer(request: web.Request, body: bytes) -> web.Response:
    message = orjson.loads(body)
    result = {"content": [{"type": "text", "text": "ok"}], "isError": False}
    return web.json_response({"jsonrpc": "2.0", "id": message.get("id"), "result": result})


@pytest.fixture
async def setup() -> AsyncIterator[tuple[RunningSidecar, RawUpstream]]:
    async with start_raw_upstream(answer) as upstream, run_sidecar(make_config(upstream.url)) as sidecar:
        yield sidecar, upstream


async def post(sidecar: RunningSidecar, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(sidecar.url, data=body, headers=headers) as response:
        return response.status, orjson.loads(await response.read())


def call(params: str, request_id: str = '"id":1,') -> bytes:
    return ('{"jsonrpc":"2.0",' + request_id + '"method":"tools/call","params":' + params + '}').encode()


@pytest.mark.parametrize("era", ERAS)
async def test_duplicate_keys_reach_the_upstream_as_they_were_decided(setup: Any, era: str) -> None:
    sidecar, upstream = setup
    body = call('{"name":"delete_everything","name":"echo","arguments":{"text":"a"}}')
    status, answered = await post(sidecar, body, ERAS[era])
    assert status == 200 and answered["result"]["isError"] is False
    (_, forwarded), = upstream.seen
    assert forwarded.count(b'"name"') == 1  # the upstream cannot read the name the sidecar did not
    assert orjson.loads(forwarded)["params"]["name"] == "echo"


async def test_escaped_keys_and_whitespace_are_forwarded_in_canonical_form(setup: Any) -> None:
    sidecar, upstream = setup
    body = b'{ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"na\\u006de": "echo", "arguments": {}} }'
    status, _ = await post(sidecar, body, ERAS["modern"])
    assert status == 200
    (_, forwarded), = upstream.seen
    assert forwarded == orjson.dumps(orjson.loads(body)) and b'"name":"echo"' in forwarded


async def test_canonical_bytes_are_forwarded_unchanged(setup: Any) -> None:
    sidecar, upstream = setup
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": "echo", "arguments": {"text": "é"}}})
    assert (await post(sidecar, body, ERAS["modern"]))[0] == 200
    assert upstream.seen[0][1] == body


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(("params", "fragment"), [
    ('{"name":"echo","Name":"delete_everything"}', "differ only by case"),
    ('{"NAME":"echo"}', "differs only by case"),
    ('{"name":"echo","arguments":{"path":"/tmp/a","Path":"/etc/passwd"}}', "differ only by case"),
])
async def test_keys_that_differ_only_by_case_are_refused(setup: Any, era: str, params: str, fragment: str) -> None:
    sidecar, upstream = setup
    status, answered = await post(sidecar, call(params), ERAS[era])
    assert status == 400 and answered["error"]["code"] == -32600 and fragment in answered["error"]["message"]
    assert upstream.seen == []


async def test_a_case_variant_of_an_envelope_key_is_refused(setup: Any) -> None:
    sidecar, upstream = setup
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{}}'
    status, answered = await post(sidecar, body, modern_headers("tools/list"))
    assert status == 400 and answered["error"]["code"] == -32600
    assert upstream.seen == []


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("request_id", ["", '"id":null,'])
async def test_a_request_without_an_id_is_refused_and_never_forwarded(setup: Any, era: str, request_id: str) -> None:
    sidecar, upstream = setup
    status, answered = await post(sidecar, call('{"name":"echo","arguments":{}}', request_id), ERAS[era])
    assert status == 400 and answered["error"]["code"] == -32600
    assert upstream.seen == []


async def test_notifications_still_pass(setup: Any) -> None:
    sidecar, upstream = setup
    note = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    async with aiohttp.ClientSession() as http, http.post(sidecar.url, data=note, headers=LEGACY_HEADERS) as response:
        assert response.status < 300
    assert [body for _, body in upstream.seen] == [note]
