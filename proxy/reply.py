"""The Reply a pipeline returns: one JSON body, a raw body, or a stream of SSE events.

Stages that need the final JSON-RPC response (to filter a list, store a cache entry, see `isError`) register
hooks instead of reading the body themselves, so a streamed reply is still relayed event by event. When each kind
of hook runs and what it may change is written once, in proxy/pipeline.py; proxy/transport/relay.py runs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy import jsonrpc
from proxy.net.sse_codec import SseEvent

ResultHook = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
DoneCallback = Callable[["Reply"], Awaitable[None] | None]
EventObserver = Callable[[SseEvent], Awaitable[None] | None]

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


@dataclass(slots=True)
class Reply:
    # What the upstream (or a stage answering itself) produced: one of body, message or events.
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    events: AsyncIterator[SseEvent] | None = None
    stream_buffered: bool = False  # every event of `events` has arrived: they can be written at once
    release: Callable[[], Awaitable[None] | None] | None = None  # frees the upstream response
    # The stages' hooks (proxy/pipeline.py says when each runs).
    result_hooks: list[ResultHook] = field(default_factory=list)
    done_callbacks: list[DoneCallback] = field(default_factory=list)
    event_observers: list[EventObserver] = field(default_factory=list)
    # The outcome, recorded by the Relay: the final JSON-RPC response (also a JSON reply's own message), the error
    # of a stream that broke before it, and whether the final response ended the client's stream early.
    message: dict[str, Any] | None = None
    stream_error: str | None = None
    final_relayed: bool = False

    @classmethod
    def json(cls, message: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, headers={"Content-Type": JSON, **(headers or {})}, message=message)

    @classmethod
    def empty(cls, status: int = 202, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, headers=dict(headers or {}), body=b"")

    @property
    def content_type(self) -> str:
        for name, value in self.headers.items():
            if name.lower() == "content-type":
                return value.split(";", 1)[0].strip().lower()
        return ""

    @property
    def is_stream(self) -> bool:
        return self.events is not None

    def add_result_hook(self, hook: ResultHook) -> None:
        self.result_hooks.append(hook)

    def on_done(self, callback: DoneCallback) -> None:
        self.done_callbacks.append(callback)

    def observe_events(self, observer: EventObserver) -> None:
        """Watch every SSE event before it is relayed (server notifications included); read-only."""
        self.event_observers.append(observer)

    async def notify_observers(self, event: SseEvent) -> None:
        for observer in self.event_observers:
            outcome = observer(event)
            if outcome is not None:  # a coroutine (the types allow nothing else)
                await outcome

    def adopt(self, inner: Reply) -> None:
        """Go on as `inner` once this reply's stream is already open (its events are then inner's). Inner's hooks and
        observers run first, as an inner stage's do. Finishing this reply finishes inner first, whose own done
        callbacks then see inner, told the final response and any stream error."""
        self.result_hooks[:0] = inner.result_hooks
        self.event_observers[:0] = inner.event_observers

        async def finish_inner(outer: Reply) -> None:
            if inner.message is None:
                inner.message = outer.message
            inner.stream_error = outer.stream_error
            inner.final_relayed = outer.final_relayed
            await inner.finish()

        self.done_callbacks.insert(0, finish_inner)

    def parsed_body(self) -> dict[str, Any] | None:
        """The JSON body as a message, if it is one; parsed at most once."""
        if self.message is None and self.body and self.content_type == JSON:
            try:
                parsed = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                return None
            if isinstance(parsed, dict):
                self.message = parsed
        return self.message

    async def apply_hooks(self, message: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Run the result hooks over the final response; report whether any changed it."""
        changed = False
        for hook in self.result_hooks:
            replacement = await hook(message)
            if replacement is not None:
                message, changed = replacement, True
        self.message = message
        return message, changed

    async def read_final(self, request_id: Any) -> dict[str, Any] | None:
        """Consume the reply (for the sidecar's own requests) and return the response to request_id, if any."""
        try:
            if self.events is None:
                return self.parsed_body()
            async for event in self.events:
                if not event.data:
                    continue
                try:
                    message = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    continue
                if jsonrpc.is_response_to(message, request_id):
                    self.message = message
                    return message
            return None
        finally:
            await self.finish()

    async def finish(self) -> None:
        """Release the upstream and run done callbacks; called exactly once by the transport."""
        try:
            if self.release is not None:
                outcome = self.release()
                if outcome is not None:  # a coroutine (the types allow nothing else)
                    await outcome
        finally:
            for callback in self.done_callbacks:
                outcome = callback(self)
                if outcome is not None:  # a coroutine (the types allow nothing else)
                    await outcome

