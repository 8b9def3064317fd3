"""What the MCP listener's handlers see and return: a received request, a whole response, and the bytes of a
response head, and a streamed response over the connection's send functions. Data and formatting, no sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson
from multidict import CIMultiDict

HEAD_DEFER_SECONDS = 0.05  # the longest a deferred stream head waits for the first thing to go with it
BODILESS_STATUSES = frozenset({204, 304})  # answers that never have a body, nor a Content-Length
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class HttpRequest:
    """One request, its body whole: the listener calls a handler once the body has arrived."""

    __slots__ = ("_query", "body", "body_too_large", "headers", "http_version", "method", "path", "query_string",
                 "remote", "stream_opener")

    def __init__(self, method: str, target: bytes, headers: CIMultiDict[str], remote: str | None,
                 http_version: str = "1.1") -> None:
        self.method = method
        self.http_version = http_version
        if not target.startswith(b"/") and b"://" in target[:8]:  # absolute form: http://host[/path][?query]
            authority_end = min((i for i in (target.find(b"/", target.index(b"://") + 3), target.find(b"?"))
                                 if i >= 0), default=len(target))
            rest = target[authority_end:]
            target = rest if rest.startswith(b"/") else b"/" + rest
        path, _, query = target.partition(b"?")
        self.path = path.decode("utf-8", "surrogateescape")
        self.query_string = query.decode("utf-8", "surrogateescape")
        self.headers = headers
        self.remote = remote
        self.body = b""
        self.body_too_large = False  # the body passes the listener's limit: it was not read (`body` is empty)
        # set by the connection: opens a streamed response (see `stream`)
        self.stream_opener: Callable[[int, dict[str, str], bool], Awaitable[ResponseStream]] | None = None
        self._query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, the first value of each name."""
        if self._query is None:
            query: dict[str, str] = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                query.setdefault(name, value)
            self._query = query
        return self._query

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_type(self) -> str:
        """The media type alone, lower case ("" when absent), as in `application/json; charset=utf-8`."""
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else ""

    async def stream(self, status: int, headers: dict[str, str], defer_head: bool = False) -> ResponseStream:
        """Open a streamed (chunked) response; the handler then writes to it and returns it. Its head is sent now,
        or with `defer_head` together with the first write (within 50 ms): for answers whose first part comes soon."""
        assert self.stream_opener is not None, "the listener sets it before the handler runs"
        return await self.stream_opener(status, headers, defer_head)


class HttpResponse:
    """A whole response, written to the client in one write; then `after_sent` runs, if given."""

    __slots__ = ("after_sent", "body", "headers", "status")

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None,
                 after_sent: Callable[[], Awaitable[None]] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}
        self.after_sent = after_sent

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> HttpResponse:
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})

    @classmethod
    def json(cls, document: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
        return cls(status, orjson.dumps(document), {"Content-Type": "application/json", **(headers or {})})


_date: tuple[int, bytes] = (-1, b"")


def http_date() -> bytes:
    """The Date header's value, formatted once per second."""
    global _date
    now = int(time.time())
    cached = _date
    if cached[0] != now:
        cached = _date = now, formatdate(now, usegmt=True).encode()
    return cached[1]


class HeaderInjectionError(ValueError):
    """A response header's name or value holds a line break: sending it would split the response."""


def response_head(status: int, headers: dict[str, str], *, length: int | None, keep_alive: bool,
                  chunked: bool = True) -> bytes:
    """Status line and headers, ending in the blank line. `length` None means a chunked body follows, or with
    `chunked` False (HTTP/1.0 has no chunks) a body that ends when the connection closes."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise HeaderInjectionError(f"response header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n".encode())
    if length is None:
        if chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n")
    elif status not in BODILESS_STATUSES:
        lines.append(b"Content-Length: %d\r\n" % length)
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"Date: %s\r\nServer: mcp-sidecar\r\n\r\n" % http_date())
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class ResponseStream:
    """A streamed response, chunked (or, to an HTTP/1.0 client, ended by closing the connection). Its head is sent
    when it opens, or, when deferred, with the first thing written (one write instead of two), at the latest
    HEAD_DEFER_SECONDS later. Writes wait while the client's socket is full."""

    __slots__ = ("_head", "_head_timer", "_send", "_send_now", "abort", "chunked", "finished", "last_write")

    def __init__(self, send: Callable[[bytes], Awaitable[None]], abort: Callable[[], None],
                 chunked: bool = True, send_now: Callable[[bytes], bool] | None = None, head: bytes = b"") -> None:
        self._send = send
        self._send_now = send_now
        self._head = head  # a deferred head, not sent yet
        self._head_timer: asyncio.TimerHandle | None = None  # sends a deferred head when its time is up
        self.abort = abort  # drop the connection at once, even while a write waits for the client
        self.chunked = chunked
        self.finished = False
        self.last_write = time.monotonic()  # when the stream last carried anything (its head, at first)

    async def write(self, data: bytes) -> None:
        """Raises ConnectionResetError once the client is gone."""
        if data:
            self.last_write = time.monotonic()
            await self._send(self._with_head(chunk(data) if self.chunked else data))

    async def write_last(self, data: bytes) -> None:
        """Write `data` and end the stream, in one write."""
        if self.finished:
            return
        self.finished = True
        self.last_write = time.monotonic()
        await self._send(self._with_head(chunk(data) + LAST_CHUNK if self.chunked else data))

    def flush_head(self) -> None:
        """Send a deferred head now (its time is up), unless the client's socket is full."""
        if self._head and self._send_now is not None and self._send_now(self._head):
            self._head = b""

    def _with_head(self, payload: bytes) -> bytes:
        if not self._head:
            return payload
        if self._head_timer is not None:
            self._head_timer.cancel()
        head, self._head = self._head, b""
        return head + payload

    def write_if_idle(self, data: bytes) -> bool:
        """Write `data` (whole, between two writes of the owner) unless the stream is finished or the client's socket
        is full; a keepalive needs no more. Whether it was written."""
        if self.finished or self._send_now is None:
            return False
        payload = chunk(data) if self.chunked else data
        if not self._send_now(self._head + payload):
            return False
        self._with_head(b"")  # the head went with it
        self.last_write = time.monotonic()
        return True

    async def finish(self) -> None:
        if not self.finished:
            self.finished = True
            if self.chunked:
                await self._send(self._with_head(LAST_CHUNK))
            elif self._head:
                await self._send(self._with_head(b""))
