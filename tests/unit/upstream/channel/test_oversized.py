"""Which call an over-long message answered, from its first and last bytes only."""

from __future__ import annotations

import pytest

from proxy.upstream.channel.oversized import NOT_A_RESPONSE, UNKNOWN, oversized_response_id

BIG = b'{"content":[{"type":"text","text":"xxxx'


@pytest.mark.parametrize(("head", "tail", "expected"), [
    (b'{"jsonrpc":"2.0","id":7,"result":' + BIG, b'xx"}]}}', 7),  # the Python SDK's order
    (b'{"id": 7, "jsonrpc": "2.0", "error": {"data": "', b'"}}', 7),
    (b'{"result":' + BIG, b'xx"}]},"jsonrpc":"2.0","id":12}\n', 12),  # the TypeScript SDK's order
    (b'{"result":' + BIG, b'xx"}],"id":12}}', UNKNOWN),  # an id inside the result names no call
    (b'{"result":' + BIG, b'xx"}]},"id":12,"note":1}', UNKNOWN),
    (b'{"jsonrpc":"2.0","id":"a","result":' + BIG, b'}', UNKNOWN),  # the channel's own ids are integers
    (b'{"method":"notifications/message","params":{"data":"', b'"}}', NOT_A_RESPONSE),
    (b'{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":', b'}}', NOT_A_RESPONSE),
    (b"Loading weights.......", b"......", NOT_A_RESPONSE),  # no JSON object: nobody's answer
])
def test_the_call_is_told_only_when_the_id_is_a_top_level_member(head: bytes, tail: bytes, expected: object) -> None:
    assert oversized_response_id(head, tail) == expected
