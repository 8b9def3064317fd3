"""SEP-1699 resumability for the conformance server: an in-memory event store and the version gate it needs."""

from __future__ import annotations

import itertools

from mcp.server import streamable_http
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.types import JSONRPCMessage


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client can resume a stream with Last-Event-ID (SEP-1699)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._events: list[tuple[str, str, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        stream = next((stream for event_id, stream, _ in self._events if event_id == last_event_id), None)
        if stream is None:
            return None
        position = int(last_event_id)
        for event_id, event_stream, message in self._events:
            if event_stream == stream and int(event_id) > position and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


def resumable_on_every_handshake_version() -> None:
    """Offer SEP-1699 resumability (priming event, mid-call stream close) whatever `mcp-protocol-version` says.

    The suite's server-sse-polling scenario negotiates 2025-11-25 but sends `mcp-protocol-version: 2025-03-26` on
    its raw requests, and the SDK gates priming and stream closing on that header. Without this the scenario's
    resumption leg (the Last-Event-ID replay a proxy must relay) never runs. Both gates live in this one module.
    """
    original = streamable_http.is_version_at_least

    def at_least(version: str, minimum: str) -> bool:
        if minimum == "2025-11-25" and version in ("2025-03-26", "2025-06-18"):
            return True
        return original(version, minimum)

    streamable_http.is_version_at_least = at_least
