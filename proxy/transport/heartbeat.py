"""Keepalive comments on idle event streams.

Load balancers and proxies between a client and the sidecar cut connections that carry nothing for a while (60 s
is a common default), yet an event stream may rightly stay silent far longer: a call waiting for approval, a GET
stream with no server messages, a slow tool. Every stream the transports open is watched; one that has sent nothing
for `interval` seconds gets an SSE comment, which every SSE parser skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import structlog

from proxy.net.listener import ResponseStream

log = structlog.get_logger("proxy.transport")

COMMENT = b": keepalive\n\n"


class StreamHeartbeat:
    """One sweep, every half interval and only while some stream is open, over all open streams."""

    def __init__(self, interval: float) -> None:
        self.interval = interval  # 0: no keepalives
        self.sent = 0  # keepalives written, over the process's life
        self._streams: set[ResponseStream] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @contextlib.contextmanager
    def watching(self, stream: ResponseStream) -> Iterator[None]:
        if self.interval <= 0 or self._closed:
            yield
            return
        self._streams.add(stream)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        try:
            yield
        finally:
            self._streams.discard(stream)

    def close(self) -> None:
        """No more keepalives (the sidecar stops)."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        try:
            while self._streams:
                await asyncio.sleep(self.interval / 2)
                idle_since = time.monotonic() - self.interval
                for stream in list(self._streams):
                    if stream.last_write <= idle_since:
                        self._keep_alive(stream)
        finally:
            if self._sweeper is asyncio.current_task():
                self._sweeper = None

    def _keep_alive(self, stream: ResponseStream) -> None:
        try:
            if stream.write_if_idle(COMMENT):
                self.sent += 1
        except Exception:  # one broken connection must not stop the keepalives of the others
            log.exception("heartbeat.write_failed")
