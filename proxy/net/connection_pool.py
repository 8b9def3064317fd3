"""A keep-alive HTTP/1.1 client for one origin: a bounded pool of connections, each request written in one write,
responses parsed by httptools (llhttp, the parser uvicorn uses) into a Response (http_response.py), whose body is
read whole or streamed with back-pressure.

It does what the sidecar needs of its upstream and nothing more: no redirects, cookies, proxies or retries (a POST
is never sent twice). aiohttp's ClientSession does all of those on every request, which made it the largest part
of a pass-through call's cost. An answer that arrives together with its headers, the usual JSON reply, is complete
without another wake-up of the event loop.

A request's deadline is a number on its connection (or on its place in the queue for one), failed with
TimeoutError by the pool's one sweep (see deadlines.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools

from proxy.net.deadlines import NO_DEADLINE, DeadlineSweep, deadline_in
from proxy.net.http_response import ConnectionBrokenError, Response
from proxy.net.tls import ReloadingContext, client_context

USER_AGENT = "mcp-sidecar"


class ConnectFailedError(OSError):
    """The origin could not be reached: refused, unresolvable, or no connection within the connect timeout."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: at most one request in flight, its response parsed as bytes arrive."""

    def __init__(self, pool: ConnectionPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.deadline = NO_DEADLINE  # time.monotonic() past which the request in flight fails with TimeoutError
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._paused = False
        self._header_lines: list[tuple[bytes, bytes]] = []
        self._answer: asyncio.Future[Response] | None = None  # a request waiting for its status and headers
        self._response: Response | None = None  # the response whose body is arriving
        self._ends_at_close = False  # neither Content-Length nor chunked: the body ends when the connection does

    async def exchange(self, request: bytes) -> Response:
        """Writes one request; returns once its status and headers have arrived."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionBrokenError("connection closed before the request was sent")
        answer = self._answer = self.loop.create_future()
        self.transport.write(request)
        try:
            return await answer
        finally:
            if self._answer is answer:
                self._answer = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._answer is None and self._response is None:
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(ConnectionBrokenError(f"upstream sent invalid HTTP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self._response is not None and self._ends_at_close and exc is None:
            self._response.finish()
        else:
            self._broke(ConnectionBrokenError("upstream closed the connection" + (f": {exc}" if exc else "")))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._header_lines = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the final response follows
            return
        headers = [(name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
                   for name, value in self._header_lines]
        try:
            self._response = Response(self, status, headers)
        except ConnectionBrokenError as exc:
            self.fail(exc)
            return
        self._ends_at_close = status not in (204, 304) and not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._header_lines)
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_result(self._response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response.feed(body)

    def on_message_complete(self) -> None:
        response, self._response = self._response, None
        if response is None:  # an informational response ended
            return
        self.deadline = NO_DEADLINE
        response.finish()
        if self.parser.should_keep_alive() and not self.closed:
            self.resume()
            self.pool.put_back(self)
        else:
            self.close()

    # deadlines, flow control and failure
    def expire_in(self, seconds: float) -> None:
        self.deadline = deadline_in(seconds)
        self.pool.deadlines.watch()

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()

    def fail(self, error: Exception) -> None:
        self.deadline = NO_DEADLINE
        self._broke(error)
        self.close()

    def _broke(self, error: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)
        if self._response is not None:
            self._response.fail(error)
            self._response = None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class ConnectionPool:
    """Connections to one origin (the path of `url` is every request's target), at most `limit` open at a time;
    idle ones are reused newest first and dropped after `keepalive_seconds` or when the origin closes them."""

    def __init__(self, url: str, limit: int, connect_timeout: float, keepalive_seconds: float = 60.0,
                 tls: ReloadingContext | None = None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        # An https origin is verified against `tls` (its CAs, its client certificate), else the system's CAs; the
        # files are re-read when they change, for the connections opened from then on.
        self.tls = (tls or ReloadingContext(client_context, ())) if parts.scheme == "https" else None
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rpartition("@")[2]
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.keepalive_seconds = keepalive_seconds
        self._first_line = f" {self.target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._opening = 0
        self._waiters: deque[tuple[asyncio.Future[_Connection | None], float]] = deque()  # (turn, deadline)
        self.deadlines = DeadlineSweep(self._fail_overdue)

    async def request(self, method: str, headers: Mapping[str, str], body: bytes | None = None,
                      within: float | None = None) -> Response:
        """Sends one request; returns its response once status and headers are in. A failed or cancelled request
        closes its connection. `within` (seconds) bounds the wait for a connection, the response's head and a body read
        whole with `read()`; past it, TimeoutError."""
        request = self._encode(method, headers, body)
        deadline = deadline_in(within)
        connection = self._take_idle() or await self._acquire(deadline)
        if within is not None:
            connection.deadline = deadline
            self.deadlines.watch()
        try:
            return await connection.exchange(request)
        except BaseException:
            connection.close()
            raise

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        for waiter, _ in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionBrokenError("connection pool closed"))
        self.deadlines.cancel()

    def _fail_overdue(self, now: float) -> bool:
        """Fail the requests past their deadline; whether any deadline is still pending."""
        pending = False
        for connection in list(self._open):
            if connection.deadline <= now:
                connection.fail(TimeoutError("the upstream request's deadline passed"))
            elif connection.deadline != NO_DEADLINE:
                pending = True
        for waiter, deadline in self._waiters:
            if deadline <= now and not waiter.done():
                waiter.set_exception(TimeoutError("no upstream connection came free before the deadline"))
            elif deadline != NO_DEADLINE:
                pending = True
        return pending

    def put_back(self, connection: _Connection) -> None:
        """A connection whose response is complete is free again."""
        now = connection.idle_since = time.monotonic()
        if self._hand_over(connection):
            return
        self._idle.append(connection)
        while now - self._idle[0].idle_since >= self.keepalive_seconds:  # the oldest idle ones expire
            self._idle.pop(0).close()

    def forget(self, connection: _Connection) -> None:
        """A connection closed: its slot is free."""
        if connection in self._open:
            self._open.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            self._hand_over(None)

    def _encode(self, method: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        lines = [method, self._first_line]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        line_ends = len(lines) + 1  # one CRLF per item, none after the method, three after the first line
        if head.count("\n") != line_ends or head.count("\r") != line_ends:
            raise ValueError("an upstream request header contains a line break")
        head_bytes = head.encode("utf-8", "surrogateescape")
        return head_bytes + body if body else head_bytes

    def _take_idle(self) -> _Connection | None:
        """The newest idle connection still fresh; stale ones met on the way are closed."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive_seconds:
                return connection
            connection.close()
        return None

    async def _acquire(self, deadline: float) -> _Connection:
        while True:
            idle = self._take_idle()
            if idle is not None:
                return idle
            if len(self._open) + self._opening < self.limit:
                return await self._connect(deadline)
            handed = await self._next_turn(deadline)
            if handed is not None and not handed.closed:
                return handed  # else it closed before this request could use it, or a slot freed up: look again

    async def _next_turn(self, deadline: float) -> _Connection | None:
        """Waits until a connection is handed over (or None: a slot may be free)."""
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        turn = (waiter, deadline)
        self._waiters.append(turn)
        if deadline != NO_DEADLINE:
            self.deadlines.watch()
        try:
            return await waiter
        except BaseException:
            self._pass_on(turn)
            raise

    async def _connect(self, deadline: float) -> _Connection:
        self._opening += 1
        connection: _Connection | None = None
        loop = asyncio.get_running_loop()
        tls = self.tls.current() if self.tls is not None else None
        try:
            async with asyncio.timeout(min(self.connect_timeout, deadline - time.monotonic())):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, loop), self.host, self.port, ssl=tls,
                    server_hostname=self.host if tls else None)
        except (OSError, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError("the upstream request's deadline passed while connecting") from None
            raise ConnectFailedError(f"cannot connect to {self.host}:{self.port}: {exc or 'timed out'}") from None
        finally:
            self._opening -= 1
            if connection is None or connection.closed:
                self._hand_over(None)  # the slot it would have taken is free again
        if connection.closed:
            raise ConnectionBrokenError("connection closed as it opened")
        self._open.add(connection)
        return connection

    def _hand_over(self, connection: _Connection | None) -> bool:
        """Gives a free connection (or, with None, a free slot) to the first waiting request; False if none waits."""
        while self._waiters:
            waiter, _ = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def _pass_on(self, turn: tuple[asyncio.Future[_Connection | None], float]) -> None:
        """A waiting request gave up (or its deadline passed): whatever it was handed goes to the next one."""
        waiter = turn[0]
        if turn in self._waiters:
            self._waiters.remove(turn)
        elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            handed = waiter.result()
            if handed is None:
                self._hand_over(None)
            else:
                self.put_back(handed)
