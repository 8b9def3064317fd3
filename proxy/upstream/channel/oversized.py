"""Which call an over-long message answered, from the only parts of it kept: its first and last bytes.

A message longer than `upstream.max_event_bytes` is never parsed whole. A response names its call by a top-level
`id`, which serializers put either before the result (`{"jsonrpc":"2.0","id":7,"result":...`, Python SDK) or
after it (`{"result":...,"jsonrpc":"2.0","id":7}`, TypeScript SDK). Only those two shapes are read; anything else
that is an object may be a response no one can tell apart, so every call then in flight on the channel is failed
(each could be the one whose answer was lost, and none is left waiting out its timeout).
"""

from __future__ import annotations

import re
from typing import Literal

# `"jsonrpc":"2.0"` or `"id":<integer>` (the channel's own ids are integers), as one top-level member.
_SCALAR_MEMBER = rb'\s*"(jsonrpc|id)"\s*:\s*("2\.0"|-?\d+)\s*'
_HEAD = re.compile(rb'\s*\{((?:' + _SCALAR_MEMBER + rb',)*)\s*"(result|error|method|params)"')
_TAIL = re.compile(rb'((?:,' + _SCALAR_MEMBER + rb')+)\}\s*$')
_MEMBER = re.compile(_SCALAR_MEMBER)

NOT_A_RESPONSE: Literal["not a response"] = "not a response"
UNKNOWN: Literal["unknown"] = "unknown"


def oversized_response_id(head: bytes, tail: bytes) -> int | Literal["not a response", "unknown"]:
    """The channel id of the call an over-long message answers; NOT_A_RESPONSE for a server request or
    notification, or for a line that is no JSON object at all; UNKNOWN when it cannot be told."""
    if not head.lstrip().startswith(b"{"):
        return NOT_A_RESPONSE
    opening = _HEAD.match(head)
    if opening is None:
        return UNKNOWN
    if opening.group(4) in (b"method", b"params"):  # a server request or notification: no call's answer
        return NOT_A_RESPONSE
    found = _ids(opening.group(1))
    if not found:
        closing = _TAIL.search(tail)
        found = _ids(closing.group(1)) if closing is not None else []
    return found[0] if len(found) == 1 else UNKNOWN


def _ids(members: bytes) -> list[int]:
    return [int(value) for key, value in _MEMBER.findall(members) if key == b"id"]
