"""Where cache entries live, through aiocache: a bounded in-process memory store, or Redis shared by replicas.

Both stores hold pre-serialised bytes under keys built here (aiocache's own key layouts differ per backend, so we
pass full keys and no namespace). Generation tokens live beside the entries; invalidation writes a new token and
never scans or flushes. A store that cannot answer raises StoreUnavailableError; the stage treats that as a bypass.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from aiocache import SimpleMemoryCache
from aiocache.backends.redis import RedisCache
from aiocache.serializers import BaseSerializer

from proxy.config import CacheConfig

REDIS_COOL_DOWN_SECONDS = 1.0  # after a Redis failure, bypass without trying for this long
MAX_MEMORY_GENERATIONS = 10_000


class StoreUnavailableError(Exception):
    """The store did not answer in time or at all; `fresh` is False while cooling down after a failure."""

    def __init__(self, message: str, fresh: bool = True) -> None:
        super().__init__(message)
        self.fresh = fresh


class RawBytes(BaseSerializer):
    """Values are already JSON bytes: store and return them untouched (encoding None keeps Redis from decoding)."""

    DEFAULT_ENCODING = None

    def dumps(self, value: bytes) -> bytes:
        return value

    def loads(self, value: bytes | None) -> bytes | None:
        return value


def new_token() -> str:
    return os.urandom(8).hex()


class Store(Protocol):
    async def fetch(self, keys: Sequence[str], generations: Sequence[str]) -> tuple[list[bytes | None],
                                                                                      list[str | None]]:
        """Entries for keys and the current tokens of generations, in one round trip."""
        ...

    async def put(self, key: str, value: bytes, ttl: float) -> None: ...

    async def bump(self, generation: str) -> None: ...

    async def close(self) -> None: ...

    def usage(self) -> dict[str, int]: ...


class BoundedMemoryCache(SimpleMemoryCache):
    """aiocache's memory backend is unbounded; this one evicts least recently used entries beyond a count and a
    byte budget. Expiry is checked on read against an injected clock (no timer per entry)."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic,
                 **kwargs: Any) -> None:
        super().__init__(serializer=RawBytes(), **kwargs)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.used_bytes = 0
        self._index: OrderedDict[str, tuple[int, float | None]] = OrderedDict()  # key -> (size, expires at)

    def lookup(self, key: str) -> Any:
        """The live value under key (None when absent or expired), marked as recently used; no await."""
        entry = self._index.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self.clock():
            self._drop(key)
            return None
        self._index.move_to_end(key)
        return self._cache.get(key)

    async def _get(self, key: str, encoding: str | None = "utf-8", _conn: Any = None) -> Any:
        return self.lookup(key)

    async def _multi_get(self, keys: Sequence[str], encoding: str | None = "utf-8", _conn: Any = None) -> list[Any]:
        return [self.lookup(key) for key in keys]

    async def _set(self, key: str, value: Any, ttl: float | None = None, _cas_token: Any = None,
                   _conn: Any = None) -> bool:
        self._drop(key)
        self._cache[key] = value
        self._index[key] = (len(value), self.clock() + ttl if ttl else None)
        self.used_bytes += len(value)
        while len(self._index) > self.max_entries or self.used_bytes > self.max_bytes:
            self._drop(next(iter(self._index)))
        return True

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return 1 if self._drop(key) else 0

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        for key in [key for key in self._index if not namespace or key.startswith(namespace)]:
            self._drop(key)
        return True

    def __len__(self) -> int:
        return len(self._index)

    def _drop(self, key: str) -> bool:
        entry = self._index.pop(key, None)
        self._cache.pop(key, None)
        if entry is not None:
            self.used_bytes -= entry[0]
        return entry is not None


class MemoryStore:
    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = BoundedMemoryCache(config.max_entries, config.max_bytes, clock=clock, timeout=None)
        self._generations: dict[str, str] = {}

    async def fetch(self, keys: Sequence[str], generations: Sequence[str]) -> tuple[list[bytes | None],
                                                                                      list[str | None]]:
        # Straight to the index: aiocache's API wrappers (timeout, plugins, serializer, env lookups) cost more than
        # the lookup itself, and an in-process dict needs none of them.
        return [self.cache.lookup(key) for key in keys], [self._generations.get(name) for name in generations]

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self.cache.set(key, value, ttl=ttl)

    async def bump(self, generation: str) -> None:
        if len(self._generations) >= MAX_MEMORY_GENERATIONS:  # bounded: forget all tokens, which orphans
            self._generations.clear()  # every entry, because "all" gets a token none of them was stored under
            self._generations["all"] = new_token()
        self._generations[generation] = new_token()

    async def close(self) -> None:
        await self.cache.clear()

    def usage(self) -> dict[str, int]:
        return {"entries": len(self.cache), "bytes": self.cache.used_bytes}


class RedisStore:
    """Entries at `<namespace>:e:<digest>`, generation tokens at `<namespace>:g:<name>`; every op bounded.

    A generation token expires well after the longest entry TTL, so a token that vanished can only ever have
    covered entries that are already gone.
    """

    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.monotonic) -> None:
        parts = urlsplit(config.redis_url or "")
        db = parts.path.strip("/") or "0"
        self.cache = RedisCache(
            serializer=RawBytes(), endpoint=parts.hostname or "127.0.0.1", port=parts.port or 6379,
            db=int(db) if db.isdigit() else 0, password=unquote(parts.password) if parts.password else None,
            timeout=config.op_timeout_seconds, create_connection_timeout=config.op_timeout_seconds,
            ssl=parts.scheme == "rediss",
        )
        self.prefix = config.namespace + ":"
        self.generation_ttl = config.max_ttl_seconds * 2 + 60.0  # a float: aiocache then uses PSETEX
        self.clock = clock
        self._down_until = 0.0

    def entry_key(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def generation_key(self, name: str) -> str:
        return f"{self.prefix}g:{name}"

    async def fetch(self, keys: Sequence[str], generations: Sequence[str]) -> tuple[list[bytes | None],
                                                                                      list[str | None]]:
        names = [self.entry_key(key) for key in keys] + [self.generation_key(name) for name in generations]
        values = await self._guard(self.cache.multi_get(names))
        tokens = [value.decode() if value is not None else None for value in values[len(keys):]]
        return values[: len(keys)], tokens

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self._guard(self.cache.set(self.entry_key(key), value, ttl=float(ttl)))

    async def bump(self, generation: str) -> None:
        token = new_token().encode()
        await self._guard(self.cache.set(self.generation_key(generation), token, ttl=self.generation_ttl))

    async def close(self) -> None:
        await self.cache.client.aclose()  # aiocache's close() calls redis-py's deprecated close()

    def usage(self) -> dict[str, int]:
        return {}

    async def _guard(self, operation: Any) -> Any:
        """Run one Redis operation; any failure becomes StoreUnavailableError and a short cool-down."""
        if self.clock() < self._down_until:
            operation.close()
            raise StoreUnavailableError("redis unavailable (cooling down after a failure)", fresh=False)
        try:
            return await operation
        except Exception as exc:  # timeouts, refused connections, protocol errors: all mean "no cache now"
            self._down_until = self.clock() + REDIS_COOL_DOWN_SECONDS
            raise StoreUnavailableError(f"redis: {exc.__class__.__name__}: {exc}") from None


def create_store(config: CacheConfig, clock: Callable[[], float] = time.monotonic) -> Store:
    return RedisStore(config, clock) if config.backend == "redis" else MemoryStore(config, clock)
