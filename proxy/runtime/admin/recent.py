"""The console's recent calls: this process's ring, or a capped Redis stream that every replica writes to and reads.

The stream is written off the audit path: events of one loop pass go out in one pipelined batch by a background
task; Redis away or slow drops them (counted as `recent_calls_failures`) and never delays a call. At most
MAX_BACKLOG events wait for a write; beyond that the oldest are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.audit import AuditRing, RecentCalls, select
from proxy.config import AdminConfig

log = structlog.get_logger("proxy.admin")

FAILURES = (RedisError, OSError, TimeoutError)
MAX_BACKLOG = 1000
FIELD = b"e"


class RecentCallsUnavailableError(Exception):
    """The shared stream cannot be read right now."""


def create_recent_calls(config: AdminConfig, count: Callable[[str, int], None]) -> RecentCalls | None:
    if not config.recent_calls:
        return None
    if config.recent_calls_redis_url:
        return RedisRecentCalls(config.recent_calls_redis_url, config.recent_calls_key, config.recent_calls, count)
    return AuditRing(config.recent_calls)


class RedisRecentCalls:
    def __init__(self, url: str, key: str, size: int, count: Callable[[str, int], None],
                 timeout: float = 0.5) -> None:
        self.key = key
        self.size = size
        self._count = count
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 0))
        self._backlog: list[bytes] = []
        self._writer: asyncio.Future[None] | None = None

    def append(self, event: dict[str, Any]) -> None:
        self._backlog.append(orjson.dumps(event, default=repr))
        if len(self._backlog) > MAX_BACKLOG:
            dropped = len(self._backlog) - MAX_BACKLOG
            del self._backlog[:dropped]
            self._count("recent_calls_failures", dropped)
        if self._writer is None or self._writer.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop runs (a shutdown): the events stay queued
                return
            self._writer = loop.create_task(self._write())

    async def _write(self) -> None:
        while self._backlog:
            batch, self._backlog = self._backlog, []
            pipe = self.client.pipeline(transaction=False)
            for item in batch:
                pipe.xadd(self.key, {FIELD: item}, maxlen=self.size, approximate=True)
            try:
                await pipe.execute()
            except FAILURES as error:
                self._count("recent_calls_failures", len(batch))
                log.warning("recent_calls.write_failed", error=error.__class__.__name__, events=len(batch))

    async def recent(self, filters: dict[str, str | None], limit: int) -> list[dict[str, Any]]:
        """Matching events, newest first, from every replica's share of the stream."""
        try:
            entries = await self.client.xrevrange(self.key, count=self.size)
        except FAILURES as error:
            raise RecentCallsUnavailableError(f"the recent-calls stream is unreachable "
                                              f"({error.__class__.__name__})") from None
        events = (orjson.loads(fields[FIELD]) for _, fields in entries if FIELD in fields)
        return select(events, filters, limit)

    async def start(self) -> None:
        """Connects on first use."""

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(asyncio.TimeoutError, *FAILURES):
                await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
            self._writer.cancel()
        await self.client.aclose()
