"""Reply writing shared by the client-facing transports: the final body, and spotting the final SSE event."""

from __future__ import annotations

from typing import Any

import orjson

from proxy import jsonrpc
from proxy.context import CallContext
from proxy.net.sse_codec import SseEvent, encode_event
from proxy.reply import Reply


async def final_body(ctx: CallContext | None, reply: Reply) -> bytes:
    """The JSON body to send: the upstream's bytes unless a result hook changed the final response."""
    if reply.result_hooks and ctx is not None and ctx.is_request:
        message = reply.parsed_body()
        if message is not None:
            message, changed = await reply.apply_hooks(message)
            if changed or reply.body is None:
                return orjson.dumps(message)
    if reply.body is not None:
        return reply.body
    return orjson.dumps(reply.message) if reply.message is not None else b""


def final_response(event: SseEvent, request_id: Any) -> dict[str, Any] | None:
    """The event's message if it is the response to this request (cheap substring test first)."""
    data = event.data
    if not data or ('"result"' not in data and '"error"' not in data):
        return None
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if jsonrpc.is_response_to(message, request_id):
        return message
    return None


async def hooked_event(reply: Reply, event: SseEvent, message: dict[str, Any]) -> SseEvent:
    """The final response event after the result hooks ran (re-encoded only when a hook changed it)."""
    if not reply.result_hooks:
        reply.message = message
        return event
    message, changed = await reply.apply_hooks(message)
    if not changed:
        return event
    data = orjson.dumps(message).decode()
    return SseEvent(data=data, event=event.event, id=event.id, raw=encode_event(data, event=event.event,
                                                                                  event_id=event.id))


async def close_events(reply: Reply) -> None:
    """Stop reading the upstream's stream (after the final response: only its end was left to come)."""
    close = getattr(reply.events, "aclose", None)
    if close is not None:
        await close()
