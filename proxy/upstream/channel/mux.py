"""JSON-RPC over one message channel (a child's stdio, a legacy SSE connection) for many callers.

Request ids and progress tokens are replaced by the channel's own counter on the way out and restored on the way
back, so concurrent callers never see each other's replies. Each call has a bounded mailbox; the channel reader
never waits for a client (see proxy/net/message_box.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog

from proxy import jsonrpc, mcp
from proxy.errors import UpstreamError
from proxy.net.deadlines import NO_DEADLINE, DeadlineSweep, deadline_in
from proxy.net.message_box import Mailbox
from proxy.upstream.channel.oversized import NOT_A_RESPONSE, UNKNOWN, oversized_response_id

log = structlog.get_logger("proxy.upstream.mux")

# Server messages that belong to the call in progress; other server messages prefer the session's GET stream.
CALL_RELATED = frozenset({"notifications/message", "sampling/createMessage", "elicitation/create", "roots/list"})
_NO_TOKEN = object()
TOO_LARGE = "The upstream MCP server's answer was larger than upstream.max_event_bytes and was dropped"
TOO_LARGE_UNMATCHED = ("The upstream MCP server sent a message larger than upstream.max_event_bytes whose call "
                       "cannot be told; it was dropped, and every call in flight failed with it")


class Receiver(Protocol):
    """Where a channel delivers what the server sends."""

    def feed(self, line: bytes) -> None:
        """One message (one JSON text)."""

    def feed_oversized(self, head: bytes, tail: bytes) -> None:
        """A message over the size limit was skipped; its first and last bytes."""


class Channel(Protocol):
    """A bidirectional stream of JSON-RPC messages (one JSON text per message)."""

    label: str

    async def open(self, receiver: Receiver) -> None: ...

    async def send(self, data: bytes) -> None: ...

    async def wait_closed(self) -> str:
        """Until the channel has ended; how it ended."""
        ...

    async def close(self) -> None: ...

    def diagnostics(self) -> str:
        """What the other end said last, to explain a failure (a child's last stderr lines); may be empty."""
        ...


@dataclass(eq=False, slots=True)
class Call:
    client_id: Any
    upstream_id: int
    inbox: Mailbox[dict[str, Any]]
    progress_token: Any = _NO_TOKEN
    adapt: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # applied to the response
    deadline: float = NO_DEADLINE  # while the caller waits for its next message (see Multiplexer.next_message)


class CallOverdueError(Exception):
    """No message for the call within the time its caller waits."""


class Multiplexer:
    def __init__(self, channel: Channel, queue_limit: int, *, sessionful: bool) -> None:
        self.channel = channel
        self.queue_limit = queue_limit
        self.sessionful = sessionful  # one legacy client session owns the channel and may answer server requests
        self.push: Mailbox[dict[str, Any]] | None = None  # that session's GET stream, while one is open
        self.closed_error: UpstreamError | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, Call] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._deadlines = DeadlineSweep(self._fail_overdue)

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    async def call(self, message: dict[str, Any],
                   adapt: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Call:
        """Send a request under a fresh id; its notifications and response arrive in the call's inbox."""
        if self.closed_error is not None:
            raise self.closed_error
        call = Call(message.get("id"), next(self._ids), Mailbox(self.queue_limit), adapt=adapt)
        outbound = {**message, "id": call.upstream_id}
        params = mcp.params_of(message)
        meta = mcp.meta_of(params)
        if "progressToken" in meta:
            call.progress_token = meta["progressToken"]
            outbound["params"] = {**params, "_meta": {**meta, "progressToken": call.upstream_id}}
        self._calls[call.upstream_id] = call
        try:
            await self.channel.send(orjson.dumps(outbound))
        except UpstreamError:
            self._calls.pop(call.upstream_id, None)
            raise
        return call

    async def next_message(self, call: Call, within: float) -> dict[str, Any]:
        """The call's next message; CallOverdueError if none came within `within` seconds (the call is then closed)."""
        call.deadline = deadline_in(within)
        self._deadlines.watch()
        try:
            return await call.inbox.get()
        finally:
            call.deadline = NO_DEADLINE

    def _fail_overdue(self, now: float) -> bool:
        pending = False
        for call in self._calls.values():
            if call.deadline <= now and not call.inbox.pending:  # a message queued in time is still taken
                call.inbox.close(CallOverdueError())
            elif call.deadline != NO_DEADLINE:
                pending = True
        return pending

    def finish(self, call: Call) -> None:
        self._calls.pop(call.upstream_id, None)

    def cancel(self, call: Call, reason: str, *, tell_server: bool = True) -> None:
        """The caller went away or gave up: forget the call and (unless told not to) send notifications/cancelled."""
        if self._calls.pop(call.upstream_id, None) is None:
            return
        call.inbox.close()
        if tell_server:
            cancelled = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                         "params": {"requestId": call.upstream_id, "reason": reason}}
            self._spawn(self.send_raw(orjson.dumps(cancelled)))

    async def notify(self, message: dict[str, Any]) -> None:
        """A client notification; a cancellation names the request by the server-side id."""
        if message.get("method") == "notifications/cancelled":
            client_id = mcp.params_of(message).get("requestId")
            call = next((c for c in self._calls.values() if c.client_id == client_id), None)
            if call is None:
                return  # already answered
            self._calls.pop(call.upstream_id, None)
            call.inbox.close()
            message = {**message, "params": {**mcp.params_of(message), "requestId": call.upstream_id}}
        await self.send_raw(orjson.dumps(message))

    async def send_raw(self, data: bytes) -> None:
        if self.closed_error is not None:
            raise self.closed_error
        await self.channel.send(data)

    def feed(self, line: bytes) -> None:
        """Route one message from the server."""
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("upstream.not_json", channel=self.channel.label, size=len(line))
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if method is None:
            self._on_response(message)
        elif method == "notifications/progress":
            self._on_progress(message)
        else:
            self._on_server_message(message, method)

    def feed_oversized(self, head: bytes, tail: bytes) -> None:
        """Fail now the call whose answer was too long to take (see oversized.py), rather than at its timeout."""
        answered = oversized_response_id(head, tail)
        if answered == NOT_A_RESPONSE:
            return
        if answered == UNKNOWN:
            calls, error = list(self._calls.values()), UpstreamError(TOO_LARGE_UNMATCHED)
        else:
            found = self._calls.get(answered)  # type: ignore[arg-type]
            calls, error = ([found] if found is not None else []), UpstreamError(TOO_LARGE)
        for call in calls:
            self._calls.pop(call.upstream_id, None)
            call.inbox.close(error, discard=True)

    def fail_all(self, error: UpstreamError) -> None:
        """The channel is gone: every caller learns it now, never by a hang."""
        self.closed_error = error
        calls, self._calls = list(self._calls.values()), {}
        for call in calls:
            call.inbox.close(error, discard=True)
        if self.push is not None:
            self.push.close(error)

    def _on_response(self, message: dict[str, Any]) -> None:
        call = self._calls.pop(message.get("id"), None)  # type: ignore[arg-type]
        if call is None:
            log.debug("upstream.unmatched_response", channel=self.channel.label)
            return
        message["id"] = call.client_id
        self._deliver(call, call.adapt(message) if call.adapt is not None else message)
        call.inbox.close()

    def _on_progress(self, message: dict[str, Any]) -> None:
        params = mcp.params_of(message)
        call = self._calls.get(params.get("progressToken"))  # type: ignore[arg-type]
        if call is None or call.progress_token is _NO_TOKEN:
            return
        message["params"] = {**params, "progressToken": call.progress_token}
        self._deliver(call, message)

    def _on_server_message(self, message: dict[str, Any], method: str) -> None:
        is_request = "id" in message
        latest = self._calls[max(self._calls)] if self._calls else None
        if not self.sessionful:
            # Shared by stateless callers, none of which can answer a request; a notification goes to its caller
            # only when there is no doubt who that is.
            if is_request:
                self._refuse(message, "The sidecar's stateless clients cannot answer server requests")
            elif latest is not None and len(self._calls) == 1:
                self._deliver(latest, message)
            return
        if latest is not None and (method in CALL_RELATED or self.push is None):
            self._deliver(latest, message)
        elif self.push is not None:
            if not self.push.put(message):
                log.warning("upstream.client_too_slow", channel=self.channel.label, stream="GET",
                            limit=self.queue_limit)
        elif is_request:
            self._refuse(message, "No client stream is open to deliver this request to")

    def _deliver(self, call: Call, message: dict[str, Any]) -> None:
        if not call.inbox.put(message) and call.inbox.overflowed:
            log.warning("upstream.client_too_slow", channel=self.channel.label, limit=self.queue_limit)
            self.cancel(call, "client too slow")

    def _refuse(self, request: dict[str, Any], text: str) -> None:
        answer = jsonrpc.error_message(request.get("id"), jsonrpc.METHOD_NOT_FOUND, text)
        self._spawn(self.send_raw(orjson.dumps(answer)))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(_quietly(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _quietly(work: Any) -> None:
    with contextlib.suppress(UpstreamError):
        await work
