"""The response side of the upstream client (connection_pool.py): status and headers as httptools parsed them,
and the body behind them, read whole or streamed through a bounded buffer whose back-pressure pauses the socket.

The connection feeds a response as bytes arrive (`feed`, `finish`, `fail`); the reader takes them with `read()` or
`readany()`. A gzip or deflate body is decoded as it arrives.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from typing import Protocol

from proxy.net.deadlines import NO_DEADLINE

# Past this many unread body bytes a streamed response stops reading its socket until the reader catches up.
PAUSE_ABOVE_BYTES = 256 * 1024
RESUME_BELOW_BYTES = 64 * 1024
DRAIN_SECONDS = 2.0  # how long the end of a released body may take to arrive before its connection is closed
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class ConnectionBrokenError(ConnectionError):
    """The connection closed or broke before the response was whole, or the origin spoke invalid HTTP."""


class BodySource(Protocol):
    """The connection a response's body arrives on, as the response sees it: flow control, the request's deadline
    (a time.monotonic() value, NO_DEADLINE for none) and failure."""

    loop: asyncio.AbstractEventLoop
    deadline: float

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def expire_in(self, seconds: float) -> None: ...
    def fail(self, error: Exception) -> None: ...
    def close(self) -> None: ...


class Response:
    """Status and headers of one response; its body arrives through `read()` (whole) or `readany()` (streamed)."""

    __slots__ = ("_chunks", "_connection", "_decoder", "_done", "_dropping", "_error", "_unread", "_waiter", "_whole",
                 "content_type", "headers", "status")

    def __init__(self, connection: BodySource, status: int, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.headers = headers
        self.content_type = ""
        self._connection = connection
        self._chunks: deque[bytes] = deque()
        self._unread = 0
        self._done = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._whole = False
        self._dropping = False
        self._decoder = None
        for name, value in headers:
            lower = name.lower()
            if lower == "content-type":
                self.content_type = value.split(";", 1)[0].strip().lower()
            elif lower == "content-encoding" and value.strip().lower() not in ("", "identity"):
                self._decoder = _decoder_for(value.strip().lower())

    @property
    def complete(self) -> bool:
        """The whole body has arrived (nothing more to wait for)."""
        return self._done and self._error is None

    async def read(self) -> bytes:
        """The whole body."""
        self._whole = True
        if not self._done:  # once done, the connection may already serve another request
            self._connection.resume()
        while not self._done:
            await self._wait()
        return self.arrived_body()

    def arrived_body(self) -> bytes:
        """The whole body of a response already `complete` (no wait: the usual JSON answer came with its head)."""
        if self._error is not None:
            raise self._error
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def readany(self, idle_timeout: float | None = None) -> bytes:
        """The next part of the body as it arrived; b"" once the body is complete. The request's deadline no longer
        applies; a wait longer than `idle_timeout` (None: no limit) raises TimeoutError."""
        connection = self._connection
        # Only while this body still arrives is the connection (and its deadline) ours: once it is complete, the
        # connection may already carry another request, with a deadline of its own.
        if not self._done:
            connection.deadline = NO_DEADLINE
        while not self._chunks and not self._done:
            if idle_timeout is not None:
                connection.expire_in(idle_timeout)
            try:
                await self._wait()
            finally:
                if not self._done:
                    connection.deadline = NO_DEADLINE
        if self._chunks:
            chunk = self._chunks.popleft()
            self._unread -= len(chunk)
            if not self._done and self._unread < RESUME_BELOW_BYTES:
                self._connection.resume()
            return chunk
        if self._error is not None:
            raise self._error
        return b""

    def release(self, drain: bool = False) -> None:
        """Done with the response. A body not read to its end closes the connection (it cannot be reused), unless
        `drain`: what is left is expected to be short (the end of an SSE stream whose last event was read), so it is
        read and dropped as it comes, and the connection goes back to the pool, or is closed after DRAIN_SECONDS."""
        if self._done:
            return
        if not drain:
            self.fail(ConnectionBrokenError("response released before its end"))
            self._connection.close()
            return
        self._dropping = True
        self._chunks.clear()
        self._unread = 0
        self._connection.resume()
        self._connection.expire_in(DRAIN_SECONDS)

    async def _wait(self) -> None:
        self._waiter = self._connection.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # the connection's side: the body as it arrives
    def feed(self, data: bytes) -> None:
        """Part of the body, decoded if it is compressed, buffered for the reader (the socket pauses past the limit)."""
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self._connection.fail(ConnectionBrokenError(f"response body does not decompress: {exc}"))
                return
        if data and not self._dropping:
            self._chunks.append(data)
            self._unread += len(data)
            if not self._whole and self._unread > PAUSE_ABOVE_BYTES:
                self._connection.pause()
            self._wake()

    def finish(self) -> None:
        """The body is whole."""
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._chunks.append(rest)
        self._done = True
        self._wake()

    def fail(self, error: Exception) -> None:
        """The body will not be whole: the reader gets `error`."""
        if not self._done:
            self._error = error
            self._done = True
            self._wake()


def _decoder_for(encoding: str) -> zlib._Decompress:
    wbits = _DECODERS.get(encoding)
    if wbits is None:
        raise ConnectionBrokenError(f"response uses an unsupported Content-Encoding: {encoding}")
    return zlib.decompressobj(wbits)
