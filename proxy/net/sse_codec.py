"""Server-Sent Events: an incremental decoder and an encoder, shared by both sides of the proxy."""

from __future__ import annotations

import re
from dataclasses import dataclass

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event. `raw` holds the bytes as received (terminator included) so relays need not re-encode."""

    data: str = ""
    event: str = "message"
    id: str | None = None
    retry: int | None = None
    raw: bytes = b""
    is_comment: bool = False

    def encode(self) -> bytes:
        return self.raw or encode_event(self.data, event=self.event, event_id=self.id, retry=self.retry)


def encode_event(data: str, *, event: str | None = "message", event_id: str | None = None,
                 retry: int | None = None) -> bytes:
    lines = []
    if event and event != "message":
        lines.append(f"event: {event}")
    elif event:
        lines.append("event: message")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


class EventTooLargeError(ValueError):
    pass


class SseDecoder:
    """Feed bytes as they arrive; get back whole events. The buffer is bounded by max_event_bytes."""

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        start = 0
        for match in _EVENT_END.finditer(self._buffer):
            block = self._buffer[start : match.end()]
            start = match.end()
            event = parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = self._buffer[start:]
        if len(self._buffer) > self._max:
            raise EventTooLargeError(f"SSE event larger than {self._max} bytes")
        return events

    @property
    def pending(self) -> bytes:
        return self._buffer


def parse_block(block: bytes) -> SseEvent | None:
    text = block.decode("utf-8", errors="replace")
    data: list[str] = []
    event, event_id, retry = "message", None, None
    saw_field = False
    for line in _LINE_END.split(text):
        if not line:
            continue
        if line.startswith(":"):
            continue
        saw_field = True
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value or "message"
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    if not saw_field:
        return SseEvent(raw=block, is_comment=True)
    return SseEvent(data="\n".join(data), event=event, id=event_id, retry=retry, raw=block)
