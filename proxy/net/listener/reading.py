"""The reading half of a listener connection: httptools (llhttp) callbacks build each request and hold it to the
listener's limits and deadlines. The head, then the body, must arrive within its own time, however it trickles in:
a deadline is a number on the connection, copied from the server as each part begins (no clock read per request:
the server's sweep keeps the figures current) and checked by that one sweep. A body announced past the limit, or
(chunked) running past it, is refused at once rather than read to its end."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Protocol

import httptools
from multidict import CIMultiDict

from proxy.net.listener.messages import HttpRequest, HttpResponse
from proxy.net.listener.routes import Routes

MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 128
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NO_DEADLINE = math.inf


class ConnectionOwner(Protocol):
    """What a connection asks of the server that accepted it (HttpServer)."""

    loop: asyncio.AbstractEventLoop
    routes: Routes
    max_body_bytes: int
    draining: bool
    head_deadline: float  # the deadline of a request head beginning now (kept current by the server's sweep)
    body_deadline: float  # and of a body

    def admit(self, connection: RequestReader) -> bool: ...

    def forget(self, connection: RequestReader) -> None: ...

    def count(self, name: str, **attributes: str) -> None: ...


class RefusedError(Exception):
    """A request the listener answers itself, then closes the connection."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.response = HttpResponse.text(status, text)


class RequestReader(asyncio.Protocol):
    """Parses what the client sends into requests. The answering half (HttpConnection) provides `_accept(request,
    final)` (a request is whole, or refused by its size: answer it), `_refuse(response)` (answer the owed ones, then
    this, then close) and `_answering`; it reads `_input_done` (nothing more is parsed) and `_unread_input`."""

    _answering: asyncio.Task[None] | None
    _transport: asyncio.Transport | None
    _reading_paused: bool

    def __init__(self, server: ConnectionOwner) -> None:
        self._server = server
        self._loop = server.loop
        self._parser = httptools.HttpRequestParser(self)
        self._remote: str | None = None
        self._target = b""
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._in_head = False  # a request's head has begun and is not yet whole
        self._head_bytes = 0  # its bytes that arrived after the read it began in
        self._head_fed = 0  # of the read being parsed: its length if it began inside a head
        self._receiving: HttpRequest | None = None  # headers parsed, body arriving
        self._body: list[bytes] = []
        self._body_bytes = 0
        # loop.time() past which the part of a request being received (head, then body) is late; read by the sweep
        self.request_deadline = NO_DEADLINE
        self._input_done = False  # nothing more is parsed: after an upgrade, an error, or the final request
        self._unread_input = False  # the client may still be sending what was refused: linger before closing

    if TYPE_CHECKING:  # the answering half's
        def _accept(self, request: HttpRequest, final: bool) -> None: ...
        def _refuse(self, response: HttpResponse) -> None: ...

    def data_received(self, data: bytes) -> None:
        if self._input_done:
            return
        self._head_fed = len(data) if self._in_head else 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # another protocol follows (WebSocket, h2c): answer this request, no more
            self._input_done = True
        except httptools.HttpParserError as error:
            if self._input_done:  # a callback stopped the reading on purpose (a body refused by its size)
                return
            cause = error.__context__
            refused = cause if isinstance(cause, RefusedError) else RefusedError(400, f"Bad Request: {error}")
            self._refuse(refused.response)
        else:
            if self._in_head:
                self._count_head_bytes()

    def _count_head_bytes(self) -> None:
        """httptools holds a header back until its line ends, so `on_header` never sees an endless one: bound the
        head by the reads it spans instead (all but the one it began in, whose share of it is unknown)."""
        self._head_bytes += self._head_fed
        if self._head_bytes > MAX_TARGET_BYTES + 2 * MAX_HEADER_BYTES:  # room for separators and spaces
            self._refuse(RefusedError(431, "Request Header Fields Too Large").response)

    # deadlines

    def time_out(self) -> None:
        """The sweep found the request being received past its deadline: 408 (after the answers owed) and close;
        a connection whose first request never began is closed without a word. While reading is paused (pipelined
        requests wait for their turn) the delay is the listener's, not the client's."""
        if self._input_done or self._reading_paused or self.request_deadline == NO_DEADLINE:
            return
        self.request_deadline = NO_DEADLINE
        if not self._in_head and self._receiving is None:  # opened, then silent (or empty lines only)
            self._server.count("listener_request_timeouts", phase="start")
            self._input_done = True
            if self._transport is not None:
                self._transport.close()
            return
        self._server.count("listener_request_timeouts", phase="head" if self._receiving is None else "body")
        self._refuse(HttpResponse.text(408, "Request Timeout"))

    def restart_deadline(self) -> None:
        """Reading resumes after a pause: the part being received gets its whole time again."""
        if self.request_deadline != NO_DEADLINE:
            server = self._server
            self.request_deadline = server.head_deadline if self._receiving is None else server.body_deadline

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.request_deadline = self._server.head_deadline
        self._in_head = True
        self._head_bytes = self._head_fed = 0
        self._target = b""
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._target += url
        if len(self._target) > MAX_TARGET_BYTES:
            raise RefusedError(414, "URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self._headers) >= MAX_HEADERS:
            raise RefusedError(431, "Request Header Fields Too Large")
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._input_done:  # a request after the connection's last one, in the same read: never answered
            return
        self.request_deadline = self._server.body_deadline
        parser = self._parser
        headers = CIMultiDict(self._headers)
        version = parser.get_http_version()
        if "Host" not in headers and version == "1.1":
            raise RefusedError(400, "Bad Request: an HTTP/1.1 request needs a Host header")
        request = HttpRequest(parser.get_method().decode("ascii"), self._target, headers, self._remote, version)
        self._receiving = request
        length = request.content_length
        if length is not None and length > self._server.max_body_bytes:
            self._too_large(request)  # before any 100 Continue: the body is not invited
        if "Expect" in request.headers and request.headers["Expect"].lower() == "100-continue" \
                and self._answering is None and self._transport is not None:
            self._transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        request = self._receiving
        if request is None:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self._server.max_body_bytes:
            self._too_large(request)  # as soon as the running total (chunked) passes the limit
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.request_deadline = NO_DEADLINE
        request = self._receiving
        if request is None:
            return
        self._receiving = None
        body = self._body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        parser = self._parser
        final = not parser.should_keep_alive() or parser.should_upgrade() or self._server.draining
        if final:
            self._input_done = True
        self._accept(request, final)

    def _too_large(self, request: HttpRequest) -> None:
        """Answer now (after the answers owed: the handler sees `body_too_large` and refuses) rather than read a
        body that would be refused, then close; what the client still sends is read and dropped for a moment."""
        request.body_too_large = True
        self._input_done = self._unread_input = True
        self._receiving = None
        self._body = []
        self.request_deadline = NO_DEADLINE
        self._accept(request, final=True)
        raise RefusedError(413, "Payload Too Large")  # stops the parser: the rest of this read is dropped
