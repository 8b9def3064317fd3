"""The way back, one for every client-facing transport: a Reply becomes what the client receives.

The Relay finds the request's final response, runs the stages' reply hooks by the contract written in
proxy/pipeline.py, ends the client's stream with the final response, and finishes the reply once. Whether it has
seen the final response, and whether it left the upstream's stream before its end, are its own state; when it
finishes it records on the Reply what the done callbacks read (the final message, a broken stream's error, and
`final_relayed` for the upstream's release).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from proxy import jsonrpc
from proxy.context import CallContext
from proxy.errors import UpstreamError, error_reply
from proxy.net.sse_codec import SseEvent, encode_event
from proxy.reply import Reply


class Relay:
    __slots__ = ("_ctx", "_ended_early", "_final_seen", "_finished", "_stream_error", "reply")

    def __init__(self, ctx: CallContext | None, reply: Reply) -> None:
        self._ctx = ctx if ctx is not None and ctx.is_request else None  # only a request has a final response
        self.reply = reply
        self._final_seen = False
        self._ended_early = False
        self._stream_error: str | None = None
        self._finished = False

    async def body(self) -> bytes:
        """The whole JSON answer: the upstream's bytes as they came unless a result hook changed the final response."""
        reply = self.reply
        if reply.result_hooks and self._ctx is not None:
            message = reply.parsed_body()
            if message is not None:
                message, changed = await reply.apply_hooks(message)
                if changed or reply.body is None:
                    return orjson.dumps(message)
        if reply.body is not None:
            return reply.body
        return orjson.dumps(reply.message) if reply.message is not None else b""

    async def events(self) -> AsyncIterator[tuple[SseEvent, bool]]:
        """The reply's events as relayed, each with whether it is the client's last: observers told of every event,
        result hooks run on the request's final response, and an error event in its place if the upstream's stream
        broke before it. A request's stream ends with its final response (the upstream only has its end of stream
        left to send), unless every event had already arrived (then the rest goes out with it)."""
        reply = self.reply
        assert reply.events is not None
        try:
            async for event in reply.events:
                if reply.event_observers:
                    await reply.notify_observers(event)
                if not self._final_seen and self._ctx is not None:
                    final = _final_response(event, self._ctx.request_id)
                    if final is not None:
                        self._final_seen = True
                        event = await self._hooked(event, final)
                        self._ended_early = not reply.stream_buffered
                        yield event, self._ended_early
                        if self._ended_early:
                            return
                        continue
                yield event, False
        except UpstreamError as error:
            if self._ctx is None or self._final_seen:
                return
            self._stream_error = error.message
            failed = error_reply(error, self._ctx)
            yield SseEvent(data=orjson.dumps(failed.message).decode()), True

    @property
    def final_message(self) -> dict[str, Any] | None:
        """The final response as it went out (after the hooks), once relayed."""
        return self.reply.message

    async def finish(self) -> None:
        """Stop reading an upstream stream left before its end, then release the reply and run its done callbacks.
        Runs once, whatever calls it again."""
        if self._finished:
            return
        self._finished = True
        reply = self.reply
        reply.final_relayed = self._ended_early
        if self._stream_error is not None:
            reply.stream_error = self._stream_error
        try:
            if self._ended_early:
                close = getattr(reply.events, "aclose", None)
                if close is not None:
                    await close()
        finally:
            await reply.finish()

    async def _hooked(self, event: SseEvent, message: dict[str, Any]) -> SseEvent:
        """The final response event after the result hooks ran (re-encoded only when a hook changed it)."""
        reply = self.reply
        if not reply.result_hooks:
            reply.message = message
            return event
        message, changed = await reply.apply_hooks(message)
        if not changed:
            return event
        data = orjson.dumps(message).decode()
        return SseEvent(data=data, event=event.event, id=event.id,
                        raw=encode_event(data, event=event.event, event_id=event.id))


def _final_response(event: SseEvent, request_id: Any) -> dict[str, Any] | None:
    """The event's message if it is the response to this request (cheap substring test first)."""
    data = event.data
    if not data or ('"result"' not in data and '"error"' not in data):
        return None
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return message if jsonrpc.is_response_to(message, request_id) else None
