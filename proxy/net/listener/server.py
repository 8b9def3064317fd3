"""The MCP listener: routes, the listening socket, idle keep-alive connections closed, and a graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

import structlog

from proxy.net.listener.connection import HttpConnection
from proxy.net.listener.routes import Routes

log = structlog.get_logger("proxy.listener")

Counting = Callable[..., None]


def _not_counted(name: str, **attributes: str) -> None:
    """What a server without metrics counts with."""

KEEPALIVE_SECONDS = 75.0  # an idle keep-alive connection is closed after this long
REQUEST_HEAD_SECONDS = 10.0  # a request's head must arrive within this long of its first byte
REQUEST_BODY_SECONDS = 30.0  # and its body within this long of the head's end
SWEEP_SECONDS = 5.0  # at most: the sweep also runs eight times per request deadline
MAX_CONNECTIONS = 10_000


class HttpServer:
    """Serves `routes` over HTTP/1.1; every connection is an `HttpConnection`."""

    def __init__(self, routes: Routes, max_body_bytes: int, keepalive_seconds: float = KEEPALIVE_SECONDS,
                 max_connections: int = MAX_CONNECTIONS, request_head_timeout: float = REQUEST_HEAD_SECONDS,
                 request_body_timeout: float = REQUEST_BODY_SECONDS, count: Counting | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.keepalive_seconds = keepalive_seconds
        self.max_connections = max_connections  # past this, a new connection is answered 503 and closed
        self.request_head_timeout = request_head_timeout
        self.request_body_timeout = request_body_timeout
        # The deadlines of a request head, and of a body, that begin now; kept current by the sweep, never early:
        # a part gets its time and at most a quarter more (the sweep's lag, then its round to notice).
        self.head_deadline = self.body_deadline = 0.0
        self.count: Counting = count or _not_counted  # (counter name, **attributes): see telemetry/metrics.py
        self.tls = tls  # HTTPS: the listening context (see net/tls.py for the certificate's rotation)
        self.refused_connections = 0
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.loop = asyncio.get_running_loop()
        self._refresh_deadlines()
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._all_closed: asyncio.Event | None = None

    async def listen(self, host: str, port: int, reuse_port: bool = False) -> None:
        # A TLS handshake is part of the first request's head: it gets as long (it has no sweep: asyncio times it).
        handshake = {"ssl": self.tls, "ssl_handshake_timeout": self.request_head_timeout} if self.tls else {}
        server = await self.loop.create_server(lambda: HttpConnection(self), host, port, reuse_port=reuse_port or None,
                                               backlog=1024, **handshake)
        self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._sweep_seconds(), self._sweep)

    @property
    def ports(self) -> list[int]:
        return [sock.getsockname()[1] for server in self._servers for sock in server.sockets
                if sock.family in (socket.AF_INET, socket.AF_INET6)]

    def admit(self, connection: HttpConnection) -> bool:
        """Count a new connection in, unless the limit is reached (then it is to be refused)."""
        if len(self.connections) < self.max_connections:
            self.connections.add(connection)
            return True
        self.refused_connections += 1
        self.count("listener_refused_connections")
        if self.refused_connections % 1000 == 1:  # the first, then every thousandth: a flood must not flood the log
            log.warning("listener.connection_limit", max_connections=self.max_connections,
                        refused=self.refused_connections)
        return False

    def forget(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    def _sweep(self) -> None:
        """Time out requests past their deadline and close keep-alive connections idle past the limit (one timer
        for all, not one per request or per read)."""
        now = self._refresh_deadlines()
        cutoff = now - self.keepalive_seconds
        for connection in list(self.connections):
            if connection.request_deadline <= now:
                connection.time_out()
            elif connection.idle and connection.last_active < cutoff:
                connection.drain()
        self._sweeper = self.loop.call_later(self._sweep_seconds(), self._sweep)

    def _sweep_seconds(self) -> float:
        return min(SWEEP_SECONDS, self.request_head_timeout / 8, self.request_body_timeout / 8)

    def _refresh_deadlines(self) -> float:
        now = self.loop.time()
        lag = self._sweep_seconds()  # until the next refresh: a part beginning then must not get less than its time
        self.head_deadline = now + lag + self.request_head_timeout
        self.body_deadline = now + lag + self.request_body_timeout
        return now

    def stop_accepting(self) -> None:
        """New connections are refused from now on; those open are kept (see `drain`)."""
        for server in self._servers:
            server.close()

    async def drain(self, grace_seconds: float) -> None:
        """Let the answers in progress finish within the grace period, closing each connection after its
        answer; past it, cancel what is left."""
        self.stop_accepting()
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._all_closed = asyncio.Event()
        if not self.connections:
            self._all_closed.set()
        for connection in list(self.connections):
            connection.drain()
        try:
            await asyncio.wait_for(self._all_closed.wait(), grace_seconds)
        except TimeoutError:
            log.warning("listener.drain_timeout", open_connections=len(self.connections))
            for connection in list(self.connections):
                connection.cancel()
        for server in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
