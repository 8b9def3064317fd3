from __future__ import annotations

import pytest

from proxy import jsonrpc


@pytest.mark.parametrize(("body", "code"), [
    (b"{", jsonrpc.PARSE_ERROR),
    (b"", jsonrpc.PARSE_ERROR),
    (b"[]", jsonrpc.INVALID_REQUEST),
    (b"3", jsonrpc.INVALID_REQUEST),
    (b'{"id": 1, "method": "x"}', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": true, "method": "x"}', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "x", "params": 5}', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 1}', jsonrpc.INVALID_REQUEST),
])
def test_bad_messages_get_the_prescribed_code(body: bytes, code: int) -> None:
    with pytest.raises(jsonrpc.MessageError) as caught:
        jsonrpc.parse_message(body)
    assert caught.value.code == code


@pytest.mark.parametrize("body", [
    b'{"jsonrpc": "2.0", "id": "a", "method": "tools/list"}',
    b'{"jsonrpc": "2.0", "method": "notifications/initialized"}',
    b'{"jsonrpc": "2.0", "id": 4, "result": {}}',
    b'{"jsonrpc": "2.0", "id": 4, "error": {"code": 1, "message": "m"}}',
])
def test_valid_messages_parse(body: bytes) -> None:
    assert jsonrpc.parse_message(body)["jsonrpc"] == "2.0"


def test_tool_error_result_shape() -> None:
    assert jsonrpc.tool_error_result("no") == {"content": [{"type": "text", "text": "no"}], "isError": True}


@pytest.mark.parametrize("body", [b'{"jsonrpc":"2.0","method":"tools/call","params":{}}',
                                  b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}'])
def test_a_request_needs_a_string_or_integer_id(body: bytes) -> None:
    with pytest.raises(jsonrpc.MessageError) as raised:
        jsonrpc.parse_message(body)
    assert raised.value.code == jsonrpc.INVALID_REQUEST


def test_notifications_and_null_id_error_responses_parse() -> None:
    assert jsonrpc.parse_message(b'{"jsonrpc":"2.0","method":"notifications/cancelled"}')["method"]
    assert jsonrpc.parse_message(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}')["id"] is None
