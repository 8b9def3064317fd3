"""One client connection of the MCP listener: requests parsed by httptools (llhttp), answered one at a time and in
order (pipelined requests wait their turn), each answer a task that a disconnect cancels."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from proxy.net.listener.messages import (
    BODILESS_STATUSES,
    HEAD_DEFER_SECONDS,
    HeaderInjectionError,
    HttpRequest,
    HttpResponse,
    ResponseStream,
    response_head,
)
from proxy.net.listener.reading import NO_DEADLINE, ConnectionOwner, RequestReader

log = structlog.get_logger("proxy.listener")

WRITE_STALL_SECONDS = 60.0  # a client whose socket stays full this long while an answer waits is cut off
MAX_WAITING = 8  # pipelined requests parsed ahead of the one being answered; past this, reading pauses
LINGER_SECONDS = 2.0  # after a refusal, how long what the client still sends is read and dropped before closing


class HttpConnection(RequestReader):
    """One client's connection: the reading half (RequestReader) builds requests, `_answer` runs one task per
    request in order, and the task writes its answer (whole or streamed) before the next one starts."""

    def __init__(self, server: ConnectionOwner) -> None:
        # Mind the count of attributes (28 with the reading half's): past 30, CPython 3.11 stops sharing the
        # instances' key table and every attribute access slows (measured: +1.1% instructions per call).
        super().__init__(server)
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[HttpRequest] = deque()
        self._answering: asyncio.Task[None] | None = None
        self._current: HttpRequest | None = None  # the request being answered
        self._stream: ResponseStream | None = None  # its streamed response, once opened
        self._sent = False  # its answer is written and the work after it runs: a disconnect no longer cancels
        self._final: HttpRequest | None = None  # the connection closes after answering this one
        self._refusal: HttpResponse | None = None  # the parser's refusal, sent once the answers owed are written
        self._reading_paused = False
        self._writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        self.last_active = self._loop.time()  # when the connection last became idle (opened, or its answer written)

    @property
    def idle(self) -> bool:
        """Waiting for the client's next request: no answer in progress, no request arriving (that one has its
        deadline), not closing already. Bytes that begin no request (empty lines) do not make it busy."""
        return self._answering is None and self.request_deadline == NO_DEADLINE and not self._input_done

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's
        peer = transport.get_extra_info("peername")
        self._remote = peer[0] if isinstance(peer, tuple) else None
        if not self._server.admit(self):  # closed at once, without lingering: in a flood, descriptors matter more
            self._input_done = True
            self._write_refusal(HttpResponse.text(503, "Service Unavailable: too many connections",
                                                  {"Retry-After": "1"}))
            return
        if self._server.draining:  # accepted just before the listener stopped accepting
            self.drain()
        else:  # the first request must begin as soon as a head must arrive (then its head gets its own time)
            self.request_deadline = self._server.head_deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server.forget(self)
        self._waiting.clear()
        if self._answering is not None and not self._sent:
            self._answering.cancel()  # the client went away: stop working for it (closes upstream streams too)
        self._wake_writer(ConnectionResetError("the client closed the connection"))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer(None)

    # answering

    def _accept(self, request: HttpRequest, final: bool) -> None:
        if final:
            self._final = request
        if self._answering is None:
            self._answer(request)
            return
        self._waiting.append(request)
        if len(self._waiting) >= MAX_WAITING and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _answer(self, request: HttpRequest) -> None:
        request.stream_opener = self._open_stream
        self._current = request
        self._stream = None
        self._answering = self._loop.create_task(self._respond(request))

    async def _respond(self, request: HttpRequest) -> None:
        try:
            route = self._server.routes.find(request.method, request.path)
            response = route if isinstance(route, HttpResponse) else await route(request)
            if isinstance(response, ResponseStream):
                await response.finish()
            elif self._stream is not None:
                raise RuntimeError("a handler opened a stream and returned another response")
            else:
                self._write(request, response)
                if response.after_sent is not None:
                    await self._after_sent(request, response.after_sent)
                if self._writing_paused:  # the next answer waits for the client to take this one: no piling up
                    await self._writable()
        except (asyncio.CancelledError, Exception) as error:
            if self._ended(error):
                return  # the client went away, or a forced shutdown
            log.exception("listener.handler_failed", method=request.method, path=request.path)
            if self._stream is not None:  # the head is sent: cutting the connection is the only signal left
                self._abort()
                return
            self._write(request, HttpResponse.text(500, "Internal Server Error"))
        self._answering = self._current = None
        self._next(request)

    async def _after_sent(self, request: HttpRequest, work: Callable[[], Awaitable[None]]) -> None:
        """What the handler left for after its answer was written (audit, the ends of spans): the client neither
        waits for it nor cancels it by leaving, and a failure in it cannot become a 500 any more."""
        self._sent = True
        try:
            await work()
        except Exception:
            log.exception("listener.after_sent_failed", method=request.method, path=request.path)
        finally:
            self._sent = False

    def _ended(self, error: BaseException) -> bool:
        """Whether `error` stopped the answer from outside (this task cancelled, the client's connection gone),
        rather than being the handler's own failure, such as its upstream refusing or a task it awaited cancelled."""
        if isinstance(error, asyncio.CancelledError):
            task = asyncio.current_task()
            return task is None or task.cancelling() > 0
        return isinstance(error, ConnectionError) and (self._transport is None or self._transport.is_closing())

    def _write(self, request: HttpRequest, response: HttpResponse) -> None:
        transport = self._transport
        if transport is None:
            return
        body = response.body
        try:
            head = response_head(response.status, response.headers, length=len(body),
                                 keep_alive=request is not self._final)
        except HeaderInjectionError as error:
            log.error("listener.bad_response_header", error=str(error), path=request.path)
            body = b"Internal Server Error"
            head = response_head(500, {"Content-Type": "text/plain"}, length=len(body),
                                 keep_alive=request is not self._final)
        if request.method == "HEAD" or not body or response.status in BODILESS_STATUSES:
            transport.write(head)
        elif len(body) < 65536:
            transport.write(head + body)
        else:
            transport.writelines((head, body))

    def _next(self, answered: HttpRequest) -> None:
        self.last_active = self._loop.time()
        transport = self._transport
        if transport is None:
            return
        if answered is self._final:
            self._close(transport)
        elif self._waiting:
            self._answer(self._waiting.popleft())
            if self._reading_paused and len(self._waiting) < MAX_WAITING:
                self._reading_paused = False
                self.restart_deadline()
                transport.resume_reading()
        elif self._refusal is not None:
            self._write_refusal(self._refusal)

    async def _open_stream(self, status: int, headers: dict[str, str], defer_head: bool = False) -> ResponseStream:
        if self._transport is None:
            raise ConnectionResetError("the client closed the connection")
        chunked = self._current is None or self._current.http_version != "1.0"
        if not chunked:  # the body ends when the connection does
            self._final = self._current
        final = not chunked or (self._final is not None and not self._waiting and self._receiving is None)
        head = response_head(status, headers, length=None, keep_alive=not final, chunked=chunked)
        if not defer_head:
            self._transport.write(head)
            self._stream = ResponseStream(self._send, self._abort, chunked, self._send_now)
            return self._stream
        stream = self._stream = ResponseStream(self._send, self._abort, chunked, self._send_now, head)
        stream._head_timer = self._loop.call_later(HEAD_DEFER_SECONDS, stream.flush_head)
        return stream

    async def _send(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)
        await self._writable()

    def _send_now(self, data: bytes) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing() or self._writing_paused:
            return False
        transport.write(data)
        return True

    async def _writable(self) -> None:
        """Return once the client's socket takes writes again; raises ConnectionResetError if the client goes, or
        takes nothing for WRITE_STALL_SECONDS (it is then cut off: it would hold its answer, and the upstream
        stream behind it, for ever)."""
        if self._writing_paused:
            if self._drained is None:
                self._drained = self._loop.create_future()
            try:
                await asyncio.wait_for(self._drained, WRITE_STALL_SECONDS)
            except TimeoutError:
                log.warning("listener.client_stalled", seconds=WRITE_STALL_SECONDS)
                self._abort()
                raise ConnectionResetError("the client took nothing for too long") from None

    def _wake_writer(self, error: Exception | None) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            if error is None:
                drained.set_result(None)
            else:
                drained.set_exception(error)

    # closing

    def _refuse(self, response: HttpResponse) -> None:
        """Answer a request the parser rejected, after the answers still owed for earlier ones, and close."""
        self._input_done = self._unread_input = True
        self._receiving = None
        if self._answering is None:
            self._write_refusal(response)
        else:
            self._refusal = response

    def _write_refusal(self, response: HttpResponse) -> None:
        if self._transport is not None:
            head = response_head(response.status, response.headers, length=len(response.body), keep_alive=False)
            self._transport.write(head + response.body)
            self._close(self._transport)

    def _close(self, transport: asyncio.Transport) -> None:
        """Close after the last answer. If the client may still be sending, stop sending but keep reading (and
        dropping) until it closes or LINGER_SECONDS pass: closing with its bytes unread would reset the connection,
        and a reset can take the answer with it before the client reads it."""
        if not self._unread_input or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._loop.call_later(LINGER_SECONDS, self._stop_lingering, transport)

    def _stop_lingering(self, transport: asyncio.Transport) -> None:
        if self._transport is transport:  # the client has not closed its side in all that time
            transport.abort()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def drain(self) -> None:
        """The server stops: close now if idle, else after the answer in progress (requests queued are dropped)."""
        self._waiting.clear()
        self._input_done = True
        if self._transport is None:
            return
        if self._answering is None:
            self._transport.close()
        else:
            self._final = self._current

    def cancel(self) -> None:
        """Past the grace period: stop the answer in progress and drop the connection."""
        if self._answering is not None:
            self._answering.cancel()
        self._abort()
